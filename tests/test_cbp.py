"""Continual backprop: utilities against a hand computation, the replacement count against
the rate, what a replaced unit looks like, and a killed CBP run resumed bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

from nnlab.config.config import build
from nnlab.helpers import files, testhooks
from nnlab.store import folders
from nnlab.training.cbp import ContinualBackprop
from nnlab.training.models import build_model, make_optimizer
from tests.conftest import FAST


def _net(rate="0.01", maturity="3", decay="0.9", sizes="[784,6,4,10]", **extra):
    cfg = build(
        "classifier",
        overrides={
            "sizes": sizes,
            "activation": "relu",
            "loss": "ce",
            "optimizer": "adam",
            "lr": "0.001",
            "cbp_rate": rate,
            "cbp_maturity": maturity,
            "cbp_decay": decay,
            **extra,
        },
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    model.keep_hidden = True
    return cfg, model


def test_utility_equals_a_hand_computation():
    cfg, model = _net(maturity="1000")  # nothing replaced: utilities only
    cbp = ContinualBackprop(model, cfg, seed=0)
    decay = 0.9
    hand = [torch.zeros(6, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)]
    hand_mean = [torch.zeros(6, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)]
    torch.manual_seed(1)
    for _ in range(3):
        x = torch.rand(5, 784)
        model(x)
        hidden = [h.clone() for h in model.hidden]
        cbp.step(hidden, make_optimizer(cfg, model.parameters()))
        for i, h in enumerate(hidden):
            out_w = model.layers[i + 1].weight.detach().double()
            # contribution: mean over the batch of |h_j| times sum_k |W_next[k, j]|
            contrib = h.double().abs().mean(0) * out_w.abs().sum(0)
            hand[i] = decay * hand[i] + (1 - decay) * contrib
            hand_mean[i] = decay * hand_mean[i] + (1 - decay) * h.double().mean(0)
    for i in range(2):
        assert torch.allclose(cbp.util[i].double(), hand[i], rtol=1e-5)
        assert torch.allclose(cbp.mean_act[i].double(), hand_mean[i], rtol=1e-5, atol=1e-7)
        # bias-corrected: divided by 1 - decay^age, with age 3
        corrected = hand[i] / (1 - decay**3)
        assert torch.allclose(cbp.corrected_utility(i).double(), corrected, rtol=1e-5)
    assert cbp.replaced == 0


def test_adaptable_utility_equals_the_authors_formula_in_float64():
    """util_type='adaptable_contribution' of Dohare et al.'s gnt.py: the mean activation is
    updated first and bias-corrected by the unit's age, then
    new = mean_k |W_next[k, j]| * mean_batch |h_j - corrected mean_j| / mean_i |W[j, i]|."""
    cfg, model = _net(maturity="1000", cbp_utility="adaptable_contribution")
    cbp = ContinualBackprop(model, cfg, seed=0)
    decay = 0.9
    util = [torch.zeros(6, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)]
    mean = [torch.zeros(6, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)]
    torch.manual_seed(1)
    opt = make_optimizer(cfg, model.parameters())
    for age in range(1, 5):
        model(torch.rand(5, 784))
        hidden = [h.clone().double() for h in model.hidden]
        weights = [layer.weight.detach().double().clone() for layer in model.layers]
        cbp.step([h.float() for h in hidden], opt)
        for i, h in enumerate(hidden):
            mean[i] = decay * mean[i] + (1 - decay) * h.mean(0)
            corrected = mean[i] / (1 - decay**age)
            out_mag = weights[i + 1].abs().mean(0)
            in_mag = weights[i].abs().mean(1)
            new = out_mag * (h - corrected).abs().mean(0) / in_mag
            util[i] = decay * util[i] + (1 - decay) * new
    for i in range(2):
        assert torch.allclose(cbp.util[i].double(), util[i], rtol=1e-5, atol=1e-9)
    # not the plain contribution: a unit always on at a large value is no longer useful
    plain = ContinualBackprop(model, _net(maturity="1000")[0], seed=0)
    plain.step([h.float() for h in hidden], opt)
    assert not torch.allclose(plain.util[0].double(), cbp.util[0].double())


@pytest.mark.parametrize("activation,gain", [("relu", 2**0.5), ("tanh", 5 / 3), ("sigmoid", 1.0)])
def test_kaiming_init_and_replaced_units_share_its_bounds(activation, gain):
    cfg, model = _net(
        rate="0.5", maturity="0", sizes="[784,64,10]", init="kaiming", activation=activation
    )
    hidden, out = model.layers
    bound = gain * (3 / 784) ** 0.5
    w = hidden.weight.detach()
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound  # uniform up to its bound
    assert abs(w.std().item() - bound / 3**0.5) < 0.02 * bound  # uniform's sd: bound/sqrt(3)
    assert torch.all(hidden.bias == 0) and torch.all(out.bias == 0)
    assert out.weight.abs().max() <= (3 / 64) ** 0.5  # the output layer: gain 1
    cbp = ContinualBackprop(model, cfg, seed=0)
    model(torch.rand(8, 784))
    before = hidden.weight.detach().clone()
    cbp.step(model.hidden, make_optimizer(cfg, model.parameters()))
    changed = (hidden.weight.detach() != before).any(dim=1)
    assert changed.sum() == 32  # half the layer re-drawn, within the same bound
    assert hidden.weight.detach()[changed].abs().max() <= bound


def test_runs_from_before_read_the_plain_utility():
    from nnlab.config.config import from_yaml, to_yaml

    text = to_yaml(_net()[0]).replace("cbp_utility: contribution\n", "")
    assert "cbp_utility" not in text
    assert from_yaml(text).cbp_utility == "contribution"


def test_replacements_follow_the_rate_and_reset_the_units():
    rate, maturity, steps = 0.02, 5, 300
    cfg, model = _net(rate=str(rate), maturity=str(maturity), sizes="[784,50,10]")
    opt = make_optimizer(cfg, model.parameters())
    cbp = ContinualBackprop(model, cfg, seed=0)
    torch.manual_seed(2)
    total_owed = 0.0
    for _ in range(steps):
        x = torch.rand(8, 784)
        y = torch.randint(0, 10, (8,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        eligible = int((cbp.age[0] + 1 > maturity).sum())
        total_owed += rate * eligible
        ages = cbp.age[0].clone()
        n = cbp.step(model.hidden, opt)
        assert n == math.floor(total_owed + 1e-9) - (cbp.replaced - n)  # whole ones only
        if n:
            fresh = torch.nonzero(cbp.age[0] == 0).flatten()
            assert len(fresh) == n
            assert (ages[fresh] + 1 > maturity).all()  # only mature units were replaced
            assert (model.layers[1].weight[:, fresh] == 0).all()  # outgoing weights zeroed
            assert (model.layers[0].bias[fresh] == 0).all()
            assert (cbp.util[0][fresh] == 0).all()
            bound = 784**-0.5  # PyTorch's default init: uniform(+-1/sqrt(fan_in))
            w = model.layers[0].weight[fresh]
            assert w.abs().max() <= bound and w.std() > bound / 3
            assert (opt.state[model.layers[0].weight]["exp_avg"][fresh] == 0).all()
    # over 300 steps: floor(rate * sum of eligible units over the steps), within one
    assert cbp.replaced == math.floor(total_owed + 1e-9)
    assert cbp.replaced >= 200


def test_the_output_is_kept_when_units_are_replaced():
    """The next layer's bias absorbs a replaced unit's mean contribution: for a unit whose
    activation is constant, the network's output does not change at all."""
    cfg, model = _net(rate="0.5", maturity="0", sizes="[784,4,10]")
    cbp = ContinualBackprop(model, cfg, seed=0)
    with torch.no_grad():
        model.layers[0].weight.zero_()
        model.layers[0].bias.copy_(torch.tensor([0.5, 1.0, 2.0, 3.0]))  # constant units
    x = torch.rand(6, 784)
    before = model(x).detach().clone()
    cbp.step(model.hidden, make_optimizer(cfg, model.parameters()))
    assert cbp.replaced == 2
    with torch.no_grad():
        model.layers[0].weight.zero_()  # look at the bias path only
    assert torch.allclose(model(x), before, atol=1e-5)


