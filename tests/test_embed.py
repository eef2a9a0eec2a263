from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from nnlab.families.networks import kl_to_standard_normal
from nnlab.helpers import files
from nnlab.store import record
from tests.conftest import FAST


def test_vae_embed_matches_last_snapshot_and_reports_kl(nnlab, runs):
    run_id = nnlab(
        "train",
        "vae",
        *FAST[:1],  # the bundled sample, the whole test split as the probe
        "--probe_size=10000",
        "--snapshot_every=50",
        "--record_dtype=float32",
    ).out.strip()
    r = nnlab("embed", run_id)
    assert r.code == 0, r.err
    path = r.out.strip()
    assert path.endswith("embeddings/test-step113.npz")
    z = files.load_npz(path)
    assert z["mu"].shape == z["sd"].shape == (1000, 2) and int(z["step"]) == 113
    rec = record.load_recording(runs / run_id / "latents", ("mu", "sd"))
    assert rec.steps[-1] == 113 and np.array_equal(rec.indices, z["indices"])
    np.testing.assert_allclose(z["mu"], rec.points[-1], atol=1e-5)
    np.testing.assert_allclose(z["sd"], rec.sd[-1], atol=1e-5)
    kl = kl_to_standard_normal(torch.from_numpy(z["mu"]), torch.from_numpy(z["sd"])).mean(0)
    shown = [float(v) for v in re.findall(r"z[₀-₉]+: ([0-9.]+)", r.err)]
    np.testing.assert_allclose(shown, kl.numpy(), atol=1e-3)


def test_classifier_embed_csv_and_layer(nnlab, runs):
    run_id = nnlab("train", "classifier", "--preset=latent3", *FAST, "--epochs=1").out.strip()
    r = nnlab("embed", run_id, "--split=val", "--layer=1", "--format=csv")
    assert r.code == 0, r.err
    lines = open(r.out.strip()).read().splitlines()
    assert lines[0] == "index,label," + ",".join(f"act{i}" for i in range(10))
    assert len(lines) == 1 + 400
    z = files.load_npz(nnlab("embed", run_id, "--checkpoint=final").out.strip())
    assert z["act"].shape == (1000, 3) and int(z["layer"]) == 2
    assert ((z["act"] > 0) & (z["act"] < 1)).all()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--split=holdout"], "choose from test, train, val"),
        (["--format=xml"], "--format=xml: choose from npz, csv"),
        (["--layer=1"], "--layer applies to classifier runs"),
        (["--checkpoint=epoch-3"], "no 'epoch-3' checkpoint"),
    ],
)
def test_embed_errors(nnlab, runs, args, needle):
    run_id = nnlab("train", "vae", *FAST, "--snapshot_every=0").out.strip()
    r = nnlab("embed", run_id, *args)
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert nnlab("embed", "nope-1").code == 2


def test_layers_get_their_own_files(nnlab, runs):
    run_id = nnlab("train", "classifier", "--preset=latent3", *FAST, "--epochs=1").out.strip()
    one = nnlab("embed", run_id, "--layer=1").out.strip()
    two = nnlab("embed", run_id, "--layer=2").out.strip()
    assert one.endswith("-layer1.npz") and two.endswith("-layer2.npz")
    assert files.load_npz(one)["act"].shape[1] == 10 and files.load_npz(two)["act"].shape[1] == 3
