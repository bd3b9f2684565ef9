"""Every AWS call credport's Lambda functions make, and the offline check that each function's IAM policy allows it.

- :mod:`tests.permissions.model`: the vocabulary (an :class:`Entry` per call, the :class:`Access` requests AWS
  authorises for it) and the deployment's names, read from template.yaml and .chalice/config.json.
- :mod:`tests.permissions.catalog`: the catalog itself, one module per capability.
- :mod:`tests.permissions.scan`: what the code says (every ``aws_call`` site, any client call that bypasses one).
- :mod:`tests.permissions.check`: each entry against its function's policy with the embedded IAM (local.iam).

Why here and not in ``chalicelib/``: the catalog is a test oracle. Under ``tests/`` it can never be imported by the app
(nor shipped in the Lambda package chalice builds from ``chalicelib/``), and it may use what only tests have: the IAM
engine, cfn-lint's template loader, botocore's service models. :func:`entry_for` is the hook for runtime checks.
"""

from __future__ import annotations

from tests.permissions.catalog import CATALOG, NOT_IN_LAMBDA
from tests.permissions.lookup import entries_for, entry_for
from tests.permissions.model import Access, Entry, Key

__all__ = ["CATALOG", "NOT_IN_LAMBDA", "Access", "Entry", "Key", "entries_for", "entry_for"]
