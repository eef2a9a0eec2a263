"""python -m nnlab."""

from nnlab.cli import main

if __name__ == "__main__":
    main()
