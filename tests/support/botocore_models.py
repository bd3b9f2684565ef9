"""One botocore data loader for every botocore session a test process makes.

Each ``ClientFactory`` (the app's composition root, the test's own adapters, the provisioner) starts a botocore
session of its own, as a Lambda container does once, and each new session reads and parses the JSON service models
and endpoint rules again: ~0.3 s of every functional test's setup. The models are botocore's read-only data, so the
test process's sessions share one loader per data path (botocore's own ``create_loader``, whose per-instance cache then
serves every session). Sessions, credentials, clients and their state stay separate: only the parsed files are shared.
boto3 adds its own data directory to its session's loader each time a boto3 session is made (moto makes one at
every ``mock_aws``): on the shared loader it is kept once, or the search path would grow with every test. Never
used by the app, the local stack or a benchmark.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3.session
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


_boto3_setup_loader = boto3.session.Session._setup_loader


def _setup_loader_once(self: boto3.session.Session) -> None:
    _boto3_setup_loader(self)
    paths = self._loader.search_paths
    paths[:] = list(dict.fromkeys(paths))  # boto3's directory, appended again on a loader it already had


def share() -> None:
    """Every botocore session made from now on in this process gets the shared loader (idempotent)."""
    botocore.session.Session._register_data_loader = _register_data_loader
    boto3.session.Session._setup_loader = _setup_loader_once
