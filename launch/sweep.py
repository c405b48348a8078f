#!/usr/bin/env python
"""``python launch/sweep.py ...`` is ``prernn-sweep ...`` (the command line lives in ``cli/``)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as a script from a clean checkout
    sys.path.insert(0, str(ROOT))

from cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
