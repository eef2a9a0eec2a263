"""The YAML presets of `nnlab train --preset=NAME`, shipped inside the package as nnlab.configs."""
