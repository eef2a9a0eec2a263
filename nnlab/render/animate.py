"""`nnlab animate`: a GIF of a run's recorded latent space over training.

One figure is made once and its artists are updated for every frame (image data, scatter
offsets, titles); each frame is drawn to an array and the arrays become one GIF. What each
run shows and on which axes is prepared by nnlab.render.sources.
"""

from __future__ import annotations

import hashlib
import math
import os

import numpy as np

from nnlab import families
from nnlab.config import tasks
from nnlab.helpers.console import stderr_console
from nnlab.helpers.errors import NnlabError
from nnlab.helpers.options import parse_classes, positive_int, positive_number
from nnlab.helpers.progress import CountProgress
from nnlab.render.defaults import AnimateOptions
from nnlab.render.panels import DensityPanel, Panel, Scatter3DPanel, ScatterPanel
from nnlab.render.sources import (
    KIND_WORDS,
    Source,
    align,
    differing_labels,
    load_source,
    outside_counts,
    projected,
    run_label,
    shared_limits,
)
from nnlab.render.style import (
    LABEL_SIZE,
    PANEL_INCHES,
    PRIOR_COLOR,
    TITLE_SIZE,
    class_colors,
    shown_name,
)
from nnlab.store import folders, record

MAX_FRAMES = 150  # without --every, snapshots are thinned to at most this many frames
MAX_DPI = 600


def animate(
    run_id, runs_dir=None, options: AnimateOptions | None = None, console=None
) -> list[str]:
    """Write the latent-space GIF (and its final frame as PNG); return the two paths
    (options: nnlab.render.defaults.AnimateOptions, the command's and the API's)."""
    from nnlab.render.gif import write_gif, write_png

    o = options or AnimateOptions()
    kind, classes, projection = o.kind, o.classes, o.projection
    out_path = _gif_path(o.out) if o.out else None
    asked = o.every is not None
    every = positive_int(o.every, "every") if asked else 1
    fps = positive_number(o.fps, "fps")
    dpi = positive_int(o.dpi, "dpi")
    if dpi > MAX_DPI:  # a 5.6-inch panel at 600 dpi is already 3,360 pixels wide
        raise NnlabError(f"--dpi={dpi}: at most {MAX_DPI}")
    compare = [o.compare] if isinstance(o.compare, str) else list(o.compare or [])
    console = console or stderr_console()
    ids, sweep = expand_sweeps([run_id, *compare], runs_dir, console)
    sources = [load_source(r, runs_dir, str(kind), o.layer) for r in ids]
    if projection is not None:  # a 2-D embedding of each recording, kept in the run
        sources = [projected(s, str(projection), every=every if asked else None) for s in sources]
        every, asked = 1, False  # the embedding's frames are the snapshots it thinned
    names = max((record.class_names(s.rec, s.cfg) for s in sources), key=len)
    n_classes = len(names)
    classes = parse_classes(classes, n_classes, names)
    for other in sources[1:]:
        if other.kind != sources[0].kind:
            a, b = sources[0], other
            raise NnlabError(
                f"--compare: {a.run.id} is drawn as {KIND_WORDS[a.kind]}, {b.run.id} as "
                f"{KIND_WORDS[b.kind]}; compare runs drawn the same way (--kind=scatter draws "
                "any 2-D latent as points)"
            )
    if not asked:  # a GIF a newcomer can open: at most MAX_FRAMES frames unless asked
        every = math.ceil(max(len(src.rec) for src in sources) / MAX_FRAMES)
    frames = render_frames(sources, drawn_classes(sources, classes), every, dpi, console)
    if out_path:
        gif_path = out_path
    else:  # a sweep's grid goes to the sweep's media
        folder = (sweep or sources[0].run).media
        every_shown = every if asked else 1
        all_classes = classes == list(range(n_classes))
        stem = _stem(compare, sources[0].kind, projection, None if all_classes else classes)
        stem += f"-{o.layer}" if o.layer is not None else ""
        gif_path = folder / f"{stem}{f'-every{every_shown}' if every_shown > 1 else ''}.gif"
    write_gif(gif_path, frames, fps=fps)
    png_path = write_png(gif_path.with_suffix(".png"), frames[-1])
    return [str(gif_path), str(png_path)]


