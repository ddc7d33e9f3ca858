"""How a command that cannot go on ends: one line on stderr and an exit status, never a traceback.

1: a part cannot start or be reached (a port in use, the database down or refusing us, a TLS
file missing or not PEM, the simulator exiting at once); 2: the configuration is wrong (the
message names the file or the variable, the section and the key), as for a wrong flag.
Anything else is a bug, and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["CannotStart", "exit_status"]


class CannotStart(Exception):
    """A part of the system could not start; the message says which and why."""


def exit_status(error: BaseException) -> int | None:
    """The exit status for ``error``, or None when it is not one of the expected failures."""
    # Imported here: `isoswitch sim` and `isoswitch --help` load none of the core.
    from switch.settings import ConfigError, TlsFileError
    from switch.store.errors import DatabaseUnavailable, VaultConfigError
    from switch.wire.tls import TlsError

    if isinstance(error, TlsFileError | TlsError | CannotStart | DatabaseUnavailable | VaultConfigError | OSError):
        return 1
    if isinstance(error, ConfigError):
        return 2
    return None
