"""``[secure3d]``: where the directory server is, the ACS's public key, how long a cardholder may take."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Secure3DConfig"]


@dataclass(frozen=True, slots=True)
class Secure3DConfig:
    """3-D Secure of the switch (``isoswitch up`` fills ``ds_url`` and ``acs_public_key`` from the simulator)."""

    ds_url: str | None = None  # the directory server, e.g. http://127.0.0.1:8584/ds; unset: no 3-D Secure
    acs_public_key: Path | None = None  # PEM of the key the ACS signs PaRes/ARes/RReq/CRes with
    session_timeout: float = 900.0  # seconds a cardholder has to finish (method, challenge) before it expires
    ds_timeout: float = 5.0  # seconds per call to the directory server (the AReq waits for the ACS)
    sweep_interval: float = 30.0  # seconds between sweeps of abandoned sessions (their orders end declined)
    sweep_batch: int = 100  # sessions one sweep round ends at most (more rounds follow at once while full)
    # Base URL the ACS reaches this switch at, server to server (the RReq's threeDSServerURL), when it differs
    # from the browsers' (docker-compose: http://isoswitch:8080); unset: [http] public_url or the request's host.
    server_url: str | None = None

    def __post_init__(self) -> None:
        if self.session_timeout <= 0 or self.ds_timeout <= 0 or self.sweep_interval <= 0:
            raise ValueError("session_timeout, ds_timeout and sweep_interval must be positive")
        if self.sweep_batch < 1:
            raise ValueError("sweep_batch must be at least 1")
        for name in ("ds_url", "server_url"):
            url = getattr(self, name)
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http:// or https:// URL")
