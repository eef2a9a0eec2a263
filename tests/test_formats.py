"""Run format evolution: runs written by earlier nnlab versions stay readable.

tests/fixtures/store-format1 holds two tiny runs written by nnlab 0.1.0 (run format 1)
before the structure change: a 784-8-2 VAE and a 784-10 linear classifier on the bundled
sample. Every later version must still read, resume, summarise and animate them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch

from nnlab.config.config import from_yaml
from nnlab.helpers import files
from nnlab.store import folders, metrics

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store-format1"
VAE = "vae-20261129-022720-format1"
LINEAR = "classifier-20261129-022729-format1"


@pytest.fixture
def old_store(runs):
    """A copy of the frozen store as this test's runs dir."""
    shutil.copytree(FIXTURE, runs)
    return runs


def test_frozen_runs_summarise(nnlab, old_store):
    rows = nnlab("summary", "--json").json()
    assert sorted(r["id"] for r in rows) == sorted([VAE, LINEAR])
    assert all(r["status"] == "finished" for r in rows)
    for run_id in (VAE, LINEAR):
        d = nnlab("summary", run_id, "--json").json()
        assert d["status"] == "finished" and not d["problems"], d["problems"]
        saved = (FIXTURE / run_id / "config.yaml").read_text()
        assert d["config"] == json.loads(json.dumps(from_yaml(saved).__dict__))
        assert d["latent_metrics"]["end"]["step"] == d["progress"]["steps_done"]
    assert "latent metrics" in nnlab("summary", VAE).out


def test_frozen_runs_render(nnlab, old_store, tmp_path):
    r = nnlab("animate", VAE, "--dpi=40")
    assert r.code == 0, r.err
    snapshots = nnlab("summary", VAE, "--json").json()["holds"]["snapshots"]
    assert iio.imread(r.out.split()[0], index=None).shape[0] == snapshots
    assert nnlab("masks", LINEAR, f"--out={tmp_path}").code == 0
    r = nnlab("embed", LINEAR)
    assert r.code == 0, r.err
    assert nnlab("summary", VAE, "--plot").code == 0


def test_frozen_run_resumes(nnlab, old_store):
    before = (old_store / VAE / "metrics.jsonl").read_bytes()
    r = nnlab("train", "--resume", VAE, "--epochs=2")
    assert r.code == 0 and r.out.strip() == VAE, r.err
    d = nnlab("summary", VAE, "--json").json()
    assert d["status"] == "finished" and d["progress"]["steps_done"] == 226
    after = (old_store / VAE / "metrics.jsonl").read_bytes()
    assert after.startswith(before) and len(after) > len(before)  # appended, nothing rewritten
    assert [
        m["epoch"]
        for m in metrics.of_kind(metrics.read(old_store / VAE / "metrics.jsonl"), "epoch")
    ] == [1, 2]


@pytest.mark.parametrize("run_id", [VAE, LINEAR])
def test_retraining_reproduces_the_frozen_metrics(nnlab, runs, tmp_path, run_id):
    """The same config trained today writes metrics.jsonl lines with the same keys in the
    same order (and, with the torch that wrote the fixture, the same values)."""
    config = tmp_path / "config.yaml"
    shutil.copy(FIXTURE / run_id / "config.yaml", config)
    r = nnlab("train", f"--config={config}")
    assert r.code == 0, r.err
    new = metrics.read(runs / r.out.strip() / "metrics.jsonl")
    old = metrics.read(FIXTURE / run_id / "metrics.jsonl")
    # Lines written since the fixture may end with keys added later: the unit health of
    # each hidden layer on epoch lines. The keys the fixture has come first, in its order.
    assert len(new) == len(old)
    for a, b in zip(new, old, strict=True):
        assert list(a)[: len(b)] == list(b)
        assert all(metrics.HEALTH_RE.match(k) for k in list(a)[len(b) :]), list(a)
    meta = json.loads((FIXTURE / run_id / "meta.json").read_text())
    if meta["torch_version"] == torch.__version__:
        # Same torch, same numbers up to float32 rounding: another CPU's vector kernels
        # (AVX-512 vs AVX2) sum in another order, a few units in the 7th digit at most.
        for a, b in zip(new, old, strict=True):
            for k, v in b.items():
                same = isinstance(v, float) and a[k] == pytest.approx(v, rel=1e-6, abs=1e-9)
                assert same or a[k] == v, (k, a[k], v)
    new_meta = files.read_json(runs / r.out.strip() / "meta.json")
    # meta.json keeps its schema and key order; since format 1's fixture it also carries
    # checksums of config.yaml, metrics.jsonl and itself
    added = ("config_sha256", "metrics_sha256", "checksum", "settings")  # settings: #29
    assert [k for k in new_meta if k not in added] == list(meta)
    assert new_meta["config_sha256"] == files.sha256_text(
        (runs / r.out.strip() / "config.yaml").read_text()
    )


def _edit_config(run: Path, drop: str) -> None:
    text = (run / "config.yaml").read_text()
    kept = "".join(line for line in text.splitlines(True) if not line.startswith(f"{drop}:"))
    assert kept != text
    (run / "config.yaml").write_text(kept)


def test_fields_added_since_format1_read_with_their_legacy_values(old_store):
    """init and posterior_scale did not exist when the fixture was written: the runs read
    as PyTorch-initialised, softplus-as-std models, which is what they are."""
    assert "init" not in (old_store / VAE / "config.yaml").read_text()
    cfg = folders.open_run(VAE, old_store).config()
    assert (cfg.init, cfg.posterior_scale) == ("default", "std")
    assert folders.open_run(LINEAR, old_store).config().init == "default"


def test_field_added_later_is_read_with_its_legacy_value(nnlab, old_store):
    _edit_config(old_store / VAE, "record_precision")  # as written before the field existed
    cfg = folders.open_run(VAE, old_store).config()
    assert cfg.record_precision == "float32"
    assert nnlab("summary", VAE, "--json").json()["config"]["record_precision"] == "float32"
    assert nnlab("train", "--resume", VAE, "--epochs=2").code == 0


def test_missing_original_field_is_damage(nnlab, old_store):
    _edit_config(old_store / VAE, "beta")
    r = nnlab("summary", VAE)
    assert r.code == 2 and "missing keys beta" in r.err and len(r.err.strip().splitlines()) == 1


def test_newer_format_is_refused(nnlab, old_store):
    meta = files.read_json(old_store / VAE / "meta.json")
    files.write_json(old_store / VAE / "meta.json", {**meta, "format": folders.FORMAT_VERSION + 1})
    for args in (("summary", VAE), ("animate", VAE), ("train", "--resume", VAE)):
        r = nnlab(*args)
        assert r.code == 2 and "newer nnlab" in r.err, (args, r.err)
