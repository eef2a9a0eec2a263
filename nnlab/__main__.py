"""python -m nnlab."""

from nnlab.commands.cli import main

if __name__ == "__main__":
    main()
