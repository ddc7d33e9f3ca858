"""``isoswitch serve`` with a short recovery grace: the restarted switch of the fault suite.

``isoswitch serve`` has no option for ``SafConfig.recovery_grace`` (60 s by
default), and a restarted process only reverses another process's pending
intents once they are that old. This script runs the same runtime and REST
front with the store-and-forward settings given on the command line::

    python tests/faults/switch_proc.py --target HOST:PORT --http-port P --data-dir DIR \
        --config FILE --recovery-grace 1 --recovery-interval 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from http_front.config import FrontConfig
    from http_front.server import serve
    from switch.logs import setup_logging
    from switch.process import hostport, log_level, run_loop, stop_event
    from switch.runtime import RuntimeConfig, open_runtime
    from switch.saf import SafConfig
    from switch.settings import load_settings
    from switch.store import DbConfig

    ap = argparse.ArgumentParser(prog="switch_proc")
    ap.add_argument("--target", type=hostport, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--config")
    ap.add_argument("--recovery-grace", type=float, default=1.0)
    ap.add_argument("--recovery-interval", type=float, default=1.0)
    ap.add_argument("--log-level", type=log_level, default="warning")
    args = ap.parse_args(argv)
    setup_logging(args.log_level)

    async def run() -> int:
        stop = stop_event()
        switch_cfg = load_settings(args.config, env={}).switch.with_target(*args.target)
        saf = SafConfig(recovery_grace=args.recovery_grace, recovery_interval=args.recovery_interval, backoff_cap=2.0)
        cfg = RuntimeConfig(db=DbConfig.from_env(data_dir=Path(args.data_dir)), switch=switch_cfg, saf=saf)
        runtime = await open_runtime(cfg)
        try:
            await serve(runtime, FrontConfig(port=args.http_port, access_log=False), stop)
        finally:
            await runtime.close()
        return 0

    return run_loop(run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
