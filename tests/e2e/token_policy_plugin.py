"""Test hook loaded into a local stack with ``--plugin``: the token policy document comes from a test's directory.

``CREDPORT_TOKEN_POLICY_FILE`` names a file under ``chalicelib/`` relative to the app's root (chalice packages
nothing else), and a test must not write into the repository's own ``chalicelib/``, which is shared with everyone
working in the checkout. This hook moves only the root that path is read from (``chalicelib.tokens.service.APP_ROOT``)
to ``$CREDPORT_E2E_APP_ROOT``, a directory the test fills. Everything else runs as deployed: the setting's own check,
loading the document and validating it against the deployment at the first token request, and the policy's checks
at every request.
"""

from __future__ import annotations

import os
from pathlib import Path

from chalicelib.tokens import service

__all__: list[str] = []  # nothing to import: loading the module is the hook (never import it into a test process)

service.APP_ROOT = Path(os.environ["CREDPORT_E2E_APP_ROOT"])
