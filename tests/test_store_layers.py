"""The recording of several layers: chunks written, read back and checked (#39)."""

from __future__ import annotations

import numpy as np
import pytest

from nnlab.helpers.errors import RunDamaged, RunError
from nnlab.helpers.files import load_npz, save_npz
from nnlab.store import layers, record


def _probe(folder, n=6):
    record.Recorder(folder, ("act",)).write_probe(np.arange(n) % 3, np.arange(n), "test")


def _recorder(tmp_path, n=6, dtype="float16"):
    _probe(tmp_path / "latents", n)
    return layers.LayerRecorder(tmp_path / "layers", ["h1", "out"], dtype)


def _snapshot(rng, n=6):
    head = (rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=3).astype(np.float32))
    return [rng.normal(size=(n, 4)), rng.normal(size=(n, 3))], head


def test_snapshots_come_back_in_order_across_chunks(tmp_path):
    rng = np.random.default_rng(0)
    rec = _recorder(tmp_path, dtype="float32")
    kept = []
    for step in range(5):
        acts, head = _snapshot(rng)
        rec.add(step * 10, step / 4, acts, head)
        kept.append((acts, head))
        if step in (1, 4):
            rec.flush()
    assert rec.chunk_count() == 2 and layers.names_of(tmp_path / "layers") == ["h1", "out"]
    back = layers.load_layers(tmp_path / "layers", tmp_path / "latents")
    assert back.steps.tolist() == [0, 10, 20, 30, 40] and back.names == ["h1", "out"]
    assert back.layers["h1"].shape == (5, 6, 4) and back.layers["out"].shape == (5, 6, 3)
    np.testing.assert_allclose(back.layers["out"][3], kept[3][0][1], rtol=1e-6)
    np.testing.assert_allclose(back.head_weight[2], kept[2][1][0])
    assert back.labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_a_resume_drops_the_chunks_after_its_checkpoint(tmp_path):
    rng = np.random.default_rng(1)
    rec = _recorder(tmp_path)
    for step in range(3):
        rec.add(step, 0.0, *_snapshot(rng))
        rec.flush()
    rec.add(9, 0.0, *_snapshot(rng))
    rec.truncate(2)
    assert rec.chunk_count() == 2 and not rec.pending
    assert layers.load_layers(tmp_path / "layers", tmp_path / "latents").steps.tolist() == [0, 1]


def test_values_float16_cannot_hold_are_refused(tmp_path):
    rec = _recorder(tmp_path)
    acts, head = _snapshot(np.random.default_rng(2))
    acts[1][0, 0] = 1e6
    with pytest.raises(record.BeyondRange, match="layer out beyond what float16 stores"):
        rec.add(0, 0.0, acts, head)


def test_damaged_chunks_are_refused_in_one_line(tmp_path):
    rng = np.random.default_rng(3)
    rec = _recorder(tmp_path)
    rec.add(0, 0.0, *_snapshot(rng))
    rec.flush()
    rec.add(1, 0.0, *_snapshot(rng))
    rec.flush()
    path = tmp_path / "layers" / "chunk-000001.npz"
    part = load_npz(path)
    save_npz(path, **{**part, "layer-0": part["layer-0"][:, :4]})  # fewer probe rows
    with pytest.raises(RunDamaged, match="layer h1 has shape"):
        layers.load_layers(tmp_path / "layers", tmp_path / "latents")
    save_npz(path, **{**part, "names": np.array(["h1", "h2"])})
    with pytest.raises(RunDamaged, match="its layers differ"):
        layers.load_layers(tmp_path / "layers", tmp_path / "latents")
    with pytest.raises(RunError, match="no layers recorded"):
        layers.load_layers(tmp_path / "nothing", tmp_path / "latents")
    assert layers.names_of(tmp_path / "nothing") == []


def test_one_layer_is_read_alone_and_checked(tmp_path):
    """as_recording: one layer as a Recording (the latents' probe), the chunks' names
    checked; a name not recorded is one line."""
    from nnlab.helpers.errors import NnlabError

    rng = np.random.default_rng(4)
    rec = _recorder(tmp_path, dtype="float32")
    for step in range(3):
        rec.add(step, 0.0, *_snapshot(rng))
        rec.flush()
    one = layers.as_recording(tmp_path / "layers", tmp_path / "latents", "out")
    whole = layers.load_layers(tmp_path / "layers", tmp_path / "latents")
    np.testing.assert_array_equal(one.points, whole.layers["out"])
    assert one.labels.tolist() == whole.labels.tolist() and one.sd is None
    with pytest.raises(NnlabError, match="--layer=h2: not recorded"):
        layers.as_recording(tmp_path / "layers", tmp_path / "latents", "h2")
    path = tmp_path / "layers" / "chunk-000002.npz"
    save_npz(path, **{**load_npz(path), "names": np.array(["out", "h1"])})
    with pytest.raises(RunDamaged, match="its layers differ"):
        layers.as_recording(tmp_path / "layers", tmp_path / "latents", "out")