def _stem(compare: list[str], kind: str, projection, classes) -> str:
    """The GIF's name: what was compared, as typed, how it is drawn, and the classes shown
    when not all of them."""
    stem = folders.LATENTS if not compare else "compare-" + "-".join(compare)
    if len(stem) > 150:  # many ids: a file name stays well under 255 bytes
        digest = hashlib.sha256(stem.encode()).hexdigest()[:12]
        stem = f"compare-{len(compare)}-runs-{digest}"
    stem += f"-{kind}" + (f"-{projection}" if projection else "")
    if classes is not None:  # names say what is inside
        stem += "-classes" + "-".join(map(str, classes))
    return stem


def expand_sweeps(ids: list[str], runs_dir, console):
    """The run ids to draw: each sweep id replaced by its points that have a recording (at
    most sweeps.MAX_SIDE_BY_SIDE in all, said on stderr when capped); and the first id's
    sweep, if any."""
    from nnlab.store import record, sweeps

    found = sweeps.expand_sweeps(
        ids, runs_dir, lambda p: bool(record.chunk_files(p / folders.LATENTS))
    )
    for sweep, kept, total in found.partial:
        if not kept:
            raise NnlabError(f"sweep {sweep.id}: no point has a latent recording yet")
        console.print(
            f"sweep {sweep.id}: {total - kept} point(s) without a recording yet are left out"
        )
    cap = sweeps.MAX_SIDE_BY_SIDE
    if found.before_cap > cap:
        console.print(
            f"drawing the first {cap} of {found.before_cap} runs (at most {cap} panels); "
            "choose others with RUN_ID --compare=...",
            soft_wrap=True,
        )
    return found.runs, found.first_sweep


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of n panels: one row up to 5, then as square as possible."""
    if n <= 5:
        return 1, n
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


PARALLEL_MIN_FRAMES = 48  # fewer frames do not pay for starting worker processes
CHUNK = 8  # frames a worker renders per task (the progress bar moves per chunk)


def render_frames(
    sources: list[Source], classes: list[int], every: int, dpi: int, console=None, workers=None
):
    """The animation's frames as RGB arrays: one figure, its artists updated per frame;
    with many frames, chunks of them rendered by worker processes (one per core), each
    with the same figure, so the frames (and the GIF) are those of a serial render."""
    frames_of = align(sources, every)
    limits = shared_limits(sources, classes)
    outside = [outside_counts(s, classes, lim) for s, lim in zip(sources, limits, strict=True)]
    job = (classes, len(frames_of), dpi, limits, outside)
    workers = (os.cpu_count() or 1) if workers is None else workers
    console = console or stderr_console()
    with CountProgress(console, "animate", len(frames_of)) as bar:
        if workers > 1 and len(frames_of) >= PARALLEL_MIN_FRAMES:
            return _render_parallel(sources, job, frames_of, workers, bar)
        renderer = _Renderer(sources, *job)
        frames = []
        for i, row in enumerate(frames_of):
            frames.append(renderer.frame(i, row))
            bar.advance()
        renderer.close()
        return frames


class _Renderer:
    """One figure for the whole animation; frame(i, row) draws frame i."""

    def __init__(self, sources, classes, n_frames, dpi, limits, outside):
        import matplotlib

        matplotlib.use("Agg")
        self.sources, self.outside = sources, outside
        self.fig, self.panels, self.titles = _figure(sources, classes, n_frames, dpi, limits)
        self.draw = _frame_drawer(self.fig, self.panels, self.titles)

    def frame(self, i: int, row) -> np.ndarray:
        """The pixels of frame i, which shows snapshot row[j] of source j."""
        for j, (panel, src, s) in enumerate(zip(self.panels, self.sources, row, strict=True)):
            if hasattr(panel, "k"):  # a turning camera: its angle is the frame's
                panel.k = i
            panel.update(s)
            title, label = self.titles[j]
            title.set_text(_title(label, src, s, self.outside[j]))
        return self.draw()

    def close(self) -> None:
        """Free the figure."""
        import matplotlib.pyplot as plt

        plt.close(self.fig)


def _title(label: str, src: Source, s: int, outside) -> str:
    """A panel's title at snapshot s: the run, its epoch and step (its task, when permuted),
    and how many points fall outside the axes."""
    text = f"{label}\nEpoch {epoch_text(float(src.rec.epochs[s]))} · step {src.rec.steps[s]}"
    every = families.of(src.cfg).tasks_every(src.cfg)
    if every:  # a permuted run: which task this snapshot had last trained on
        text += f" · task {tasks.at(float(src.rec.epochs[s]), every)}"
    k = 0 if outside is None else int(outside[s])
    if k:
        text += f" · {k:,} point{'s' if k > 1 else ''} outside"
    return text


def drawn_classes(sources: list[Source], classes: list[int]) -> list[int]:
    """The classes asked for that some probe image has: a dataset may declare names no
    image uses (an npz's 5,000 names for 2 classes drew a legend of 5,000 empty entries)."""
    present = set(np.unique(np.concatenate([s.rec.labels for s in sources])).tolist())
    return [c for c in classes if c in present] or classes


def epoch_text(epoch: float) -> str:
    """An epoch in a title: 2.25, or 1e+300 for one a run's files claim absurdly (never
    300 digits)."""
    return f"{epoch:.2f}" if abs(epoch) < 1e6 else f"{epoch:.3g}"


def snapshot_figure(
    run_id, runs_dir=None, *, step=None, kind=AnimateOptions.kind, dpi=AnimateOptions.dpi
):
    """The figure `animate` draws for one snapshot of a run (`step`, None for the last), on
    the axes of the whole animation; the caller owns it (a notebook shows it)."""
    src = load_source(run_id, runs_dir, str(kind))
    if step is None:
        s = len(src.rec) - 1
    else:
        hits = np.flatnonzero(src.rec.steps == int(step))
        if not len(hits):
            shown = ", ".join(map(str, src.rec.steps[:8])) + (" ..." if len(src.rec) > 8 else "")
            raise NnlabError(f"run {src.run.id} has no snapshot at step {step} (it has {shown})")
        s = int(hits[-1])
    classes = drawn_classes([src], list(range(len(record.class_names(src.rec, src.cfg)))))
    limits = shared_limits([src], classes)
    dpi = positive_int(AnimateOptions.dpi if dpi is None else dpi, "dpi")
    fig, panels, titles = _figure([src], classes, 1, dpi, limits)
    panels[0].update(s)
    outside = outside_counts(src, classes, limits[0])
    titles[0][0].set_text(_title(titles[0][1], src, s, outside))
    return fig


_WORKER: _Renderer | None = None  # a render worker's own figure


def _render_parallel(sources, job, frames_of, workers, bar) -> list:
    """Frames rendered in chunks by fresh worker processes, in order."""
    import concurrent.futures
    import multiprocessing

    # each worker reads the recordings itself (spawned: no copy of this process's memory)
    # and runs its BLAS on one thread, so the workers do not oversubscribe the cores
    requests = [(s.run.root, s.run.id, _KIND_REQUEST[s.kind], s.request) for s in sources]
    chunks = [
        (start, frames_of[start : start + CHUNK]) for start in range(0, len(frames_of), CHUNK)
    ]
    one_thread = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    saved = {k: os.environ.get(k) for k in one_thread}
    os.environ.update(one_thread)
    frames = []
    try:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(requests, job),
        ) as pool:
            for part in pool.map(_render_chunk, chunks):
                frames.extend(part)
                bar.advance(len(part))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return frames


