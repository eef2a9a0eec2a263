"""Helpers every layer uses: errors, atomic files, the console, progress bars, option parsing."""
