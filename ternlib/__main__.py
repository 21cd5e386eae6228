"""``python -m ternlib ...``: the same command line as ``ternlib`` (see :mod:`ternlib.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
