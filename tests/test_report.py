"""`nnlab report`: the data in the page against the run's recording, the page's
self-containment, bad input, and the page itself driven in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import re

import numpy as np
import pytest

from nnlab import families
from nnlab.render.report import Q
from nnlab.store import folders, record
from tests import browser
from tests.test_comparison import (
    SWEEP,
    swept,  # noqa: F401  (the fixture: a 2-point sweep)
)


def dequantise(block: dict) -> np.ndarray:
    """The values a quantised block stands for, computed here as the page's script does."""
    codes = np.frombuffer(base64.b64decode(block["b64"]), dtype="<u2").astype(np.float64)
    return (block["lo"] + codes / Q * (block["hi"] - block["lo"])).reshape(block["shape"])


def page_data(path) -> dict:
    """The JSON the page carries."""
    text = open(path, encoding="utf-8").read()
    m = re.search(r'<script id="nnlab-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def pages(trained, tmp_path_factory):
    """Reports of the shared tiny runs: a VAE, a cube classifier, two VAEs side by side."""
    import contextlib
    import io

    from nnlab.commands import cli

    root, runs = trained
    out = tmp_path_factory.mktemp("pages")

    def make(name, *ids, extra=()):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            cli.main(["report", *ids, f"--out={out / name}", f"--runs_dir={root}", *extra])
        return buf.getvalue().strip()

    return (
        root,
        runs,
        {
            "vae": make("vae.html", runs["vae"]),
            "cube": make("cube.html", runs["l3"]),
            "two": make("two.html", runs["vae"], runs["vae10"]),
            "off": make("off.html", runs["off"]),
            "wide": make("wide.html", runs["wide"], extra=["--points=120"]),
        },
    )


def test_the_embedded_data_is_the_recording_within_the_quantisation(pages):
    root, runs, paths = pages
    for key, run_key in (("vae", "vae"), ("cube", "l3"), ("wide", "wide")):
        d = page_data(paths[key])
        (r,) = d["runs"]
        run = folders.open_run(runs[run_key], root)
        rec = record.load_recording(run.latents, families.get(r["model"]).arrays)
        L = r["latent"]
        assert L["steps"] == rec.steps.tolist()
        assert L["total_points"] == len(rec.labels)
        keep = np.array([int(np.flatnonzero(rec.indices == i)[0]) for i in L["indices"]])
        assert L["labels"] == rec.labels[keep].tolist()
        # class-stratified: every class of the recording is on the page
        assert set(L["labels"]) == set(rec.labels.tolist())
        if L["kind"] == "density":
            mu = dequantise(L["mu"])
            step = (L["mu"]["hi"] - L["mu"]["lo"]) / 65535
            np.testing.assert_allclose(mu, rec.points[:, keep], atol=step / 2 + 1e-9)
            sd = np.exp(dequantise(L["log_sd"]))
            lstep = (L["log_sd"]["hi"] - L["log_sd"]["lo"]) / 65535
            np.testing.assert_allclose(sd, rec.sd[:, keep], rtol=np.expm1(lstep / 2) + 1e-9)
        else:
            pts = dequantise(L["coords"])
            step = (L["coords"]["hi"] - L["coords"]["lo"]) / 65535
            if key == "cube":
                np.testing.assert_allclose(pts, rec.points[:, keep], atol=step / 2 + 1e-9)
                assert L["axis_labels"] == ["h₁", "h₂", "h₃"]  # each edge of the cube named
            else:  # a 30-unit layer: on the same principal axes as nnlab animate
                from nnlab.render.sources import load_source

                src = load_source(run.id, root, "auto")
                np.testing.assert_allclose(pts, src.points[:, keep], atol=step / 2 + 1e-9)
                assert L["axis_labels"] == list(src.axis_labels)
        # the images are the probe images as the dataset has them
        from nnlab.training import data

        cfg = run.config()
        x = data.load(cfg.dataset, None, cfg.val_fraction, cfg.seed).split(rec.split)[0]
        stored = d["images"][L["images"]]
        assert stored["shape"] == [1, 28, 28]  # C x H x W of each image
        img = np.frombuffer(__import__("base64").b64decode(stored["b64"]), np.uint8)
        expected = (x[rec.indices[keep]].numpy() * 255).round().astype(np.uint8)
        assert np.array_equal(img.reshape(len(keep), 784), expected)


def test_the_page_is_self_contained(pages):
    _, _, paths = pages
    text = open(paths["two"], encoding="utf-8").read()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)
    assert "http://" not in text and "https://" not in text
    d = page_data(paths["two"])
    assert len(d["runs"]) == 2 and "beta" in d["differences"]