_KIND_REQUEST = {"density": "density", "scatter": "scatter", "scatter3d": "auto"}


def _start_worker(requests, job) -> None:
    """In a render worker: load the sources and build the figure once."""
    global _WORKER
    sources = [load_source(run_id, root, kind) for root, run_id, kind, _ in requests]
    sources = [projected(s, *r[3]) if r[3] else s for s, r in zip(sources, requests, strict=True)]
    _WORKER = _Renderer(sources, *job)


def _render_chunk(chunk) -> list:
    """In a render worker: the frames of one chunk, (first frame index, rows)."""
    start, rows = chunk
    return [_WORKER.frame(start + i, row) for i, row in enumerate(rows)]


def _figure(sources: list[Source], classes: list[int], n_frames: int, dpi: int, limits=None):
    """The figure with one panel per source, titles and the shared legend."""
    import matplotlib.pyplot as plt

    labels = (
        differing_labels([s.cfg for s in sources])
        if len(sources) > 1
        else [run_label(sources[0].cfg)]
    )
    labels = [
        f"{t} · showing {s.layer}" if s.layer else t for t, s in zip(labels, sources, strict=True)
    ]
    names_of = [record.class_names(s.rec, s.cfg) for s in sources]  # each run's own
    colors = class_colors(max(len(n) for n in names_of))
    limits = limits or shared_limits(sources, classes)
    n = len(sources)
    rows, cols = grid_shape(n)
    height = PANEL_INCHES * rows + 0.9 + 0.5 * (rows - 1)  # room for each row's titles
    fig = plt.figure(figsize=(PANEL_INCHES * cols, height), dpi=dpi)
    panels: list[Panel] = []
    titles = []
    for i, (src, label) in enumerate(zip(sources, labels, strict=True)):
        three = src.kind == "scatter3d"
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d" if three else None)
        labels_ = src.rec.labels
        names = names_of[i]
        mine = [c for c in classes if c < len(names)]  # a run may have fewer classes
        if src.kind == "density":
            panels.append(DensityPanel(ax, src.rec, mine, colors, names, limits[i]))
        elif three:
            panels.append(
                Scatter3DPanel(
                    ax, src.points, labels_, mine, colors, n_frames, limits[i], src.axis_labels
                )
            )
        else:
            panels.append(ScatterPanel(ax, src.points, labels_, mine, colors, limits[i]))
        ax.set_xlabel(src.axis_labels[0])
        ax.set_ylabel(src.axis_labels[1])
        if src.method:  # embedding axes: their units mean nothing
            ax.set_xticks([])
            ax.set_yticks([])
            label = f"{label} · {src.method}"
        titles.append((ax.set_title(label, fontsize=TITLE_SIZE), label))
    if all(n == names_of[0] for n in names_of):
        mine = [c for c in classes if c < len(names_of[0])]
        _legend(fig, sources[0].kind == "density", mine, colors, names_of[0], cols)
    else:  # different classes side by side: a legend under each panel
        for ax, src, names in zip(fig.axes, sources, names_of, strict=True):
            mine = [c for c in classes if c < len(names)]
            _legend(ax, src.kind == "density", mine, colors, names, 1, below_axes=True)
    # room on the left for a long axis label ("PC2 (23% of variance)") and its ticks, and
    # at the bottom for the legend (the same inches whatever the number of rows)
    bottom, top = 0.2 * (PANEL_INCHES + 0.9) / height, 1 - 0.1 * (PANEL_INCHES + 0.9) / height
    fig.subplots_adjust(
        left=0.12 / cols, right=1 - 0.03 / cols, top=top, bottom=bottom, wspace=0.3, hspace=0.45
    )
    return fig, panels, titles


