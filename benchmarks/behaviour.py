"""Fingerprint what nnlab's commands write, to check that a refactoring changes nothing.

    python benchmarks/behaviour.py train DIR             # once, with the code before: fresh runs
    python benchmarks/behaviour.py render DIR OUT.json   # before and after: every output's sha256
    python benchmarks/behaviour.py retrain DIR OUT.json  # before and after: metrics.jsonl digests

`render` copies the frozen fixture store and the fresh runs of DIR to a scratch store and
runs every read-side command on them (animate in each kind and --compare, masks, decode,
embed in both formats, summary as text and JSON, report, export, every --help page); the
JSON maps each command to its exit code, the sha256 of its stdout and of every file it
wrote. Files that hold the time of writing (report's page, export's event files) are
fingerprinted without it. Compare two fingerprints with `diff`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path.cwd()  # run from the repository root
FIXTURE = ROOT / "tests" / "fixtures" / "store-format1"
FAST = ["--dataset=mnist-sample", "--probe_size=200", "--log_every=10"]
TRAIN = {
    "vae": ["vae", "--snapshot_every=20", "--seed=3"],
    "vae3": ["vae", "--latent_dim=3", "--snapshot_every=40", "--seed=1"],
    "l3": ["classifier", "--preset=latent3", "--epochs=2", "--snapshot_every=60"],
    "lin": ["classifier", "--preset=linear-mse", "--epochs=1"],
    "wide": ["classifier", "--preset=nielsen", "--epochs=1", "--snapshot_every=120"],
    "perm": [
        "classifier",
        "--preset=nielsen",
        "--epochs=2",
        "--permute_every=1",
        "--cbp_rate=1e-3",
        "--snapshot_every=120",
        "--dropout=0.2",
    ],
}


def nnlab(*args: str) -> tuple[int, str]:
    """Run the CLI in this process; (exit code, stdout, or stderr when it failed)."""
    from nnlab import __main__ as entry

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            entry.main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0
    return code, out.getvalue() if code == 0 else err.getvalue()


def digest(path: Path) -> str:
    """sha256 of a file, with the time of writing taken out where a file holds it."""
    data = path.read_bytes()
    if path.name == "nnlab-export.json":  # lists the event files, named by time and pid
        data = re.sub(rb"tfevents\.[^\"]*", b"tfevents", data)
    if path.suffix == ".html":
        data = re.sub(rb'"(written|created)": ?"[^"]*"', b"", data)
    if "tfevents" in path.name:  # every record holds its wall time: digest the rest
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

        h = hashlib.sha256()
        for event in EventFileLoader(str(path)).Load():
            event.wall_time = 0
            h.update(event.SerializeToString(deterministic=True))
        return h.hexdigest()[:16]
    return hashlib.sha256(data).hexdigest()[:16]


def tree(root: Path) -> dict[str, str]:
    """Digest of every file under root."""
    return {
        re.sub(r"tfevents\..*", "tfevents", str(p.relative_to(root))): digest(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def train(dest: Path) -> None:
    """Fresh runs of every kind, their ids in dest/ids.json."""
    dest.mkdir(parents=True, exist_ok=True)
    ids = {}
    for key, args in TRAIN.items():
        code, out = nnlab("train", *args, *FAST, f"--runs_dir={dest}")
        assert code == 0, (key, code)
        ids[key] = out.strip()
    (dest / "ids.json").write_text(json.dumps(ids, indent=1))


def commands(ids: dict[str, str], out: Path) -> dict[str, list[str]]:
    """Every read-side command to fingerprint, by a name."""
    fv, fc = "vae-20261129-022720-format1", "classifier-20261129-022729-format1"
    c = {}
    for name, rid in [*ids.items(), ("fixture-vae", fv), ("fixture-cls", fc)]:
        c[f"summary {name}"] = ["summary", rid]
        c[f"summary-json {name}"] = ["summary", rid, "--json"]
        c[f"animate {name}"] = ["animate", rid, f"--out={out}/animate-{name}.gif", "--dpi=40"]
        c[f"embed {name}"] = ["embed", rid]
        c[f"embed-csv {name}"] = ["embed", rid, "--format=csv", "--split=val"]
        c[f"report {name}"] = ["report", rid, f"--out={out}/report-{name}.html"]
        c[f"export {name}"] = ["export", rid, f"--logdir={out}/export-{name}"]
        c[f"masks {name}"] = ["masks", rid, f"--out={out}/masks-{name}"]
        c[f"decode {name}"] = ["decode", rid, f"--out={out}/decode-{name}"]
    c["animate scatter"] = ["animate", ids["vae"], "--kind=scatter", f"--out={out}/sc.gif"]
    c["animate classes"] = ["animate", ids["l3"], "--classes=0,4,9", f"--out={out}/cl.gif"]
    c["animate compare"] = ["animate", fv, f"--compare={ids['vae']}", f"--out={out}/cmp.gif"]
    c["report two"] = ["report", ids["vae"], fv, f"--out={out}/two.html"]
    c["decode over"] = ["decode", fv, "--over_training", f"--out={out}/over"]
    c["embed layer"] = ["embed", ids["wide"], "--layer=2", "--format=csv"]
    c["embed task"] = ["embed", ids["perm"], "--task=0"]
    c["summary table"] = ["summary"]
    c["summary table json"] = ["summary", "--json"]
    c["summary plot"] = ["summary", ids["perm"], "--plot"]
    for cmd in [
        "",
        "train",
        "sweep",
        "summary",
        "animate",
        "masks",
        "embed",
        "decode",
        "export",
        "report",
    ]:
        c[f"help {cmd}"] = [*([cmd] if cmd else []), "--help"]
    c["help train vae"] = ["train", "vae", "--help"]
    c["help train classifier"] = ["train", "classifier", "--help"]
    for bad in [
        ["animate", fv, "--kind=cube"],
        ["train", "vae", "--betta=3"],
        ["masks", fv],
        ["decode", fc],
        ["embed", fc, "--split=dev"],
        ["export", fv, "--to=wandb"],
        ["summary", "nope"],
        ["sweep", "vae", "--lr=x"],
    ]:
        c["bad " + " ".join(bad)] = bad
    return c


def render(src: Path, result: Path) -> None:
    """Fingerprint every command's output on a scratch copy of the fixture and src."""
    scratch = Path(tempfile.mkdtemp(prefix="nnlab-behaviour-"))
    store, out = scratch / "runs", scratch / "out"
    shutil.copytree(FIXTURE, store)
    ids = json.loads((src / "ids.json").read_text())
    for rid in ids.values():
        shutil.copytree(src / rid, store / rid)
    for p in store.rglob("*"):  # the latent-metrics cache is keyed by mtimes: fix them
        os.utime(p, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    out.mkdir()
    os.environ["NNLAB_RUNS"] = str(store)
    os.environ["NNLAB_OFFLINE"] = "1"
    os.environ["COLUMNS"] = "200"
    prints = {}
    for name, args in commands(ids, out).items():
        before = tree(store)
        code, text = nnlab(*args)
        text = text.replace(str(scratch), "SCRATCH")
        after = tree(store)
        wrote = {k: v for k, v in after.items() if before.get(k) != v}
        prints[name] = {
            "code": code,
            "stdout": hashlib.sha256(text.encode()).hexdigest()[:16],
            "store": wrote,
        }
        print(f"{name}: {code}", file=sys.stderr)
    prints["out"] = tree(out)
    result.write_text(json.dumps(prints, indent=1, sort_keys=True))
    shutil.rmtree(scratch)


def retrain(src: Path, result: Path) -> None:
    """Train src's configs again and fingerprint metrics.jsonl (times taken out)."""
    scratch = Path(tempfile.mkdtemp(prefix="nnlab-retrain-"))
    ids = json.loads((src / "ids.json").read_text())
    prints = {}
    for key, args in TRAIN.items():
        code, out = nnlab("train", *args, *FAST, f"--runs_dir={scratch}")
        lines = []
        for line in (scratch / out.strip() / "metrics.jsonl").read_text().splitlines():
            rec = json.loads(line)
            lines.append({k: v for k, v in rec.items() if "time" not in k and k != "wall"})
        old = [
            {k: v for k, v in json.loads(x).items() if "time" not in k and k != "wall"}
            for x in (src / ids[key] / "metrics.jsonl").read_text().splitlines()
        ]
        prints[key] = {"code": code, "same_metrics_as_src": lines == old}
    result.write_text(json.dumps(prints, indent=1, sort_keys=True))
    shutil.rmtree(scratch)


if __name__ == "__main__":
    os.environ.setdefault("NNLAB_OFFLINE", "1")
    what, *rest = sys.argv[1:]
    {
        "train": lambda: train(Path(rest[0])),
        "render": lambda: render(Path(rest[0]), Path(rest[1])),
        "retrain": lambda: retrain(Path(rest[0]), Path(rest[1])),
    }[what]()
