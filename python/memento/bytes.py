"""Byte sizes as memento writes them (``8GiB``, ``512MB``, ``1.5G``, raw bytes)."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1 << 10, "KIB": 1 << 10, "KB": 10**3,
    "M": 1 << 20, "MIB": 1 << 20, "MB": 10**6,
    "G": 1 << 30, "GIB": 1 << 30, "GB": 10**9,
    "T": 1 << 40, "TIB": 1 << 40, "TB": 10**12,
}  # fmt: skip
_PATTERN = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")


def parse_bytes(text: str | int, what: str = "size") -> int:
    """Bytes from ``text`` with the same units as MEMENTO_BUDGET (K/M/G/T and KiB..TiB are
    powers of 1024, KB..TB of 1000). Raises ValueError naming ``what`` and what is accepted."""
    if isinstance(text, bool):
        raise ValueError(f"{what}: expected bytes, got {text!r}")
    if isinstance(text, int):
        if text <= 0:
            raise ValueError(f"{what}: must be positive bytes, got {text}")
        return text
    match = _PATTERN.match(str(text))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"{what}: cannot read {text!r} as a byte size; accepted: a number with an optional "
            "unit B, K, M, G, T, KiB..TiB (powers of 1024) or KB..TB (powers of 1000), "
            "e.g. 8GiB, 512MB, 1.5G"
        )
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ValueError(f"{what}: must be positive bytes, got {text!r}")
    return value


def format_bytes(n: float) -> str:
    """``n`` bytes as memento prints them: 1.50 GiB, 12.00 MiB, 512 B."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"
