"""Credential files on the workload's disk: replaced atomically and 0600 from their first byte."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_private_json", "write_private_text"]


def write_private_json(path: Path, document: Any, *, prefix: str) -> None:
    """Write ``document`` as JSON to a 0600 temporary file beside ``path`` (in a 0700 folder), flush it to
    disk, then rename it over ``path``: a reader sees the old file or the new one, never half of either."""
    write_private_text(path, json.dumps(document), prefix=prefix)


def write_private_text(path: Path, text: str, *, prefix: str) -> None:
    """As :func:`write_private_json`, for text written exactly as given (no newline added)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
