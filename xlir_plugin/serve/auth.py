"""Bearer API keys: from a file and/or `XLIR_API_KEYS`, compared in constant time.

No key configured means no check (the server binds to loopback by default). Keys are never
logged or echoed; only how many there are.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from ..errors import XlirError
from .api_errors import ApiError

KEYS_ENV = "XLIR_API_KEYS"


def load_keys(key_file: str | Path | None = None, environ: dict | None = None) -> list[str]:
    """Keys from `key_file` (one a line; blank lines and `#` comments skipped) and the
    comma-separated `XLIR_API_KEYS`."""
    keys: list[str] = []
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise XlirError(f"{{api_key_file}} {path} is not a file", arguments=["api_key_file"])
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keys.append(line)
    env = (os.environ if environ is None else environ).get(KEYS_ENV, "")
    keys.extend(k.strip() for k in env.split(",") if k.strip())
    return keys


class KeyCheck:
    """Checks an `Authorization: Bearer <key>` header against the configured keys."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode("utf-8") for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def describe(self) -> str:
        return f"{len(self._keys)} key(s)" if self._keys else "off"

    def __repr__(self) -> str:  # never the keys themselves
        return f"KeyCheck({len(self._keys)} key(s))"

    def check(self, header: str | None) -> None:
        """Nothing when the header carries a configured key (or none are configured), else
        ApiError 401. Every key is compared, each in constant time."""
        if not self._keys:
            return
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(
                401,
                "missing API key: send the header `Authorization: Bearer <key>`",
                "missing_api_key",
            )
        token = given.strip().encode("utf-8")
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(token, key)
        if not matched:
            raise ApiError(401, "incorrect API key", "invalid_api_key")