def test_state_round_trip():
    cfg, model = _net()
    cbp = ContinualBackprop(model, cfg, seed=0)
    model(torch.rand(4, 784))
    cbp.step(model.hidden, make_optimizer(cfg, model.parameters()))
    other = ContinualBackprop(model, cfg, seed=99)
    other.load_state_dict(cbp.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(other.util, cbp.util, strict=True))
    assert torch.equal(other.gen.get_state(), cbp.gen.get_state())


@pytest.mark.parametrize(
    "flag,needle",
    [
        ("--cbp_rate=1", "--cbp_rate=1.0: must be in [0, 1)"),
        ("--cbp_rate=-0.1", "--cbp_rate=-0.1: must be in [0, 1)"),
        ("--cbp_decay=1", "--cbp_decay"),
        ("--cbp_maturity=-1", "--cbp_maturity"),
        ("--cbp_adam_steps=true", "use it with --optimizer=adam or adamw"),  # sgd's default
    ],
)
def test_bad_cbp_values(nnlab, runs, flag, needle):
    r = nnlab("train", "classifier", flag)
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not runs.exists() or not list(runs.iterdir())


def test_cbp_on_a_network_without_hidden_layer_or_on_the_vae(nnlab):
    r = nnlab("train", "classifier", "--preset=linear-ce", "--cbp_rate=0.01")
    assert r.code == 2 and "has none" in r.err
    r = nnlab("train", "vae", "--cbp_rate=0.01")
    assert r.code == 2 and "'cbp_rate'" in r.err and "classifier" in r.err


