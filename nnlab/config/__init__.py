"""Run configurations: the config classes and their fields, presets, grids, task permutations."""
