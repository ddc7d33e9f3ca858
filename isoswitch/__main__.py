"""``python -m isoswitch ...``: the same as the ``isoswitch`` command."""

from __future__ import annotations

import sys

from isoswitch.cli import main

if __name__ == "__main__":
    sys.exit(main())
