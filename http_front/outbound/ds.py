"""The directory server client: :class:`~switch.secure3d.ports.DirectoryPort` over aiohttp.

JSON over HTTP with short timeouts (``[secure3d] ds_timeout``). Anything but
a 200 with the JSON object expected is a :class:`DirectoryError` whose text
never holds the PAN (the request's body does; the error names the path and
the status only).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from switch.secure3d.ports import DirectoryError, Enrolment, Support

__all__ = ["DsClient"]


class DsClient:
    """``POST {ds_url}/3ds1/enrol``, ``/3ds2/prepare``, ``/3ds2/authenticate``; one session, made on first use."""

    def __init__(self, ds_url: str, *, timeout: float = 5.0) -> None:
        self._base = ds_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 2.0))
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._base + path, json=body) as resp:
                if resp.status != 200:
                    raise DirectoryError(f"{path}: HTTP {resp.status}")
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise DirectoryError(f"{path}: {type(e).__name__}") from None
        if not isinstance(doc, dict):
            raise DirectoryError(f"{path}: not a JSON object")
        return doc

    async def enrol(self, pan: str, amount: str, currency: str, merchant_id: str) -> Enrolment:
        doc = await self._post(
            "/3ds1/enrol", {"pan": pan, "amount": amount, "currency": currency, "merchant_id": merchant_id}
        )
        enrolled = doc.get("enrolled")
        if enrolled not in ("Y", "N", "U"):
            raise DirectoryError("/3ds1/enrol: no enrolled Y/N/U")
        acs_url, acct_id = doc.get("acs_url"), doc.get("acct_id")
        return Enrolment(
            enrolled,
            acs_url if isinstance(acs_url, str) else None,
            acct_id if isinstance(acct_id, str) else None,
        )

    async def prepare(self, pan: str) -> Support:
        doc = await self._post("/3ds2/prepare", {"pan": pan})
        supported, method_url = doc.get("supported"), doc.get("method_url")
        if not isinstance(supported, bool):
            raise DirectoryError("/3ds2/prepare: no supported flag")
        version = doc.get("message_version")
        return Support(
            supported,
            method_url if isinstance(method_url, str) and method_url else None,
            version if isinstance(version, str) else "2.2.0",
        )

    async def authenticate(self, areq: dict[str, Any]) -> str:
        doc = await self._post("/3ds2/authenticate", areq)
        ares = doc.get("ares")
        if not isinstance(ares, str):
            raise DirectoryError("/3ds2/authenticate: no ares")
        return ares

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
