"""The probe of a user's own run (nnlab.library.probe): images shown as they are, labels
checked, and the encoder's outputs read as points and spreads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nnlab.library.probe import Encoder, UsageError, check_labels, display_images


def test_images_are_kept_in_their_own_shape_and_range():
    grey = np.random.default_rng(0).random((4, 5, 7))
    shown = display_images(grey)
    assert shown.shape == (4, 1, 5, 7) and shown.dtype == np.uint8
    np.testing.assert_array_equal(shown[:, 0], np.round(grey * 255).astype(np.uint8))
    rgb = np.random.default_rng(1).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    assert display_images(rgb) is rgb  # uint8 as given
    normalised = np.array([-1.0, 0.0, 3.0]).reshape(1, 1, 1, 3)  # e.g. mean/std inputs
    assert display_images(normalised).ravel().tolist() == [0, 64, 255]
    flat = np.zeros((2, 12))
    assert display_images(flat, (3, 4)).shape == (2, 1, 3, 4)
    assert display_images(flat, (3, 2, 2)).shape == (2, 3, 2, 2)
    with pytest.raises(UsageError, match="image_shape=.*does not hold the 12 values"):
        display_images(flat, (5, 5))
    for bad, why in (
        (flat, "image_shape="),
        (np.zeros((2, 4, 5, 5)), "C 1 or 3"),
        (np.zeros((2, 3, 4, 5, 6)), "N×H×W or N×C×H×W"),
        (np.full((2, 1, 3, 3), np.nan), "NaN"),
    ):
        with pytest.raises(UsageError, match=why):
            display_images(bad)


def test_labels_and_class_names():
    assert check_labels(np.array([0, 2, 1]), 3, None) == ["0", "1", "2"]
    assert check_labels(np.array([0, 1]), 2, ("cat", "dog")) == ["cat", "dog"]
    for labels, classes, why in (
        (np.array([0, 1]), None, r"one label per image \(3\)"),
        (np.array([0, -1, 1]), None, "start at 0"),
        (np.array([0.5, 1, 1]), None, "whole numbers"),
        (np.array([0, 1, 2]), ["a", "b"], "label 2 but only 2 class names"),
    ):
        with pytest.raises(UsageError, match=why):
            check_labels(labels, 3, classes)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 3 * 3, 4)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def test_a_feature_map_is_flattened_in_chunks():
    torch.manual_seed(0)
    net = Net()
    x = torch.rand(10, 1, 5, 5)
    enc = Encoder(x, module=net, layer="conv", batch_size=3)  # four chunks
    out = enc()
    with torch.no_grad():
        expected = net.conv(x).flatten(1).numpy()
    assert out.sd is None and out.points.shape == (10, 18)
    np.testing.assert_allclose(out.points, expected, rtol=1e-6)


def test_an_encoder_function_may_return_a_mean_and_sd():
    x = torch.rand(6, 1, 2, 2)
    out = Encoder(x, encode=lambda b: (b.flatten(1)[:, :2], b.flatten(1)[:, 2:]))()
    np.testing.assert_allclose(out.points, x.flatten(1)[:, :2].numpy())
    np.testing.assert_allclose(out.sd, x.flatten(1)[:, 2:].numpy())
    uint8 = torch.full((2, 1, 2, 2), 255, dtype=torch.uint8)  # fed to the network as [0, 1]
    assert Encoder(uint8, encode=lambda b: b.flatten(1))().points.max() == 1.0
    with pytest.raises(UsageError, match="differ in shape"):
        Encoder(x, encode=lambda b: (b.flatten(1), b.flatten(1)[:, :1]))()
    with pytest.raises(UsageError, match="one row per image"):
        Encoder(x, encode=lambda b: b.flatten()[:3])()


def test_the_encoder_is_chosen_one_way():
    x = torch.rand(2, 1, 2, 2)
    with pytest.raises(UsageError, match="either encode= .* or layer="):
        Encoder(x)
    with pytest.raises(UsageError, match="needs module="):
        Encoder(x, layer="fc")
    with pytest.raises(UsageError, match="no module 'fcc'.*did you mean 'fc'"):
        Encoder(x, module=Net(), layer="fcc")
    with pytest.raises(UsageError, match="batch_size=0"):
        Encoder(x, encode=lambda b: b, batch_size=0)


def test_class_names_are_bounded():
    """#37 items 3 and 10: at most 10,000 classes and 256 characters a name."""
    labels = np.arange(4) % 2
    with pytest.raises(UsageError, match="a name of 300 characters"):
        check_labels(labels, 4, ["a" * 300, "b"])
    with pytest.raises(UsageError, match="10,001 names; nnlab draws at most 10,000"):
        check_labels(labels, 4, ["c"] * 10_001)
    assert check_labels(labels, 4, ["a" * 256, "b"])[0] == "a" * 256
