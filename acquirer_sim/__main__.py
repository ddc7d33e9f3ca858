"""``python -m acquirer_sim [--port 0 ...]``: same as ``isoswitch sim``."""

from __future__ import annotations

import sys

from acquirer_sim.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