def test_a_run_without_recording_still_has_its_metrics(pages):
    _, _, paths = pages
    (r,) = page_data(paths["off"])["runs"]
    assert r["latent"] is None and "no latent recording" in r["left_out"][0]
    assert r["metrics"]["train_step"] and r["metrics"]["epoch"]["test_loss"]


def test_default_path_and_a_sweep(nnlab, trained, swept):  # noqa: F811  (the fixture)
    root, ids = trained
    r = nnlab("report", ids["vae"], f"--runs_dir={root}")
    assert r.code == 0, r.err
    assert r.out.strip() == str(root / ids["vae"] / "media" / "report.html")
    s = nnlab("report", SWEEP)  # one page with the sweep's points
    assert s.code == 0, s.err
    assert s.out.strip() == str(swept / SWEEP / "media" / "report.html")
    assert [r["id"] for r in page_data(s.out.strip())["runs"]] == [f"{SWEEP}-p0", f"{SWEEP}-p1"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["nope-1"], "no run 'nope-1'"),
        (["{vae}", "--out=/no/such/folder/r.html"], "does not exist"),
        (["{vae}", "--out=report.txt"], "ending in .html"),
        (["{vae}", "{l3}"], "different models"),
        (["{vae}", "--points=3"], "--points=3"),
        (["{vae}", "--pointz=3"], "unknown option --pointz"),
        ([], "give a run id"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(nnlab, trained, args, needle, tmp_path):
    root, ids = trained
    args = [a.format(**ids) for a in args]
    before = sorted(p.name for p in root.rglob("report.html"))
    r = nnlab("report", *args, f"--runs_dir={root}")
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert sorted(p.name for p in root.rglob("report.html")) == before


# ---------------------------------------------------------------- in a real browser

REASON = browser.missing()
needs_browser = pytest.mark.skipif(
    REASON is not None and not os.environ.get("CI"),
    reason=f"browser tests: {REASON}",  # in CI (CI set) they run, and fail if it is missing
)


@needs_browser
def test_slider_play_and_no_console_errors(pages):
    _, runs, paths = pages
    with browser.page_of(paths["vae"]) as (page, errors):
        page.evaluate("window.nnlabReport.setPosition(0)")
        before = browser.canvas_pixels(page, runs["vae"])
        info = page.inner_text("#stepinfo")
        page.evaluate("window.nnlabReport.setPosition(+document.getElementById('slider').max)")
        assert browser.canvas_pixels(page, runs["vae"]) != before
        assert page.inner_text("#stepinfo") != info
        page.evaluate("window.nnlabReport.setPosition(0)")
        page.click("#play")
        page.wait_for_function("window.nnlabReport.state.v >= 2", timeout=5000)
        page.click("#play")  # pause
        v = page.evaluate("window.nnlabReport.state.v")
        page.wait_for_timeout(300)
        assert page.evaluate("window.nnlabReport.state.v") == v
        assert errors == []


@needs_browser
def test_hiding_a_class_removes_its_colour(pages):
    _, runs, paths = pages
    colours = [
        tuple(int(h[i : i + 2], 16) for i in (1, 3, 5)) for h in page_data(paths["cube"])["colors"]
    ]
    with browser.page_of(paths["cube"]) as (page, errors):
        px = browser.canvas_pixels(page, runs["l3"])
        counts = [browser.count_colour(px, rgb) for rgb in colours]
        c = max(range(10), key=counts.__getitem__)  # the class most visible now
        assert counts[c] > 0
        page.click(f'#legend button[data-cls="{c}"]')
        px = browser.canvas_pixels(page, runs["l3"])
        assert browser.count_colour(px, colours[c]) == 0
        others = [k for k in range(10) if k != c and counts[k]]
        assert all(browser.count_colour(px, colours[k]) > 0 for k in others)
        page.click(f'#legend button[data-cls="{c}"]')
        assert browser.count_colour(browser.canvas_pixels(page, runs["l3"]), colours[c]) > 0
        assert errors == []


@needs_browser
def test_hovering_a_point_shows_its_image_and_label(pages):
    _, runs, paths = pages
    with browser.page_of(paths["vae"]) as (page, errors):
        # a point with no other point within 4 pixels, so the mouse can only mean it
        i = page.evaluate(
            """id => { const r = window.nnlabReport, pos = [];
                       const data = JSON.parse(document.getElementById('nnlab-data').textContent);
                       const n = data.runs[0].latent.points;
                       for (let k = 0; k < n; k++) pos.push(r.pointAt(id, k));
                       const far = (k, j) =>
                         Math.hypot(pos[j][0] - pos[k][0], pos[j][1] - pos[k][1]) > 4;
                       for (let k = 0; k < n; k++) {
                         if (pos.every((p, j) => j === k || far(k, j))) return k;
                       } return -1; }""",
            runs["vae"],
        )
        assert i >= 0
        x, y, cls, name = page.evaluate(
            f"window.nnlabReport.pointAt({json.dumps(runs['vae'])}, {i})"
        )
        page.mouse.move(x, y)
        assert page.is_visible("#tooltip")
        assert page.get_attribute("#tooltip", "data-label") == name
        d = page_data(paths["vae"])
        assert page.get_attribute("#tooltip", "data-index") == str(
            d["runs"][0]["latent"]["indices"][i]
        )
        assert name in page.inner_text("#tiptext")
        assert errors == []


@needs_browser
def test_two_runs_move_together_by_step_and_by_fraction(pages):
    _, runs, paths = pages
    a, b = runs["vae"], runs["vae10"]
    d = page_data(paths["two"])
    steps = [r["latent"]["steps"] for r in d["runs"]]
    with browser.page_of(paths["two"]) as (page, errors):
        for v in (0, 3, 7):
            page.evaluate(f"window.nnlabReport.setPosition({v})")
            sa, sb = (
                page.evaluate(f"window.nnlabReport.snapshotOf({json.dumps(x)})") for x in (a, b)
            )
            assert steps[0][sa] == steps[1][sb]  # same recorded steps: the same snapshot
        page.select_option("#align", "fraction")
        page.evaluate("window.nnlabReport.setPosition(+document.getElementById('slider').max)")
        sa, sb = (page.evaluate(f"window.nnlabReport.snapshotOf({json.dumps(x)})") for x in (a, b))
        assert (sa, sb) == (len(steps[0]) - 1, len(steps[1]) - 1)
        assert errors == []


@needs_browser
def test_frame_time_is_measured_in_the_page(pages):
    _, _, paths = pages
    with browser.page_of(paths["two"]) as (page, errors):
        t = browser.drag_frame_times(page, 40)
        print(json.dumps({"two tiny VAE panels": t}))
        assert t["frames"] == 40 and 0 < t["median_ms"] < 200
        assert page.evaluate("window.nnlabReport.readyMs") < 5000
        assert errors == []


def test_browser_tests_run_in_ci():
    """CI installs playwright and Chromium (.ci/run): there the browser tests must run."""
    if os.environ.get("CI"):
        assert REASON is None, REASON


HOSTILE = "<!--<script>\u2028</SCRIPT><Script>&"  # every HTML-parser state a string can reach


@pytest.fixture(scope="module")
def hostile_page(tmp_path_factory):
    """A run whose stored strings hold what an HTML parser reacts to inside a <script>: a
    config string (data_dir) and a metrics.jsonl key, and its report."""
    import contextlib
    import io

    from nnlab.commands import cli
    from nnlab.helpers import files
    from tests.conftest import FAST

    root = tmp_path_factory.mktemp("hostile")

    def call(*args):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            cli.main([*args, f"--runs_dir={root}"])
        return buf.getvalue().strip()

    run_id = call("train", "vae", *FAST, "--snapshot_every=60", f"--data_dir={HOSTILE}")
    run = folders.open_run(run_id, root)
    meta = run.meta()
    lines = run.metrics.read_text().splitlines()
    last = json.loads(lines[-1])
    lines[-1] = json.dumps({**last, f"note{HOSTILE}": 1.0})  # a key as a later nnlab may add
    text = "\n".join(lines) + "\n"
    files.write_text(run.metrics, text)
    run.write_meta(
        {
            **meta.to_json(),
            "metrics_bytes": len(text.encode()),
            "metrics_sha256": files.sha256_text(text),
        }
    )
    out = root / "page.html"
    assert call("report", run_id, f"--out={out}") == str(out)
    return out


def test_no_stored_string_reaches_the_html_parser(hostile_page):
    text = hostile_page.read_text(encoding="utf-8")
    data = text.split('<script id="nnlab-data" type="application/json">', 1)[1]
    data = data.split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and "&" not in data
    d = page_data(hostile_page)
    assert d["runs"][0]["config"]["data_dir"] == HOSTILE  # read back unchanged


@needs_browser
def test_the_page_draws_whatever_its_strings_hold(hostile_page):
    with browser.page_of(str(hostile_page)) as (page, errors):
        assert page.evaluate("window.nnlabReport.readyMs") > 0  # the page's script ran
        body = page.evaluate("document.body.textContent")  # collapsed details too
        assert all(part in body for part in HOSTILE.split("\u2028")), body[:500]
        assert errors == []


@needs_browser
def test_colour_probe_images_of_their_own_size_are_drawn(tmp_path, nnlab):
    """A run written by a user's own code with 12x20 colour images: the hover image and
    the sprites show them in their colours and shape."""
    import torch

    import nnlab as api

    n = 30
    labels = torch.arange(n) % 3
    images = torch.zeros(n, 3, 12, 20)
    images[torch.arange(n), labels] = 1.0  # class 0 pure red, 1 green, 2 blue
    root = tmp_path / "own"
    with api.start(runs_dir=root) as run:
        spread = torch.rand(n, 2) * 0.2  # 2-D points near their class's corner

        run.watch(images, labels, classes=["r", "g", "b"], encode=lambda x: x[:, :2, 0, 0] + spread)
        run.snapshot(0)
    page_path = nnlab("report", run.id, f"--runs_dir={root}").out.strip()
    with browser.page_of(page_path) as (page, errors):
        x, y, cls, name = page.evaluate(f"window.nnlabReport.pointAt({json.dumps(run.id)}, 4)")
        page.mouse.move(x, y)
        assert page.is_visible("#tooltip") and name == ["r", "g", "b"][cls]
        pixel = page.evaluate(
            """() => Array.from(document.getElementById("tipimg").getContext("2d")
                                .getImageData(10, 10, 1, 1).data)"""
        )
        assert pixel[:3] == [255 if c == cls else 0 for c in range(3)]
        # 20 wide, 12 high, drawn in an 84-pixel box: the bottom rows stay empty
        below = page.evaluate(
            """() => Array.from(document.getElementById("tipimg").getContext("2d")
                                .getImageData(10, 70, 1, 1).data)"""
        )
        assert below[3] == 0
        assert errors == []


def test_side_by_side_panels_share_one_scale_and_are_named_by_what_differs(pages):
    _, runs, paths = pages
    d = page_data(paths["two"])
    a, b = (r["latent"] for r in d["runs"])
    assert a["kind"] == b["kind"] == "density"
    assert a["shared_limits"] == b["shared_limits"]  # one scale, by default
    x0, x1, y0, y1 = a["shared_limits"]
    assert x1 - x0 == pytest.approx(y1 - y0)  # square: the prior's circles stay round
    for L in (a, b):
        assert x0 <= L["limits"][0] and L["limits"][1] <= x1
        assert y0 <= L["limits"][2] and L["limits"][3] <= y1
    assert [r["label"] for r in d["runs"]] == ["β = 1", "β = 10"]  # legends, not "run 2"


@needs_browser
def test_the_one_scale_toggle_redraws_the_panels(pages):
    _, runs, paths = pages
    with browser.page_of(paths["two"]) as (page, errors):
        assert page.is_visible("#sharedbox") and page.is_checked("#shared")
        ids = (runs["vae"], runs["vae10"])
        before = [browser.canvas_pixels(page, i) for i in ids]
        page.uncheck("#shared")
        after = [browser.canvas_pixels(page, i) for i in ids]
        assert before != after  # the narrower panel on its own, tighter scale
        assert errors == []


@needs_browser
def test_metric_axes_start_at_step_0_and_never_pad_below_zero(pages):
    """A one-epoch run's per-epoch numbers sit at the end of a 0..step axis (not on a
    'step 1688 … 1689' one), and quantities that cannot be negative start from 0."""
    _, runs, paths = pages
    d = page_data(paths["vae"])
    with browser.page_of(paths["vae"]) as (page, errors):
        charts = page.evaluate("window.nnlabReport.charts()")
        assert charts and all(ch["range"][0] == 0 for ch in charts)
        by_title = {ch["title"]: ch["range"] for ch in charts}
        rank = by_title["effective rank of hidden layers"]
        assert rank[2] == 0  # not padded below zero
        assert len(d["runs"][0]["metrics"]["epoch_step"]) == 1  # one epoch: one point each
        assert page.evaluate("window.nnlabReport.niceTicks(0, 1688, 4)") == [0, 500, 1000, 1500]
        assert errors == []


def test_masks_carry_their_shape_titles_and_scale(pages):
    """The cube classifier's masks (10 hidden units of 28x28 grey): each unit's shape,
    title and the colour scale travel with the codes the page draws."""
    _, _, made = pages
    data = page_data(made["cube"])
    run = data["runs"][0]
    extra = run["extras"][-1]
    assert extra["what"] == "masks" and extra["units"] == 10
    assert (extra["channels"], extra["height"], extra["width"]) == (1, 28, 28)
    assert extra["titles"][:2] == ["Hidden unit 0", "Hidden unit 1"] and extra["vmax"] > 0
    codes = np.frombuffer(base64.b64decode(extra["b64"]), np.uint8)
    assert codes.size == 10 * 28 * 28


def test_latent_panels_say_whether_they_carry_value_ticks(pages):
    """A VAE's latent panel has value ticks (its axes are z₁, z₂); the cube has none."""
    _, _, made = pages
    assert page_data(made["vae"])["runs"][0]["latent"]["ticks"] is True
    assert page_data(made["cube"])["runs"][0]["latent"]["ticks"] is False
    assert "function drawTicks(run)" in open(made["vae"], encoding="utf-8").read()


def test_the_title_names_the_run_not_latest(store):
    """#38 item 3: the report of `latest` was titled "nnlab report · latest"."""
    from nnlab.render.report import page_data
    from tests.conftest import FIXTURE_CLS

    assert page_data(["latest"], store, points=100)["title"] == FIXTURE_CLS


@needs_browser
def test_tick_labels_carry_the_decimals_their_spacing_needs(pages):
    """#38 item 6: ticks read "0.5000" and "0.002000"."""
    _, _, paths = pages
    with browser.page_of(paths["vae"]) as (page, errors):

        def texts(lo, hi, n):
            return [t for _, t in page.evaluate(f"window.nnlabReport.tickLabels({lo}, {hi}, {n})")]

        assert texts(0, 0.6, 3) == ["0.0", "0.2", "0.4", "0.6"]
        assert texts(0.93, 1.0, 4) == ["0.94", "0.96", "0.98", "1.00"]
        assert texts(0, 0.002, 4) == ["0.0000", "0.0005", "0.0010", "0.0015", "0.0020"]
        assert texts(0, 1688, 4) == ["0", "500", "1000", "1500"]
        assert texts(-0.3, 0.3, 3) == ["-0.2", "0.0", "0.2"]
        assert errors == []


@needs_browser
def test_legends_hide_no_line_and_a_lone_value_is_in_the_legend(pages):
    """#38 item 6: the legend sat over the lines, and a one-epoch run's test loss was a
    stray point labelled with its value inside the chart."""
    _, _, paths = pages
    d = page_data(paths["vae"])
    test_loss = d["runs"][0]["metrics"]["epoch"]["test_loss"]
    assert len(test_loss) == 1
    for name in ("vae", "cube", "two"):
        with browser.page_of(paths[name]) as (page, errors):
            page.wait_for_timeout(300)  # the charts are drawn after the first frame
            charts = page.evaluate("window.nnlabReport.charts()")
            legends = [ch["legend"] for ch in charts if ch["legend"]]
            assert legends and all(lg["hidden"] == 0 for lg in legends), (name, legends)
            if name == "vae":
                loss = next(ch for ch in charts if ch["title"] == "loss")["legend"]["names"]
                assert f"test loss {test_loss[0]:.4g}" in loss, loss
            assert errors == []


@needs_browser
def test_class_labels_of_the_density_never_overlap(pages):
    """#38 item 6: "Pullover/Shirt/Coat" were drawn over each other."""
    _, _, paths = pages
    with browser.page_of(paths["two"]) as (page, errors):
        for v in (0, 3, 1000):
            page.evaluate(
                f"(() => {{ const r = window.nnlabReport; r.state.v = {v}; r.redraw(); }})()"
            )
            for boxes in page.evaluate("window.nnlabReport.labelBoxes()"):
                for i, a in enumerate(boxes):
                    for b in boxes[i + 1 :]:
                        apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
                        assert apart, (a, b)
        assert errors == []


@needs_browser
def test_the_cube_has_three_named_axes_with_their_own_ranges(pages):
    """#38 item 5: the cube's third axis was named from the first's symbol; its axes
    had no values; every point of the sigmoid layer is inside the unit cube."""
    _, _, paths = pages
    latent = page_data(paths["cube"])["runs"][0]["latent"]
    assert latent["axis_labels"] == ["h₁", "h₂", "h₃"]
    assert latent["limits"] == [0.0, 1.0] * 3
    with browser.page_of(paths["cube"]) as (page, errors):
        assert page.evaluate("window.nnlabReport.outside()") == [0]
        assert errors == []
