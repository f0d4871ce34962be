"""``python -m crnfb.analysis.cli ...``: the ``crnfb`` command."""

import sys

from .entry import main

sys.exit(main())