CBP_RUN = [
    "train",
    "classifier",
    *FAST,
    "--sizes=[784,32,16,10]",
    "--activation=relu",
    "--loss=ce",
    "--lr=0.1",
    "--batch_size=32",
    "--epochs=2",
    "--cbp_rate=0.01",
    "--cbp_maturity=20",
    "--checkpoint_every_steps=40",
    "--snapshot_every=25",
    "--seed=4",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        [],
        [
            "--cbp_utility=adaptable_contribution",
            "--init=kaiming",
            "--optimizer=adam",
            "--lr=0.001",
            "--cbp_adam_steps=true",
        ],
    ],
    ids=["", "authors"],
)
def test_a_killed_cbp_run_resumes_bit_exact(nnlab, runs, extra):
    from tests.test_reliability import _only_run, _spawn
    from tests.test_train import _assert_same_run

    kept = [a for a in CBP_RUN if a.split("=")[0] not in {e.split("=")[0] for e in extra}]
    args = [*kept, *extra]  # extra's values replace CBP_RUN's (a flag is typed once)
    reference = nnlab(*args).out.strip()
    ck = files.load_checkpoint(folders.open_run(reference, runs).checkpoints / "final.pt")
    assert ck["cbp"]["replaced"] > 10  # units were really replaced
    before = {p.name for p in runs.iterdir()}
    # killed inside its 3rd checkpoint write (step 80, mid-epoch): temp file written, not
    # renamed; the resume starts from step 40 with the CBP state saved there
    p = _spawn(args, runs, **{testhooks.KILL_IN_WRITE: "3"})
    p.wait(timeout=120)
    assert p.returncode == -9
    run_id = _only_run(runs, exclude=before)
    assert folders.open_run(run_id, runs).meta().resumable_step == 40
    r = nnlab("train", "--resume", run_id)
    assert r.code == 0, r.err
    _assert_same_run(runs, reference, run_id)
    resumed = files.load_checkpoint(folders.open_run(run_id, runs).checkpoints / "final.pt")
    for key in ("util", "mean_act", "age"):
        for a, b in zip(resumed["cbp"][key], ck["cbp"][key], strict=True):
            assert torch.equal(a, b)
    assert resumed["cbp"]["replaced"] == ck["cbp"]["replaced"]


@pytest.mark.parametrize("decoupled", [False, True], ids=["adam", "adamw"])
def test_stepwise_adam_is_torchs_adam_until_a_unit_is_replaced(decoupled):
    from nnlab.training.cbp import StepwiseAdam, _reset_moments

    torch.manual_seed(0)
    ours = torch.nn.Parameter(torch.randn(4, 3))
    theirs = torch.nn.Parameter(ours.detach().clone())
    opt = StepwiseAdam([ours], lr=0.01, weight_decay=0.1, decoupled=decoupled)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    ref = cls([theirs], lr=0.01, weight_decay=0.1)
    grads = [torch.randn(4, 3) for _ in range(6)]
    for g in grads[:5]:  # no replacement: the same updates as torch's
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=1e-7)
    # row 1 is a new unit: fresh weights, moments and step counts reset
    with torch.no_grad():
        ours[1] = torch.tensor([0.5, -0.5, 0.25])
    _reset_moments(opt, ours, rows=torch.tensor([1]))
    before = ours.detach()[1].clone()
    ours.grad = grads[5].clone()
    opt.step()
    fresh = torch.nn.Parameter(before.clone())
    first = cls([fresh], lr=0.01, weight_decay=0.1)
    fresh.grad = grads[5][1].clone()
    first.step()  # what a fresh optimizer does to that row on its first step
    torch.testing.assert_close(ours.detach()[1], fresh.detach(), rtol=1e-6, atol=1e-7)
    assert opt.state[ours]["step"][1].tolist() == [1.0, 1.0, 1.0]
    assert opt.state[ours]["step"][0].tolist() == [6.0, 6.0, 6.0]


def test_cbp_uses_stepwise_adam_when_asked():
    from nnlab.training.cbp import StepwiseAdam

    cfg, model = _net(cbp_adam_steps="true")
    assert isinstance(make_optimizer(cfg, model.parameters()), StepwiseAdam)
    cfg, model = _net()  # the default, and every run from before: torch's Adam
    assert not isinstance(make_optimizer(cfg, model.parameters()), StepwiseAdam)
