"""The REST front of isoswitch: the orders API of seeds/003 on aiohttp.

``create_app(runtime, config)`` builds it, ``serve(runtime, config, stop)``
runs it until ``stop`` is set.
"""

from http_front.app import create_app
from http_front.config import FrontConfig
from http_front.server import RunningServer, serve, start_app, start_front

__all__ = [
    "FrontConfig",
    "RunningServer",
    "create_app",
    "serve",
    "start_app",
    "start_front",
]
