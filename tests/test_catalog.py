"""The datasets: what describe() says before loading, what load_raw() reads, and every
bad folder or npz refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from nnlab.data import catalog
from nnlab.helpers.errors import NnlabError
from tests.conftest import write_shapes
from tests.test_data import make_idx_dataset, write_idx
from tests.test_fileformats import cifar_arrays, write_cifar_binary, write_cifar_python


def test_named_sets_are_described_without_files():
    assert catalog.describe("cifar10").shape == (3, 32, 32)
    assert len(catalog.describe("cifar100").classes) == 100
    assert len(set(catalog.CIFAR100)) == 100
    assert len(catalog.describe("emnist-balanced").classes) == 47
    assert catalog.describe("svhn").sizes == (73257, 26032)
    assert catalog.describe("fashion-mnist").classes[6] == "Shirt"
    with pytest.raises(NnlabError, match="did you mean 'cifar10'"):
        catalog.describe("cifar-10")


def test_cifar10_from_either_release(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLAB_OFFLINE", "1")
    with pytest.raises(NnlabError, match="cifar-10-binary.tar.gz.*cifar-10-batches-bin"):
        catalog.load_raw("cifar10", tmp_path)
    batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    want = [cifar_arrays(4, seed=i) for i in range(6)]
    (tmp_path / "cifar-10-batches-py").mkdir()
    for b, (x, y) in zip(batches, want, strict=True):
        write_cifar_python(tmp_path / "cifar-10-batches-py" / b, x, y)
    raw = catalog.load_raw("cifar10", tmp_path)
    assert raw.train_images.shape == (20, 3, 32, 32) and raw.classes[0] == "airplane"
    assert np.array_equal(raw.test_images, want[-1][0])
    (tmp_path / "cifar-10-batches-bin").mkdir()
    for b, (x, y) in zip(batches, want, strict=True):
        write_cifar_binary(tmp_path / "cifar-10-batches-bin" / f"{b}.bin", x, y)
    binary = catalog.load_raw("cifar10", tmp_path)
    assert binary.source.endswith("cifar-10-batches-bin")
    assert np.array_equal(binary.train_images, raw.train_images)
    assert np.array_equal(binary.train_labels, raw.train_labels)


def test_emnist_images_are_turned_upright(tmp_path):
    rng = np.random.default_rng(0)
    raw_dir = tmp_path / "EMNIST" / "raw"
    images = rng.integers(0, 256, (6, 28, 28))
    for part in ("train", "test"):
        write_idx(raw_dir / f"emnist-balanced-{part}-images-idx3-ubyte", images)
        write_idx(raw_dir / f"emnist-balanced-{part}-labels-idx1-ubyte", np.arange(6) % 47)
    raw = catalog.load_raw("emnist-balanced", tmp_path)
    assert np.array_equal(raw.train_images[:, 0], images.transpose(0, 2, 1))
    assert raw.classes[10] == "A"


def test_a_folder_is_split_seeded_and_stratified(tmp_path):
    write_shapes(tmp_path / "shapes", per_class=10, size=16)
    d = catalog.describe(f"folder:{tmp_path / 'shapes'}")
    assert d.shape == (3, 16, 16) and d.classes == ["disc", "square", "triangle"]
    assert d.sizes == (24, 6)
    raw = catalog.load_raw(f"folder:{tmp_path / 'shapes'}")
    again = catalog.load_raw(f"folder:{tmp_path / 'shapes'}")
    assert np.bincount(raw.test_labels).tolist() == [2, 2, 2]
    assert np.array_equal(raw.test_images, again.test_images)
    assert raw.train_images.dtype == np.uint8 and raw.train_images.shape == (24, 3, 16, 16)


def test_a_folder_with_train_and_test(tmp_path):
    write_shapes(tmp_path / "s" / "train", per_class=4, size=12)
    write_shapes(tmp_path / "s" / "test", per_class=2, size=12, seed=1)
    raw = catalog.load_raw(f"folder:{tmp_path / 's'}")
    assert len(raw.train_labels) == 12 and len(raw.test_labels) == 6


def test_grey_images_make_one_channel_and_image_size_resizes(tmp_path):
    from PIL import Image

    for cls, size in (("a", 10), ("b", 12)):
        (tmp_path / "g" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((size, size), 40 * i, np.uint8)).save(
                tmp_path / "g" / cls / f"{i}.png"
            )
    name = f"folder:{tmp_path / 'g'}"
    with pytest.raises(NnlabError, match="images of different sizes .*10x10.*12x12.*--image_size"):
        catalog.describe(name)
    d = catalog.describe(name, image_size=8)
    assert d.shape == (1, 8, 8)
    assert catalog.load_raw(name, image_size=8).train_images.shape[1:] == (1, 8, 8)
    with pytest.raises(NnlabError, match="--image_size resizes the images of a folder"):
        catalog.describe("mnist", image_size=8)


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: (p / "only").mkdir(parents=True), "at least two class folders.*found only"),
        (lambda p: p.mkdir(), "found none"),
        (lambda p: [(p / c).mkdir(parents=True) for c in "ab"], "no PNG or JPEG images"),
    ],
)
def test_bad_folders(tmp_path, make, needle):
    make(tmp_path / "f")
    with pytest.raises(NnlabError, match=needle):
        catalog.describe(f"folder:{tmp_path / 'f'}")


def test_a_corrupt_image_is_named(tmp_path):
    write_shapes(tmp_path / "c", per_class=3, size=8)
    (tmp_path / "c" / "disc" / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(NnlabError, match="cannot read image .*disc/0001.png"):
        catalog.load_raw(f"folder:{tmp_path / 'c'}")


GREY4 = np.zeros((4, 5, 5), np.uint8)


def npz(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_npz_with_classes_and_a_test_split(tmp_path):
    rng = np.random.default_rng(0)
    name = npz(
        tmp_path,
        x=rng.random((20, 3, 8, 8)).astype(np.float32),
        y=np.arange(20) % 4,
        classes=np.array(["a", "b", "c", "d"]),
        x_test=rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8),
        y_test=np.arange(6) % 4,
    )
    d = catalog.describe(name)
    assert d.shape == (3, 8, 8) and d.classes == ["a", "b", "c", "d"] and d.sizes == (20, 6)
    raw = catalog.load_raw(name)
    assert raw.train_images.dtype == np.uint8 and raw.test_images.shape == (6, 3, 8, 8)


def test_npz_without_a_test_split_is_split_seeded(tmp_path):
    name = npz(tmp_path, x=np.zeros((30, 5, 5), np.uint8), y=np.arange(30) % 3)
    d = catalog.describe(name)
    assert d.shape == (1, 5, 5) and d.classes == ["0", "1", "2"] and d.sizes == (24, 6)


@pytest.mark.parametrize(
    "arrays, needle",
    [
        ({"x": np.zeros((4, 5, 5), np.uint8), "y": np.arange(3)}, "holds 4 images but 'y' 3"),
        (
            {"x": np.zeros((4, 5, 5), np.uint8), "y": np.zeros((4, 2), int)},
            r"'y' has shape \(4, 2\); labels are one whole number per image",
        ),
        (
            {
                "x": np.zeros((4, 5, 5), np.uint8),
                "y": np.arange(4),
                "classes": np.array(["a", "b"]),
            },
            "'y' has label 2, outside the 2 classes",
        ),
        ({"x": np.array([None] * 4, dtype=object), "y": np.arange(4)}, "holds Python objects"),
        ({"x": np.zeros((4, 2, 5, 5), np.uint8), "y": np.arange(4)}, "C 1 or 3"),
        ({"x": np.zeros((4, 5, 5), np.uint8)}, "no array 'y'"),
        ({"x": np.zeros((4, 5, 5)), "y": np.zeros(4)}, "labels must be whole numbers"),
        ({"x": np.zeros((4, 5, 5), np.uint8), "y": np.zeros(4, int)}, "at least two classes"),
        (  # #37 item 3: two names of 300 characters (of 20 million in the attack)
            {"x": GREY4, "y": np.arange(4) % 2, "classes": np.array(["a" * 300, "b"])},
            "names of up to 300 characters; at most 256 each",
        ),
        (  # #37 item 8: 200,000 names declared, 2 used
            {"x": GREY4, "y": np.arange(4) % 2, "classes": np.array(["c"] * 200_000)},
            "'classes' declares 200,000 names; at most 10,000",
        ),
        (
            {"x": GREY4, "y": np.array([0, 1, 0, 10**6])},
            "label 1000000 implies 1,000,001 classes; nnlab draws at most 10,000",
        ),
        (
            {"x": GREY4, "y": np.arange(4) % 2, "classes": np.arange(2)},
            "give the class names as text",
        ),
    ],
)
def test_bad_npz(tmp_path, arrays, needle):
    with pytest.raises(NnlabError, match=needle):
        catalog.describe(npz(tmp_path, **arrays))


def test_npz_floats_outside_unit_range(tmp_path):
    name = npz(tmp_path, x=np.full((4, 5, 5), 2.0), y=np.arange(4) % 2)
    with pytest.raises(NnlabError, match="floats outside \\[0, 1\\]"):
        catalog.load_raw(name)


def test_a_set_too_big_for_memory_is_refused_before_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "memory_bytes", lambda: 2**28)
    with pytest.raises(NnlabError, match=r"70,000 images of 1x28x28 need ~0.3 GiB .*50%"):
        catalog.describe("fashion-mnist")
    monkeypatch.setattr(catalog, "memory_bytes", lambda: 64 * 2**30)
    assert catalog.describe("fashion-mnist").sizes == (60000, 10000)


def test_idx_sets_still_read(tmp_path):
    make_idx_dataset(tmp_path / "KMNIST" / "raw")
    raw = catalog.load_raw("kmnist", tmp_path)
    assert raw.train_images.shape == (120, 1, 28, 28) and raw.classes[1] == "ki"


def test_every_named_set_and_user_format_has_its_registry_entry():
    """A named set's kind is one entry of RELEASES (where its files lie, what to tell, how
    to read them); a user format is one entry of OWN_FORMATS, its prefix with it."""
    from nnlab.data import catalog

    for name, known in catalog.KNOWN.items():
        assert known.kind == "sample" or known.kind in catalog.RELEASES, name
    assert catalog.PREFIXES == tuple(catalog.OWN_FORMATS) == ("folder:", "npz:")
    assert catalog.OWN_FORMATS["folder:"].resizes and not catalog.OWN_FORMATS["npz:"].resizes
    root = catalog.Path("/data")
    assert "cifar-100-binary.tar.gz" in catalog._where("cifar100", root)
    assert catalog._candidates("svhn", root)[1] == (
        "mat",
        [root / "svhn" / "train_32x32.mat", root / "svhn" / "test_32x32.mat"],
    )


@pytest.mark.parametrize("bad", [99, -1])
def test_cifar_labels_outside_its_classes_are_refused_at_load(tmp_path, monkeypatch, bad):
    """#37 item 7: a CIFAR-10 batch with label 99 or -1 is refused before any run exists."""
    from tests.test_fileformats import cifar_arrays, write_cifar_python

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i, b in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        images, labels = cifar_arrays(5, seed=i)
        if b == "data_batch_3":
            labels[2] = bad
        write_cifar_python(folder / b, images, labels)
    monkeypatch.setenv("NNLAB_OFFLINE", "1")
    with pytest.raises(NnlabError, match=rf"data_batch_3: label {bad} is not one of cifar10's"):
        catalog.load_raw("cifar10", tmp_path)


