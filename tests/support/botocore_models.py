"""One botocore data loader for every botocore session a test process makes.

Each ``ClientFactory`` (the app's composition root, the test's own adapters, the provisioner) starts a botocore
session of its own, as a Lambda container does once, and each new session reads and parses the JSON service models
and endpoint rules again: ~0.3 s of every functional test's setup. The models are botocore's read-only data, so the
test process's sessions share one loader per data path (botocore's own ``create_loader``, whose per-instance cache then
serves every session). Sessions, credentials, clients and their state stay separate: only the parsed files are shared.
Never used by the app, the local stack or a benchmark.
"""

from __future__ import annotations

import threading
from typing import Any

import botocore.loaders
import botocore.session

__all__ = ["share"]

_loaders: dict[Any, botocore.loaders.Loader] = {}
_lock = threading.Lock()


def _loader_for(data_path: Any) -> botocore.loaders.Loader:
    key = tuple(data_path) if isinstance(data_path, list) else data_path
    with _lock:
        loader = _loaders.get(key)
        if loader is None:
            loader = _loaders[key] = botocore.loaders.create_loader(data_path)
        return loader


def _register_data_loader(self: botocore.session.Session) -> None:
    self._components.lazy_register_component("data_loader", lambda: _loader_for(self.get_config_variable("data_path")))


def share() -> None:
    """Every botocore session made from now on in this process gets the shared loader (idempotent)."""
    botocore.session.Session._register_data_loader = _register_data_loader
