"""The shapes of the convolutional networks: the light arithmetic matches the torch modules."""

from __future__ import annotations

import pytest
import torch

from nnlab.families import geometry
from nnlab.families.networks import ConvClassifier, ConvVAE


@pytest.mark.parametrize("shape", [[1, 28, 28], [3, 32, 32], [3, 27, 19], [1, 8, 8]])
def test_cnn_maps_and_parameters_match_the_module(shape):
    channels, sizes = [32, 64], [0, 128, 10]
    net = ConvClassifier(shape, channels, sizes)
    x = torch.zeros(2, shape[0] * shape[1] * shape[2])
    maps = geometry.cnn_maps(shape, channels)
    for name, m in zip(["conv1", "conv2", "pool"], maps, strict=True):
        assert net(x, upto=name).shape == (2, geometry.flat(m))
    pooled = geometry.flat(maps[-1])
    want = geometry.conv_params(shape[0], channels, 3) + geometry.dense_params([pooled, 128, 10])
    assert sum(p.numel() for p in net.parameters()) == want
    assert net(x).shape == (2, 10)


def test_pytorch_examples_cnn_has_its_parameter_count():
    # pytorch/examples' mnist Net: 1,199,882 parameters
    net = ConvClassifier([1, 28, 28], [32, 64], [784, 128, 10])
    assert sum(p.numel() for p in net.parameters()) == 1_199_882


@pytest.mark.parametrize("shape", [[1, 28, 28], [3, 32, 32], [3, 27, 19], [1, 8, 8]])
def test_conv_vae_decodes_to_the_images_own_size(shape):
    vae = ConvVAE(shape, [32, 64], [64], latent_dim=2)
    n = shape[0] * shape[1] * shape[2]
    logits, mu, sd = vae(torch.rand(3, n))
    assert logits.shape == (3, n) and mu.shape == sd.shape == (3, 2)
    convs = vae.encoder[: [type(m).__name__ for m in vae.encoder].index("Flatten")]
    assert geometry.vae_maps(shape, [32, 64])[-1] == tuple(convs(torch.rand(1, n)).shape[1:])


def test_smallest_sides():
    assert geometry.cnn_min_side([32, 64]) == 6
    assert geometry.vae_min_side([32, 64]) == 8
    assert geometry.cnn_maps([1, 6, 6], [32, 64])[-1] == (64, 1, 1)
    assert geometry.vae_maps([1, 8, 8], [32, 64])[-1] == (64, 2, 2)
