"""``python -m crnfb.analysis.cli ...``: the ``crnfb`` command."""

import sys

from .entry import main

if __name__ == "__main__":       # importing it (a docs or API walk) runs nothing
    sys.exit(main())
