from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from nnlab.data import catalog
from nnlab.data import fileformats as ff
from nnlab.helpers.errors import NnlabError
from nnlab.training import data


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """Write a uint8 array as an IDX file (the MNIST format)."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(
        struct.pack(">I", n) for n in array.shape
    )
    blob = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(blob)
    else:
        path.write_bytes(blob)


def make_idx_dataset(folder, n_train=120, n_test=40, compress=False, seed=0):
    """Four tiny IDX files with learnable digits-like images in `folder`."""
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, size=(n, 28, 28))
        for i, c in enumerate(labels):  # a bright bar whose row encodes the class
            images[i, 2 + 2 * c : 4 + 2 * c, 4:24] = 250
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, compress)


def test_sample_split_is_stratified_and_fixed():
    a, b = data.load_sample(), data.load_sample()
    assert a.train_images.shape == (4000, 1, 28, 28) and a.test_images.shape == (1000, 1, 28, 28)
    assert np.bincount(a.test_labels).tolist() == [100] * 10
    assert np.bincount(a.train_labels).tolist() == [400] * 10
    assert np.array_equal(a.test_images, b.test_images)


def test_splits_are_tensors_in_unit_range():
    s = data.load("mnist-sample", None, 0.1, seed=3)
    assert s.train_x.shape == (3600, 784) and s.val_x.shape == (400, 784)
    assert s.train_x.dtype.is_floating_point and 0 <= s.train_x.min() and s.train_x.max() <= 1
    assert not set(s.train_index) & set(s.val_index)
    s2 = data.load("mnist-sample", None, 0.1, seed=3)
    assert np.array_equal(s.val_index, s2.val_index)
    assert not np.array_equal(s.val_index, data.load("mnist-sample", None, 0.1, 4).val_index)


def test_read_idx_plain_and_gz(tmp_path):
    arr = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    write_idx(tmp_path / "a", arr)
    write_idx(tmp_path / "b", arr, compress=True)
    assert np.array_equal(ff.read_idx(tmp_path / "a"), arr)
    assert np.array_equal(ff.read_idx(tmp_path / "b.gz"), arr)
    (tmp_path / "c").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 5)
    with pytest.raises(NnlabError, match="size does not match"):
        ff.read_idx(tmp_path / "c")


def test_torchvision_layout_is_read(tmp_path):
    make_idx_dataset(tmp_path / "FashionMNIST" / "raw")
    raw = data.load_raw("fashion-mnist", tmp_path)
    assert raw.train_images.shape == (120, 1, 28, 28) and raw.source.endswith("FashionMNIST/raw")


def test_gz_files_in_data_dir(tmp_path):
    make_idx_dataset(tmp_path / "kmnist", compress=True)
    raw = data.load_raw("kmnist", tmp_path)
    assert raw.test_images.shape == (40, 1, 28, 28)


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "DEBIAN_DIRS", {})
    monkeypatch.setenv("NNLAB_OFFLINE", "1")
    with pytest.raises(NnlabError, match="not found .*put train-images.* in .*FashionMNIST/raw"):
        data.load_raw("fashion-mnist", tmp_path)


def test_mnist_falls_back_to_sample_with_warning(tmp_path):
    said = []
    raw = data.load_raw("mnist", tmp_path, warn=said.append)
    assert raw.name == "mnist-sample" and len(said) == 1
    assert "MNIST not found" in said[0] and "bundled mnist-sample" in said[0]


@pytest.mark.parametrize("channels", [1, 3])
def test_channel_statistics_equal_numpys_in_chunks(monkeypatch, channels):
    """Per channel over every image and position, population sd, whatever the chunking."""
    import torch

    rng = np.random.default_rng(0)
    images = rng.random((37, channels, 5, 4)) * np.arange(1, channels + 1)[None, :, None, None]
    monkeypatch.setattr(data, "STATISTICS_CHUNK", 10)
    means, sds = data.channel_statistics(
        torch.tensor(images.reshape(37, -1), dtype=torch.float32), channels
    )
    assert means == pytest.approx(images.mean(axis=(0, 2, 3)), abs=1e-4)
    assert sds == pytest.approx(images.std(axis=(0, 2, 3)), abs=1e-4)


def test_a_constant_channel_is_not_scaled():
    import torch

    x = torch.cat([torch.full((6, 4), 0.5), torch.rand(6, 4)], dim=1)
    means, sds = data.channel_statistics(x, 2)
    assert means[0] == 0.5 and sds[0] == 1.0 and 0 < sds[1] < 0.5


def test_mnist_samples_statistics_are_near_torchvisions_constants():
    """The sample's 4,000 training digits give what main.py writes for all of MNIST's."""
    splits = data.load("mnist-sample", None, 0.0, 0)
    means, sds = data.channel_statistics(splits.train_x, 1)
    assert abs(means[0] - 0.1307) < 0.002 and abs(sds[0] - 0.3081) < 0.002
