"""What ``python -m local up`` prints once the stack serves: where it is, and commands to paste into another shell.

Every command printed must work as printed: the ``python -m local`` ones name the stack's state dir when it is not
the default one (else they would look in ``.local`` and exit 4), and every value is shell-quoted (a state dir with a
space or a quote in it is still one word).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from local.stack import StackInfo

__all__ = ["MEMORY", "banner", "local_command"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".local"  # as local.stack's (not imported from there: it loads moto)
MEMORY = (
    "The local stack keeps everything in memory: stopping it forgets every secret, key, client and token "
    "(each start makes a new developer access key)."
)


def local_command(state_dir: Path, *args: str) -> str:
    """``.venv/bin/python -m local ARGS``, with ``--state-dir`` (absolute: the other shell may be elsewhere in the
    repository) unless it is the default one, which the command finds by itself."""
    words = [".venv/bin/python", "-m", "local", *args]
    state_dir = state_dir.resolve()
    if state_dir != DEFAULT_STATE_DIR.resolve():
        words += ["--state-dir", str(state_dir)]
    return shlex.join(words)


def banner(info: StackInfo, state_dir: Path) -> str:
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in info.developer.exports().items())
    schedules = ", ".join(info.schedules) or "none yet"
    width = max(len(info.api_url), len(info.aws_endpoint)) + 2
    api = shlex.quote(info.api_url)
    region = shlex.quote(info.region)
    env = local_command(state_dir, "env")
    notifications = local_command(state_dir, "notifications")
    return f"""
credport local stack is up
  API              {info.api_url:<{width}}(IAM routes: SigV4 and execute-api:Invoke, as API Gateway)
  embedded AWS     {info.aws_endpoint:<{width}}(moto; account {info.account_id}, {info.region})
  developer        {info.developer.user_arn}
  workload role    {info.developer.role_arn}
  schedules        {schedules}

{MEMORY}

Use the developer identity in another shell (in {shlex.quote(str(REPO_ROOT))}):
  export {exports}
  (or: eval "$({env})", which also sets CREDPORT_ENDPOINT and CREDPORT_ISSUER)

Try next (with the developer identity):
  curl {api}/health
  .venv/bin/awscurl --service execute-api --region {region} {shlex.quote(info.api_url + "/whoami")}
  .venv/bin/credport token --endpoint {api} | .venv/bin/credport verify - --issuer {api}
  {notifications}     (what SNS sent: a transfer's download link)
{_organization_lines(info)}
Ctrl-C stops everything.
"""


def _organization_lines(info: StackInfo) -> str:
    """With --organization: the organization, and the two callers' profiles (the developer's exports first)."""
    org = info.organization
    if org is None:
        return ""
    lines = [
        "",
        f"Organization {org.id} (management account {org.management_account}); callers of other accounts:",
        *(f"  {profile:<25} {arn}" for profile, arn in org.callers.items()),
        "  AWS_PROFILE=<profile> .venv/bin/credport token --endpoint " + shlex.quote(info.api_url),
    ]
    return "\n".join(lines) + "\n"
