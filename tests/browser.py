"""The browser harness for `nnlab report` pages: headless Chromium (Debian's `chromium`
package) driven by Playwright. The tests use it, and so does docs/report_figures.py for
the README's screenshot and the measured frame times.

    pip install playwright && apt-get install -y chromium
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    """Debian's Chromium (or $NNLAB_CHROMIUM), if installed."""
    env = os.environ.get("NNLAB_CHROMIUM")
    if env:
        return env
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if chromium_path() is None:
        return "no Chromium (apt-get install -y chromium)"
    return None


@contextlib.contextmanager
def page_of(path: str | Path, width: int = 1400, height: int = 1000):
    """A loaded report page: (page, errors) where errors collects console errors and
    uncaught exceptions."""
    url = path if str(path).startswith("http") else Path(path).resolve().as_uri()
    with browser_page(width, height) as (page, errors):
        page.goto(url)
        page.wait_for_function("window.nnlabReport !== undefined", timeout=30000)
        yield page, errors


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 1000):
    """A blank page of headless Chromium: (page, errors), errors collecting console
    errors and uncaught exceptions."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, errors
        finally:
            browser.close()


def canvas_pixels(page, run_id: str) -> bytes:
    """The RGBA bytes of a run's latent canvas (as base64: a JSON array of a million
    numbers took seconds a call to pass)."""
    import base64

    data = page.evaluate(
        """id => { const c = document.querySelector(`canvas[data-run="${id}"]`);
                   const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                   let s = "";
                   for (let i = 0; i < d.length; i += 0x8000) {
                     s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
                   }
                   return btoa(s); }""",
        run_id,
    )
    return base64.b64decode(data)


def count_colour(pixels: bytes, rgb: tuple[int, int, int]) -> int:
    """Pixels of exactly this colour."""
    import numpy as np

    a = np.frombuffer(pixels, dtype=np.uint8).reshape(-1, 4)
    return int(((a[:, 0] == rgb[0]) & (a[:, 1] == rgb[1]) & (a[:, 2] == rgb[2])).sum())


def drag_frame_times(page, frames: int = 60) -> dict:
    """Move the slider through `frames` positions as a drag does (an input event each) and
    return the page's own redraw times (performance.now() around each redraw), in ms."""
    times = page.evaluate(
        """n => { const s = document.getElementById("slider"), max = +s.max, out = [];
                  const r = window.nnlabReport;
                  for (let k = 0; k < n; k++) {
                    s.value = String(Math.round(k / Math.max(1, n - 1) * max));
                    s.dispatchEvent(new Event("input"));
                    out.push(r.frameTimes[r.frameTimes.length - 1]);
                  }
                  return out; }""",
        frames,
    )
    return {
        "median_ms": statistics.median(times),
        "p90_ms": sorted(times)[int(0.9 * (len(times) - 1))],
        "max_ms": max(times),
        "frames": len(times),
    }