def _legend(where, density: bool, classes, colors, names, n_panels: int, below_axes=False):
    """A legend of the classes (and the prior's circles): below the panels of a figure, or
    below one axes."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if density:
        handles = [
            Patch(facecolor=colors[c], alpha=0.6, label=shown_name(names[c])) for c in classes
        ]
        handles.append(Line2D([], [], ls="--", color=PRIOR_COLOR, label="prior N(0, I): 1σ, 2σ"))
    else:
        handles = [
            Line2D([], [], ls="", marker="o", color=colors[c], label=shown_name(names[c]))
            for c in classes
        ]
    where.legend(
        handles=handles,
        loc="upper center" if below_axes else "lower center",
        bbox_to_anchor=(0.5, -0.1) if below_axes else None,
        ncol=min(len(handles), 6 if n_panels > 1 else 4),
        fontsize=LABEL_SIZE,
        frameon=False,
    )


def _frame_drawer(fig, panels: list[Panel], titles):
    """A function that draws the current state of the figure and returns its pixels.

    Blitting: everything that never changes is drawn once, then per frame only the artists
    that do. A panel whose every artist changes (the turning 3-D camera) needs whole redraws.
    """
    from matplotlib.spines import Spine

    from nnlab.render.gif import canvas_array, figure_to_array

    if any(p.dynamic is None for p in panels):
        return lambda: figure_to_array(fig)
    dynamic = [a for p in panels for a in p.dynamic] + [t for t, _ in titles]
    for artist in dynamic:
        if not isinstance(artist, Spine):  # spines stay in the background too
            artist.set_animated(True)
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)

    def draw():
        fig.canvas.restore_region(background)
        for artist in dynamic:
            artist.axes.draw_artist(artist)
        return canvas_array(fig)

    return draw


def _gif_path(out):
    from pathlib import Path

    p = Path(str(out)).expanduser()
    if p.suffix.lower() != ".gif":
        raise NnlabError(f"--out={out}: the animation is a GIF; give a path ending in .gif")
    return p
