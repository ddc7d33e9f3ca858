"""``python -m acquirer_sim [--port 0 ...]``: same as ``isoswitch sim``.

``python -m acquirer_sim wallet-token ...`` mints a wallet test token instead (:mod:`acquirer_sim.wallet`).
"""

from __future__ import annotations

import sys

from acquirer_sim.cli import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["wallet-token"]:
        from acquirer_sim import wallet

        sys.exit(wallet.main(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
