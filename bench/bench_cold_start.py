"""Cold start: a fresh interpreter imports the app and serves its first ``/token`` (an API Gateway-shaped
event with an IAM identity, against an embedded AWS on loopback), next to a fresh interpreter that imports
boto3 and creates one client. Both are timed from spawn until their work is done (the first response built, the
client made), so both pay the interpreter's own start; the child reads ``time.monotonic()`` then, a clock the
parent shares on Linux (CLOCK_MONOTONIC is system-wide). The interpreter's exit is not part of a cold start: Lambda
keeps the process for the next invocation, and a process that froze its objects (chalicelib/coldstart.py) also
exits faster, which would flatter the ratio. Spawn to exit is reported in the note, for comparison.
The cold process's peak RSS is reported against the smallest Lambda it could run in (128 MB; the functions are
given 512 MB, .chalice/config.json).

Like with like: both children get the same environment (with ``AWS_LAMBDA_FUNCTION_NAME``, which Lambda always
sets and chalicelib/coldstart.py looks for), and both read every module as bytecode (a private
``PYTHONPYCACHEPREFIX`` that the warm-up round fills). Before, the figure followed the shell: with
``PYTHONDONTWRITEBYTECODE`` set, the baseline read boto3's installed bytecode while the app compiled its ~60 modules
at every spawn (~100 ms of CPU on this machine kind); without it, the app read whatever ``__pycache__`` the repository
held. On Lambda the app reads bytecode only if its package ships it: /var/task is read-only, so what Python compiles
there at a cold start is not kept; `make package` adds it (local/package_bytecode.py). Spawns alternate (baseline,
cold; then cold, baseline) and the figure is the median of the per-round ratios.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import Figure, paired

TARGET_RATIO = 1.5
TARGET_RSS_MIB = 100.0
ROUNDS = 25  # a spawn pair is ~1 s and per-round ratios spread ~+-7%: 25 rounds kept runs within +-6% of each other
ROOT = Path(__file__).resolve().parents[1]

COLD = r"""
import json, sys
import app
event = {
    "resource": "/token", "path": "/token", "httpMethod": "GET",
    "headers": {"Host": "abc123.execute-api.us-east-1.amazonaws.com"},
    "multiValueHeaders": {"Host": ["abc123.execute-api.us-east-1.amazonaws.com"]},
    "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
    "stageVariables": None, "body": None, "isBase64Encoded": False,
    "requestContext": {
        "resourcePath": "/token", "httpMethod": "GET", "path": "/api/token", "stage": "api",
        "requestId": "cold-start", "accountId": "123456789012", "apiId": "abc123",
        "identity": {"userArn": "arn:aws:iam::123456789012:user/bench", "accountId": "123456789012",
                     "caller": "AIDABENCH", "user": "AIDABENCH", "accessKey": "AKIABENCH",
                     "sourceIp": "127.0.0.1"},
    },
}
class Context:
    function_name = "credport-dev"; memory_limit_in_mb = 128; aws_request_id = "cold-start"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:credport-dev"
    def get_remaining_time_in_millis(self): return 30000
response = app.app(event, Context())
import time
done = time.monotonic()
assert response["statusCode"] == 200, response
assert json.loads(response["body"])["token"].count(".") == 2
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across execve, so it would report the parent's peak.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rss_kib": int(hwm.split()[1]), "done": done}))
"""

BASELINE = """
import boto3; boto3.session.Session(region_name='us-east-1').client('sts')
import json, time
print(json.dumps({"done": time.monotonic()}))
"""


@dataclass
class Spawned:
    """One child: seconds from spawn until its work was done, and until it exited; what it printed last."""

    ready: float
    exited: float
    report: dict[str, Any]


def _spawn(code: str, env: dict[str, str]) -> Spawned:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    exited = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"cold-start child failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Spawned(ready=report["done"] - started, exited=exited, report=report)


class ReadyClock:
    """A clock for :func:`bench.harness.paired` that advances by each child's spawn-to-ready time only."""

    def __init__(self) -> None:
        self.total = 0.0
        self.exits: dict[str, list[float]] = {"cold": [], "baseline": []}

    def __call__(self) -> float:
        return self.total

    def spawn(self, side: str, code: str, env: dict[str, str]) -> Spawned:
        spawned = _spawn(code, env)
        self.total += spawned.ready
        self.exits[side].append(spawned.exited)
        return spawned

    def exit_median(self, side: str) -> float:
        """Median seconds from spawn to exit of ``side``'s children, the warm-up round's (the first) left out."""
        return statistics.median(self.exits[side][1:])


