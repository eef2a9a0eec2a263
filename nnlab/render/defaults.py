"""The defaults of the picture options that both the command line and the Python API take,
kept here once (no imports: the help pages read them without loading any drawing code)."""

from __future__ import annotations

# nnlab animate, Run.animate() and Run.figure(): what to draw, the GIF's frame rate, the
# pixels per inch of a 5.6-inch panel
ANIMATE = {"kind": "auto", "fps": 10, "dpi": 100}