@pytest.mark.parametrize(
    "arrays, needle",
    [
        (
            {
                "x": np.zeros((0, 5, 5), np.uint8),
                "y": np.zeros(0, int),
                "classes": np.array(["a", "b"]),
            },
            "no images to train on",
        ),
        (
            {
                "x": GREY4,
                "y": np.arange(4) % 2,
                "x_test": np.zeros((0, 5, 5), np.uint8),
                "y_test": np.zeros(0, int),
            },
            "no test images",
        ),
        ({"x": GREY4[:3], "y": np.arange(3)}, "no test images"),  # one image per class
    ],
)
def test_a_dataset_with_an_empty_split_is_refused_before_a_run(tmp_path, arrays, needle):
    """#37 item 6: no split may be empty (evaluation and the probe need test images)."""
    with pytest.raises(NnlabError, match=needle):
        catalog.describe(npz(tmp_path, **arrays))


def test_the_download_hosts_are_torchvision_s():
    from urllib.parse import urlparse

    from torchvision import datasets as tv

    urls = {
        "mnist": tv.MNIST.mirrors[0],
        "fashion-mnist": tv.FashionMNIST.mirrors[0],
        "kmnist": tv.KMNIST.mirrors[0],
        "emnist-balanced": tv.EMNIST.url,
        "cifar10": tv.CIFAR10.url,
        "cifar100": tv.CIFAR100.url,
        "svhn": tv.SVHN.split_list["train"][0],
    }
    assert {k: urlparse(u).hostname for k, u in urls.items()} == catalog.DOWNLOAD_HOSTS
    downloadable = {n for n, k in catalog.KNOWN.items() if k.kind != "sample"}
    assert set(catalog.DOWNLOAD_HOSTS) == downloadable


def test_a_dataset_neither_on_disk_nor_reachable_is_refused_before_loading(tmp_path):
    with pytest.raises(NnlabError, match="dataset 'cifar10' not found and could not be"):
        catalog.precheck("cifar10", tmp_path)  # offline in every test (conftest)
    catalog.precheck("mnist", tmp_path)  # falls back to the sample at load time
    catalog.precheck("mnist-sample", tmp_path)
    catalog.precheck("nope", tmp_path)  # load_raw says what is wrong with the name
    cifar = tmp_path / "cifar-10-batches-py"
    cifar.mkdir()
    for b in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        write_cifar_python(cifar / b, *cifar_arrays(4))
    catalog.precheck("cifar10", tmp_path)  # on disk: no network asked
    assert catalog.reachable("cifar10") is False  # NNLAB_OFFLINE
