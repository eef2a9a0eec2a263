"""The training loop's evaluation: per-image means of the loss terms over a split, the same
in any chunking, equal to a direct computation; and a VAE's ELBO from its terms."""

from __future__ import annotations

import pytest
import torch

from nnlab.config.config import build
from nnlab.training.models import build_model, loss_terms
from nnlab.training.trainer import EVAL_SEED, evaluate


@pytest.mark.parametrize("model", ["classifier", "vae"])
def test_evaluation_is_the_mean_over_images_in_any_chunking(model):
    overrides = {"hidden_dims": "16"} if model == "vae" else {"sizes": "784,12,10"}
    cfg = build(model, overrides=overrides)
    torch.manual_seed(0)
    net = build_model(cfg)
    x, y = torch.rand(23, 784), torch.randint(0, 10, (23,))
    whole = evaluate(net, cfg, x, y)
    chunked = evaluate(net, cfg, x, y, chunk=5)
    assert whole.keys() == chunked.keys()
    net.eval()  # as evaluate does; one pass over all 23 images with the same noise
    with torch.no_grad():
        direct = loss_terms(net, cfg, x, y, torch.Generator().manual_seed(EVAL_SEED))
    for k, v in whole.items():
        if k == "elbo":
            continue
        assert v == pytest.approx(float(direct[k]), rel=1e-5), k
        if model == "classifier":  # no sampling: the chunking cannot matter
            assert chunked[k] == pytest.approx(v, rel=1e-5), k
    if model == "vae":
        assert list(whole) == [cfg.recon, "kl", "loss", "elbo"]
        assert whole["elbo"] == pytest.approx(-(whole[cfg.recon] + whole["kl"]))
    else:
        assert list(whole) == ["loss", "acc"]


def test_evaluation_leaves_the_mode_as_it_was():
    cfg = build("classifier", overrides={"sizes": "784,10", "dropout": "[]"})
    net = build_model(cfg)
    net.train()
    evaluate(net, cfg, torch.rand(4, 784), torch.zeros(4, dtype=torch.long))
    assert net.training


def test_learning_rate_decays_per_epoch_and_at_milestones():
    """lr_decay each epoch (StepLR step 1) and /10 at each milestone (MultiStepLR 0.1),
    as torch's schedulers give them."""
    from nnlab.training.trainer import learning_rate

    cfg = build("classifier", overrides={"lr": "0.5", "lr_milestones": "[2,4]", "lr_decay": "0.9"})
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(params, lr=0.5)
    step = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.9)
    opt2 = torch.optim.SGD(params, lr=1.0)
    multi = torch.optim.lr_scheduler.MultiStepLR(opt2, [2, 4], gamma=0.1)
    for epoch in range(6):
        expected = opt.param_groups[0]["lr"] * opt2.param_groups[0]["lr"]
        assert learning_rate(cfg, epoch) == pytest.approx(expected)
        opt.step(), opt2.step(), step.step(), multi.step()


@pytest.mark.parametrize("bad", ["[0,3]", "[4,2]", "[3,3]"])
def test_milestones_are_increasing_epochs(bad):
    from nnlab.helpers.errors import NnlabError

    with pytest.raises(NnlabError, match="--lr_milestones=.*give increasing epochs"):
        build("classifier", overrides={"lr_milestones": bad})
