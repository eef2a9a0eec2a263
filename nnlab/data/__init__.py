"""The data layer: which datasets exist, what they hold, and their file formats."""
