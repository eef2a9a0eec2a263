"""The family of runs written by a user's own training loop through nnlab's Python API
(nnlab.own): nnlab did not build the network and cannot rebuild it, so a run holds the
user's settings, the numbers their loop logged and the latent recording it asked for.

Every read-side command works on such a run (summary, animate, report, export); those
that rebuild the model (embed, decode, masks, train --resume) say why they cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnlab.families.family import CEILING_SLACK, NAME_RE, Family, _cap, _count, _shown
from nnlab.helpers.options import option

# Snapshots held by one chunk file at most (the API flushes before a chunk would hold
# more), so a chunk's size has a ceiling without knowing how long the user's loop runs.
CHUNK_SNAPSHOTS = 64
METRICS_SLACK = 64 * 2**20  # lines appended after meta.json last sealed the log, at most
# The epoch numbers a run is known by, the first present in its last epoch line.
HEADLINE_KEYS = ("test_acc", "test_elbo", "test_loss", "val_acc", "val_loss", "train_loss")


@dataclass
class OwnConfig:
    """A run written by the user's own code: its name and the settings they gave."""

    model: str = "own"
    name: str = option(
        "",
        "a tag appended to the run id (letters, digits, . - _)",
        check=(NAME_RE.match, "use up to 64 letters, digits, '.', '-' or '_'"),
    )
    dataset: str = option("", "what the user said their images are (free text)")
    settings: dict = option({}, "the user's own settings (any JSON)")

    # What readers ask of every run's config; a user's run has no such settings of nnlab's.
    seed = 0  # seeds the class-stratified subsamples pictures draw
    epochs = 0
    snapshot_every = 0
    lr = None

    def parameter_count(self) -> int:
        """Unknown from the config (meta.json counts the watched module's parameters)."""
        return 0

    def hidden_layers(self) -> int:
        """Unknown: nnlab did not build the network."""
        return 0

    def latent_width(self) -> int:
        """Unknown from the config (meta.json's probe records the recorded width)."""
        return 0


class OwnFamily(Family):
    """Runs of the user's own network: nothing to rebuild, any logged keys."""

    name = "own"
    noun = "a run written by your own code"
    config_class = OwnConfig
    default_preset = ""
    # the points; their spread (sd) when the user's encoder returns one
    arrays = ("mu", "sd?")
    symbol = "z"
    rebuildable = False
    headline_key, headline_label = HEADLINE_KEYS[0], "final"
    quality_title, quality_keys = "accuracy", ("test_acc", "val_acc", "train_acc")
    sweep_columns = ()

    def class_names(self, cfg: OwnConfig) -> list[str]:
        """Digits, for a run whose probe came without names (its probe usually has them)."""
        return [str(i) for i in range(10)]

    def unrecorded(self, cfg: OwnConfig) -> str:
        """Its code never called snapshot() (or the run was killed before a flush)."""
        return "its code has not called snapshot(), or nothing was flushed yet"

    def ceilings(self, cfg: OwnConfig, meta) -> tuple[int, int]:
        """Checkpoints are the user's own (nnlab loads none of them); a chunk holds at most
        CHUNK_SNAPSHOTS snapshots of the probe at the width meta.json's probe records."""
        probe = meta.probe
        width = _count(probe.get("width"))
        params = _count(meta.parameter_count)
        chunk = 4 * CHUNK_SNAPSHOTS * _count(probe.get("size")) * width + CEILING_SLACK
        return 4 * 4 * params + CEILING_SLACK, chunk

    def layers_ceiling(self, cfg: OwnConfig, meta) -> int:
        """A chunk of watch(layers=...) holds at most CHUNK_SNAPSHOTS snapshots of the probe
        in the widest watched layer, as meta.json's probe records it."""
        probe = meta.probe
        widest = _count(probe.get("layers_width"))
        return 4 * CHUNK_SNAPSHOTS * _count(probe.get("size")) * widest + CEILING_SLACK

    def metrics_ceiling(self, cfg: OwnConfig, meta) -> int:
        """What meta.json sealed, and what one flush can have appended since."""
        return _count(meta.metrics_bytes) + METRICS_SLACK

    def differences(self, cfg: OwnConfig) -> str:
        """The user's settings, in a line."""
        return _cap(" ".join(f"{k}={_shown(v)}" for k, v in cfg.settings.items()))

    def size_key(self, cfg: OwnConfig) -> str:
        """Never asked: nnlab builds nothing."""
        return "settings"

    def label(self, cfg: OwnConfig) -> str:
        """The run's name and dataset, as the user gave them."""
        parts = [cfg.name or "own model", cfg.dataset]
        return " · ".join(p for p in parts if p)

    def headline(self, final: dict) -> tuple[str, float | None]:
        """The first of HEADLINE_KEYS the run logged."""
        for key in HEADLINE_KEYS:
            if key in final:
                return key.replace("_", " "), final[key]
        return self.headline_label, None

    def epoch_headline(self, line: dict) -> str:
        """The first few numbers of the line."""
        shown = [(k, v) for k, v in line.items() if k not in ("kind", "epoch", "step")][:4]
        return " · ".join(f"{k} {v:.4g}" for k, v in shown if isinstance(v, (int, float)))


OWN = OwnFamily()
