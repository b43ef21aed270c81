"""Records that check themselves: a sha256 over their own content, stored inside them.

Checkpoints and cache entries outlive the run that wrote them and sit where a person or
a tool can edit or damage them. The checksum tells an intact record from an edited or
torn one, so the reader can discard it (and say so) instead of resuming from it or
serving it. It guards against accidents, not against someone who recomputes it.
"""

from __future__ import annotations

import hashlib

from minigen.store import formats

CHECKSUM = "checksum"
MAGIC = b"minigen-sealed"


def digest(record: dict) -> str:
    """sha256 of the record's compact, key-sorted JSON, its own checksum left out."""
    return formats.json_sha256({key: value for key, value in record.items() if key != CHECKSUM})


def seal(record: dict) -> dict:
    return {**record, CHECKSUM: digest(record)}


def is_sealed(record) -> bool:
    """True if `record` is an object whose checksum matches its content."""
    return isinstance(record, dict) and record.get(CHECKSUM) == digest(record)


def seal_bytes(payload: bytes, kind: str) -> bytes:
    """`payload` behind a one-line header naming its kind and sha256."""
    header = b" ".join((MAGIC, kind.encode("ascii"), hashlib.sha256(payload).hexdigest().encode("ascii")))
    return header + b"\n" + payload


def open_bytes(data: bytes, kind: str) -> bytes:
    """The payload of `seal_bytes(payload, kind)`; ValueError naming what is wrong."""
    header, _, payload = data.partition(b"\n")
    parts = header.split(b" ")
    if len(parts) != 3 or parts[0] != MAGIC:
        raise ValueError("it has no checksum header (not written by this minigen, or damaged)")
    if parts[1] != kind.encode("ascii"):
        raise ValueError(f"it is a {parts[1].decode('ascii', 'replace')}, not a {kind}")
    if hashlib.sha256(payload).hexdigest().encode("ascii") != parts[2]:
        raise ValueError("its checksum does not match its content (edited or damaged)")
    return payload
