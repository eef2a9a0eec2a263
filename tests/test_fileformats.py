"""The file readers: CIFAR's two releases agree, a planted pickle runs nothing, SVHN's
MATLAB layout, npz headers, image files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from nnlab.data import fileformats as ff
from nnlab.helpers.errors import NnlabError


def cifar_arrays(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)


def write_cifar_binary(path, images, labels, coarse=None):
    rows = [images.reshape(len(images), -1)]
    if coarse is not None:
        rows.insert(0, np.asarray(coarse, np.uint8)[:, None])
    rows.insert(len(rows) - 1, np.asarray(labels, np.uint8)[:, None])
    path.write_bytes(np.concatenate(rows, axis=1).astype(np.uint8).tobytes())


def write_cifar_python(path, images, labels, key="labels"):
    batch = {b"data": images.reshape(len(images), -1), key.encode(): [int(v) for v in labels]}
    batch[b"batch_label"] = b"testing batch 1 of 1"
    path.write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar_binary_and_python_releases_read_the_same(tmp_path):
    images, labels = cifar_arrays()
    write_cifar_binary(tmp_path / "b.bin", images, labels)
    write_cifar_python(tmp_path / "p", images, labels)
    bx, by = ff.read_cifar_binary(tmp_path / "b.bin", 1)
    px, py = ff.read_cifar_python(tmp_path / "p", "labels")
    assert np.array_equal(bx, images) and np.array_equal(px, images)
    assert by.tolist() == labels.tolist() == py.tolist()
    # CIFAR-100: coarse then fine label byte; the fine one is read
    write_cifar_binary(tmp_path / "c.bin", images, labels, coarse=9 - labels)
    cx, cy = ff.read_cifar_binary(tmp_path / "c.bin", 2)
    assert np.array_equal(cx, images) and cy.tolist() == labels.tolist()


class Planted:
    """A pickle payload that would create a file if unpickled by pickle.load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_executes_nothing(tmp_path):
    marker = tmp_path / "pwned"
    batch = {b"data": Planted(marker), b"labels": [1, 2]}
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(NnlabError, match="refused to load global (posix|os).system"):
        ff.read_cifar_python(tmp_path / "data_batch_1", "labels")
    assert not marker.exists()
    # the same payload really would run under pickle.load: the test can fail
    pickle.loads(pickle.dumps(Planted(marker)))
    assert marker.exists()


def test_cifar_batch_of_the_wrong_shape_is_refused(tmp_path):
    (tmp_path / "b.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(NnlabError, match="not a CIFAR binary batch"):
        ff.read_cifar_binary(tmp_path / "b.bin", 1)
    (tmp_path / "p").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]})
    )
    with pytest.raises(NnlabError, match="not N x 3072"):
        ff.read_cifar_python(tmp_path / "p", "labels")


def test_svhn_mat_layout(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    y = np.array([[10], [1], [2], [9], [10]])
    scipy_io.savemat(tmp_path / "train_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": y})
    x, labels = ff.read_svhn_mat(tmp_path / "train_32x32.mat")
    assert np.array_equal(x, images) and labels.tolist() == [0, 1, 2, 9, 0]


def test_npz_headers_without_reading_the_data(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((4, 5, 6), np.uint8), y=np.arange(4))
    heads = ff.npz_headers(tmp_path / "a.npz")
    assert heads["x"][0] == (4, 5, 6) and heads["x"][1] == np.uint8
    assert heads["y"][0] == (4,)
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object))
    assert ff.npz_headers(tmp_path / "o.npz")["x"][1].hasobject
    with pytest.raises(NnlabError, match="holds Python objects"):
        ff.read_npz_member(tmp_path / "o.npz", "x")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(NnlabError, match="not a readable .npz"):
        ff.npz_headers(tmp_path / "bad.npz")