def _children_environment(base: dict[str, str], pycache: str) -> dict[str, str]:
    """What both children run with: the same variables, and bytecode read from (and written once to) ``pycache``."""
    env = {k: v for k, v in base.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    return {**env, "PYTHONPYCACHEPREFIX": pycache}


def run(quick: bool = False) -> list[Figure]:
    rounds = 1 if quick else ROUNDS
    from moto.server import ThreadedMotoServer

    from chalicelib.aws.clients import ClientFactory, ClientOptions
    from local.provision import Provisioner, app_functions
    from local.template import Template, load_template

    # werkzeug logs each request the embedded AWS serves (one line per AWS call of every child) unless told not to.
    werkzeug = logging.getLogger("werkzeug")
    werkzeug_level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    saved = dict(os.environ)
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CREDPORT_"))}
        aws = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            # Lambda always sets it; credport pauses the collector for a first invocation only on Lambda.
            "AWS_LAMBDA_FUNCTION_NAME": "credport-dev",
        }
        os.environ.update(aws)
        import app

        template = Template(
            load_template(ROOT / "template.yaml"),
            parameters={"Prefix": "credport-dev", "Issuer": "http://127.0.0.1:8000"},
            account_id="123456789012",
            region="us-east-1",
            stack_name="credport-dev",
        )
        factory = ClientFactory(ClientOptions(region="us-east-1"))
        provisioned = Provisioner(template, factory.client, functions=app_functions(app.app)).provision()
        # The caller is an IAM user of the account: credport reads it (iam:GetUser) and checks its unique id.
        user_id = factory.client("iam").create_user(UserName="bench")["User"]["UserId"]
        cold_code = COLD.replace("AIDABENCH", user_id)
        with tempfile.TemporaryDirectory(prefix="credport-bench-bytecode-") as pycache:
            env = _children_environment({**base, **aws, **provisioned.app_environment()}, pycache)
            _spawn(cold_code, env)  # the deployment's first token ever creates the signing keys: not a cold start
            rss_mib: list[float] = []

            clock = ReadyClock()

            def cold() -> None:
                rss_mib.append(clock.spawn("cold", cold_code, env).report["rss_kib"] / 1024)

            # The warm-up round also compiles the baseline's modules (boto3's) into the bytecode cache.
            # Wall time from spawn to ready: the work happens in the children and the embedded AWS, not on this thread.
            measured = paired(
                cold,
                lambda: clock.spawn("baseline", BASELINE, env),
                number=1,
                rounds=rounds,
                better="cheaper",
                warmup=1,
                clock=clock,
            )
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()
        werkzeug.setLevel(werkzeug_level)
    return [
        Figure(
            key="cold_start.first_token",
            name="cold start: fresh interpreter, import app, first /token",
            value=measured.subject,
            unit="s",
            baseline="import boto3 + create one client",
            baseline_value=measured.baseline,
            ratio=measured.ratio,
            target=f"<= {TARGET_RATIO}x",
            met=measured.ratio <= TARGET_RATIO,
            note=(
                "spawn to first response / to client made; both read bytecode compiled ahead; spawns alternate, median"
                f" of per-round ratios; spawn to exit {clock.exit_median('cold') / clock.exit_median('baseline'):.2f}x"
                f" ({clock.exit_median('cold') * 1000:.0f} ms; the warm-up round left out)"
            ),
            spread=measured.spread,
            rounds=measured.rounds,
        ),
        Figure(
            key="cold_start.peak_rss",
            name="peak RSS of that cold-start process",
            value=max(rss_mib),
            unit="MiB",
            target=f"<= {TARGET_RSS_MIB:.0f} MiB",
            met=max(rss_mib) <= TARGET_RSS_MIB,
        ),
    ]