def test_images_decode_grey_colour_and_resized(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((6, 4, 3), 200, np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((6, 4), 50, np.uint8)).save(tmp_path / "b.png")
    both = ff.read_images([tmp_path / "a.png", tmp_path / "b.png"], 3, 0)
    assert both.shape == (2, 3, 6, 4) and both[1].max() == 50
    grey = ff.read_images([tmp_path / "b.png"], 1, 8)
    assert grey.shape == (1, 1, 8, 8)
    assert ff.image_header(tmp_path / "a.png") == ((4, 6), "RGB")
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(NnlabError, match="cannot read image .*c.png"):
        ff.read_images([tmp_path / "c.png"], 3, 0)


def test_every_accepted_grey_mode_reads_to_its_pixel_values(tmp_path):
    """#37 item 14: 16-bit and 32-bit greys are scaled by their range, not clipped at 255;
    every mode a folder may hold (catalog.GREY_MODES) reads to the same 8-bit picture."""
    from PIL import Image

    from nnlab.data import catalog

    want = np.array([[0, 128, 255, 64]], dtype=np.uint8)
    images = {
        "1": (Image.fromarray(want >= 128), np.array([[0, 255, 255, 0]], np.uint8), "png"),
        "L": (Image.fromarray(want, "L"), want, "png"),
        "LA": (Image.fromarray(np.dstack([want, want]), "LA"), want, "png"),
        "I;16": (Image.fromarray(want.astype(np.uint16) * 257), want, "png"),
        "I": (Image.fromarray(want.astype(np.int32) * 257, "I"), want, "tiff"),
        "F": (Image.fromarray(want.astype(np.float32) / 255, "F"), want, "tiff"),
    }
    assert set(images) == catalog.GREY_MODES
    for mode, (im, expected, fmt) in images.items():
        path = tmp_path / f"{mode.replace(';', '')}.{fmt}"
        im.save(path)
        assert ff.image_header(path)[1] in (mode, "I;16B", "I;16L", "I;16")
        got = ff.read_images([path], 1, 0)
        np.testing.assert_array_equal(got[0, 0], expected, err_msg=mode)
        colour = ff.read_images([path], 3, 0)  # the same grey in each channel of a colour set
        np.testing.assert_array_equal(colour[0, 1], expected, err_msg=mode)


def test_odd_files_are_refused_in_one_line_without_reading_them(tmp_path):
    """#37 item 4: an npz: that links to /dev/zero, a FIFO, a loop of links."""
    import os

    from nnlab.data import catalog

    zero = tmp_path / "zero.npz"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.npz"
    loop.symlink_to(loop)
    for path, needle in (
        (zero, "not a regular file"),
        (fifo, "not a regular file"),
        (loop, r"cannot be read \(Too many levels of symbolic links\)"),
        (tmp_path / "none.npz", "no such file"),
    ):
        with pytest.raises(NnlabError, match=needle) as e:
            catalog.describe(f"npz:{path}")
        assert str(e.value).startswith(f"npz:{path}") and "\n" not in str(e.value)
    with pytest.raises(NnlabError, match="not a regular file"):
        ff.read_idx(tmp_path / "zero.npz")


def test_an_idx_file_is_read_no_further_than_its_header_says(tmp_path):
    """#37 item 5: a gzip bomb (a small header, gigabytes behind it) stops at the size its
    header declares; a header claiming more than the dataset holds is refused unread."""
    import gzip

    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(bytes([0, 0, 8, 2]) + (2).to_bytes(4, "big") * 2)
        f.write(bytes(20 * 2**20))  # 20 MB of zeros behind a 2x2 header
    with pytest.raises(NnlabError, match=r"size does not match its IDX header \(2, 2\)"):
        ff.read_idx(bomb)
    huge = tmp_path / "huge-idx3-ubyte"
    huge.write_bytes(bytes([0, 0, 8, 2]) + (100_000).to_bytes(4, "big") * 2)
    with pytest.raises(NnlabError, match=r"claims \(100000, 100000\) \(10,000,000,000 bytes\)"):
        ff.read_idx(huge, max_bytes=47_040_000)
    good = tmp_path / "good-idx1-ubyte"
    good.write_bytes(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 8, 9]))
    assert ff.read_idx(good, max_bytes=10).tolist() == [7, 8, 9]


@pytest.mark.parametrize(
    "labels, needle",
    [
        ([10**30] * 7, "'labels' is not a list of whole numbers"),
        (["a"] * 7, "'labels' is not a list of whole numbers"),
        ([[1, 2]] * 7, "'labels' is not a list of whole numbers"),
    ],
)
def test_cifar_python_labels_that_are_not_numbers(tmp_path, labels, needle):
    """#37 item 7: labels a batch cannot hold are one line, before any run exists."""
    images, _ = cifar_arrays()
    batch = {b"data": images.reshape(7, -1), b"labels": labels}
    (tmp_path / "p").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(NnlabError, match=needle):
        ff.read_cifar_python(tmp_path / "p", "labels")


def test_a_compressed_mat_file_is_inflated_no_further_than_the_set_holds(tmp_path):
    """#37 item 5, for every compressed input: a MATLAB file whose compressed variables
    inflate beyond what SVHN holds is refused before scipy inflates them whole."""
    scipy_io = pytest.importorskip("scipy.io")
    small = tmp_path / "small.mat"
    images = np.zeros((32, 32, 3, 4), np.uint8)
    scipy_io.savemat(small, {"X": images, "y": np.array([[1], [2], [3], [10]])})
    x, y = ff.read_svhn_mat(small, max_bytes=10**6)
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [1, 2, 3, 0]
    bomb = tmp_path / "bomb.mat"
    scipy_io.savemat(bomb, {"X": np.zeros((32, 32, 3, 3000), np.uint8)}, do_compression=True)
    assert bomb.stat().st_size < 100_000  # 9 MB of zeros, compressed
    with pytest.raises(NnlabError, match="holds more than 1,000,000 bytes of data"):
        ff.read_svhn_mat(bomb, max_bytes=10**6)
    ff.check_mat_size(small, 10**6)  # a plain file passes
