"""``make load``: a bounded load run against the local stack on loopback while every key rotates.

``python -m bench.load [--duration 60] [--workers 8] [--rotate-every 10] [--out bench/results/load.json]``

It starts its own local stack (``python -m local up`` on free ports, in a temporary state directory), enrols
an auto-id client allowed one secret, and gives each worker a session and its own copy of the client's
bundle. For ``--duration`` seconds the workers then mix, over HTTP:

- ``token``: a SigV4-signed ``GET /token``; every token is verified with credport's own verifier against the
  JWKS as a relying party held it when the token was requested (a copy refetched every second);
- ``session_refresh`` and ``session_show``: ``POST /session/refresh`` with the worker's bearer token, then
  ``GET /session`` with the refreshed one;
- ``autoid``: ``client.autoid.fetch`` (the workload library: sealed request, answer opened, news saved),

while a rotation thread rotates every key every ``--rotate-every`` seconds: the token signing keys
(``credport-admin token rotate --force --local``: their schedule, ``python -m local trigger
rotate_signing_keys``, refuses to rotate again sooner than the longest token TTL plus the JWKS max-age, at least
120 s), the session key (``python -m local rotate``) and the auto-id server keys and client generations
(``python -m local trigger rotate_autoid_keys``).

Every non-2xx answer or exception is an error; a valid credential that is refused (a token that does not
verify, or was signed by a key the JWKS did not yet publish; a signed request, session token or bundle answered
with 401/403) is also a *rejected valid token*. The run writes ``bench/results/load.json``, prints a table,
and exits 1 when there was any error, rejection or failed rotation. It never runs in ``make test``
(``tests/e2e/test_load_smoke.py`` runs it for a few seconds).
"""

from __future__ import annotations

import argparse
import base64
import configparser
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chalicelib.autoid.protocol import Want
from chalicelib.tokens.exceptions import TokenRejected
from chalicelib.tokens.verify import TokenVerifier
from client.autoid import fetch
from client.aws_call import CallError

__all__ = ["LoadOptions", "Stack", "main", "run", "start_stack", "stop_stack"]

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "load.json"
BIN = Path(sys.executable).parent
OPERATIONS = ("token", "session_refresh", "session_show", "autoid")
# Each worker walks this cycle (from its own offset): auto-id costs the server an RSA-4096 decrypt, so it
# comes half as often as the other two.
MIX = ("token", "session", "token", "session", "autoid")
TIMEOUT = 30.0
SETTLE = 1.5  # seconds of traffic kept after the last rotation round, so its effect is measured
MAX_ERROR_SAMPLES = 20


# The stack ------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """A ``python -m local up`` subprocess and what it wrote to its ready file."""

    process: subprocess.Popen[bytes]
    info: dict[str, Any]
    state_dir: Path
    log: Path

    @property
    def api(self) -> str:
        return str(self.info["api_url"])

    @property
    def region(self) -> str:
        return str(self.info["region"])

    def env(self) -> dict[str, str]:
        """A child environment with the stack's developer profile, pointed at this stack's state."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        return {**env, **self.info["aws_exports"], "CREDPORT_LOCAL_STATE_DIR": str(self.state_dir)}

    def credentials(self) -> Credentials:
        parser = configparser.ConfigParser()
        parser.read(self.info["aws_exports"]["AWS_SHARED_CREDENTIALS_FILE"])
        section = parser[self.info["aws_exports"].get("AWS_PROFILE", "credport-local")]
        return Credentials(section["aws_access_key_id"], section["aws_secret_access_key"])

    def aws_client(self, service: str) -> Any:
        import boto3.session

        creds = self.credentials()
        return boto3.session.Session(
            aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key, region_name=self.region
        ).client(service, endpoint_url=self.info["aws_endpoint"])


def start_stack(state_dir: Path, *, timeout: float = 120) -> Stack:
    """The local stack on free loopback ports, as ``tests/e2e/conftest.py`` starts it (without test plugins)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ready, log = state_dir / "ready.json", state_dir / "stack.log"
    command = [sys.executable, "-m", "local", "up", "--aws-port", "0", "--api-port", "0"]
    command += ["--state-dir", str(state_dir), "--ready-file", str(ready), "--quiet"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"the local stack did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return Stack(process, json.loads(ready.read_text()), state_dir, log)


def stop_stack(stack: Stack) -> int:
    stack.process.send_signal(signal.SIGINT)
    try:
        return stack.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        return stack.process.wait()


# Measuring ------------------------------------------------------------------------------------------------


@dataclass
class Recorder:
    """One worker's (or the rotator's) measurements; merged after the run, so no lock is needed."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})
    errors: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    samples: list[dict[str, Any]] = field(default_factory=list)
    signing_kids: set[str] = field(default_factory=set)
    session_kids: set[str] = field(default_factory=set)

    def ok(self, op: str, seconds: float) -> None:
        self.latencies[op].append(seconds)

    def error(self, op: str, seconds: float, message: str, *, rejected: bool = False) -> None:
        self.latencies[op].append(seconds)
        self.errors[op] += 1
        if rejected:
            self.rejected[op] += 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append({"op": op, "at": round(time.time(), 3), "rejected": rejected, "error": message})


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class CpuSnapshot:
    at: float
    busy: float  # seconds of busy CPU, all cores (from /proc/stat)
    total: float
    processes: dict[int, tuple[str, float]]  # pid -> (command, CPU seconds)


def _cpu_snapshot() -> CpuSnapshot:
    ticks = os.sysconf("SC_CLK_TCK")
    busy = total = 0.0
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [float(v) / ticks for v in fields[:8]]
        total = sum(values)
        busy = total - values[3] - values[4]  # idle, iowait
    except (OSError, IndexError, ValueError):
        pass
    processes: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parts = stat[stat.rfind(")") + 2 :].split()
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        command = " ".join(a.decode(errors="replace")[:40] for a in argv[:3] if a) or f"[{name}]"
        processes[int(entry.name)] = (command, (float(parts[11]) + float(parts[12])) / ticks)
    return CpuSnapshot(time.monotonic(), busy, total, processes)


class LoadMonitor:
    """The machine's load during the run: 1-minute load average (sampled), busy CPU, who used it."""

    def __init__(self, stack_pid: int) -> None:
        self._stack_pid = stack_pid
        self._stop = threading.Event()
        self._loadavg: list[float] = []
        self._thread = threading.Thread(target=self._sample, name="load-monitor", daemon=True)
        self._start = _cpu_snapshot()
        self._own_start = os.times()

    def start(self) -> None:
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self._loadavg.append(os.getloadavg()[0])

    def finish(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=5)
        end, own = _cpu_snapshot(), os.times()
        elapsed = max(end.at - self._start.at, 1e-9)
        cores = os.cpu_count() or 1
        busy = end.busy - self._start.busy

        def used(pid: int) -> float:
            before = self._start.processes.get(pid)
            after = end.processes.get(pid)
            if after is None:
                return 0.0
            return after[1] - (before[1] if before and before[0] == after[0] else 0.0)

        stack = used(self._stack_pid)
        generator = (own.user - self._own_start.user) + (own.system - self._own_start.system)
        rotations = (own.children_user - self._own_start.children_user) + (
            own.children_system - self._own_start.children_system
        )
        others = sorted(
            (
                (used(pid), command, pid)
                for pid, (command, _) in end.processes.items()
                if pid not in (os.getpid(), self._stack_pid)
            ),
            reverse=True,
        )
        return {
            "cores": cores,
            "seconds": round(elapsed, 1),
            "loadavg_1min": {
                "start": round(self._loadavg[0], 2) if self._loadavg else None,
                "max": round(max(self._loadavg), 2) if self._loadavg else None,
                "end": round(os.getloadavg()[0], 2),
            },
            "cpu_busy_fraction": round(busy / (elapsed * cores), 3),
            "cpu_seconds": {
                "stack": round(stack, 1),
                "load_generator": round(generator, 1),
                "rotation_commands": round(rotations, 1),
                "other_processes_and_kernel": round(max(0.0, busy - stack - generator - rotations), 1),
            },
            "top_other_processes": [
                {"pid": pid, "command": command, "cpu_seconds": round(seconds, 1)}
                for seconds, command, pid in others[:5]
                if seconds >= 0.5
            ],
        }


# Calls ----------------------------------------------------------------------------------------------------


def _kid(token: str) -> str:
    header = token.split(".", 1)[0]
    document = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    return str(document.get("kid"))


class Signer:
    def __init__(self, credentials: Credentials, region: str) -> None:
        self._auth = SigV4Auth(credentials, "execute-api", region)

    def headers(self, method: str, url: str) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=b"")
        self._auth.add_auth(request)
        return dict(request.headers)


class Jwks:
    """A relying party's copy of the stack's JWKS, refetched every ``refresh_every`` seconds (a cache always
    younger than one rotation), verified with credport's own verifier.

    A key is published one rotation before it signs, so a token must verify against the copy held when it
    was requested. One that verifies only against a JWKS fetched afterwards was signed by a key published
    late: a relying party with a fresh cache refuses it, so it counts as a rejected valid token too.
    """

    def __init__(self, api: str, *, refresh_every: float = 1.0) -> None:
        self._api = api
        self._refresh_every = refresh_every
        self._stop = threading.Event()
        self.fetches = 0
        self.fetch_errors: list[dict[str, Any]] = []
        self._verifier: TokenVerifier = self._load()
        self._thread = threading.Thread(target=self._refresh, name="jwks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT + 5)

    def _load(self) -> TokenVerifier:
        response = requests.get(f"{self._api}/.well-known/jwks.json", timeout=TIMEOUT)
        response.raise_for_status()
        self.fetches += 1
        return TokenVerifier(response.json(), issuer=self._api)

    def _refresh(self) -> None:
        while not self._stop.wait(self._refresh_every):
            try:
                self._verifier = self._load()
            except (requests.RequestException, ValueError) as error:
                failure = {"op": "jwks", "at": round(time.time(), 3), "rejected": False}
                self.fetch_errors.append({**failure, "error": f"GET /.well-known/jwks.json: {error!r}"[:300]})

    def snapshot(self) -> TokenVerifier:
        return self._verifier

    def refused(self, token: str, held: TokenVerifier) -> str | None:
        """Why ``token`` is refused by ``held`` (the copy taken before it was requested); None if it is not."""
        try:
            held.verify(token)
            return None
        except TokenRejected as first:
            reason = str(first)
        try:
            self._load().verify(token)
        except TokenRejected as second:
            return f"the issued token does not verify: {second}"
        return f"signed by key {_kid(token)}, absent from the JWKS served before it was requested ({reason})"


def start_session(api: str, signer: Signer, http: requests.Session) -> str:
    url = f"{api}/session"
    response = http.post(url, headers=signer.headers("POST", url), timeout=TIMEOUT)
    if response.status_code != 200:
        raise RuntimeError(f"POST /session -> {response.status_code} {response.text[:200]}")
    return str(response.json()["token"])


# Preparing ------------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    client_id: str
    secret_id: str
    secret_value: str
    bundles: list[Path]
    sessions: list[str]
    session_secret: str


def _command(stack: Stack, args: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO_ROOT, env=stack.env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def prepare(stack: Stack, workdir: Path, workers: int, signer: Signer) -> Prepared:
    """A secret, an auto-id client allowed to read it (a bundle per worker), a session per worker; one warm-up
    call of each kind (a container's first call loads its keys: not what a load run measures)."""
    prefix = str(stack.info["prefix"])
    secret_id = f"{prefix}/autoid/load-{uuid.uuid4().hex[:8]}"
    secret_value = f"load-{uuid.uuid4().hex}"
    stack.aws_client("secretsmanager").create_secret(Name=secret_id, SecretString=secret_value)
    client_id = f"load-{uuid.uuid4().hex[:10]}"
    enrolled_dir = workdir / "enrolled"
    enrolled_dir.mkdir(mode=0o700)
    enrolled = enrolled_dir / "bundle.json"
    enroll = [str(BIN / "credport-admin"), "autoid", "enroll", client_id, "--secret", secret_id]
    result = _command(stack, [*enroll, "--out", str(enrolled), "--local"])
    if result.returncode != 0:
        raise RuntimeError(f"credport-admin autoid enroll failed: {result.stderr.strip()}")
    answer = fetch(enrolled, Want(secret_id=secret_id), timeout=TIMEOUT)
    if answer.get("secret", {}).get("value") != secret_value:
        raise RuntimeError("the warm-up auto-id call did not return the secret")
    bundles = []
    for index in range(workers):
        home = workdir / f"worker-{index}"
        home.mkdir(mode=0o700)
        bundles.append(Path(shutil.copy2(enrolled, home / "bundle.json")))
    http = requests.Session()
    url = f"{stack.api}/token"
    warm = http.get(url, headers=signer.headers("GET", url), timeout=TIMEOUT)
    if warm.status_code != 200:
        raise RuntimeError(f"the warm-up GET /token answered {warm.status_code}: {warm.text[:200]}")
    sessions = [start_session(stack.api, signer, http) for _ in range(workers)]
    session_secrets = [name for name in stack.info["rotations"] if "session" in name]
    if len(session_secrets) != 1:
        raise RuntimeError(f"expected one session-key rotation, the stack has {stack.info['rotations']}")
    return Prepared(client_id, secret_id, secret_value, bundles, sessions, session_secrets[0])


# Running --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadOptions:
    duration: float = 60.0
    workers: int = 8
    rotate_every: float = 10.0
    out: Path | None = RESULTS
    keep: bool = False


class Worker:
    def __init__(
        self,
        index: int,
        stack: Stack,
        prepared: Prepared,
        signer: Signer,
        jwks: Jwks,
        stop: threading.Event,
    ) -> None:
        self.index = index
        self.record = Recorder()
        self._api = stack.api
        self._prepared = prepared
        self._bundle = prepared.bundles[index]
        self._session = prepared.sessions[index]
        self._signer = signer
        self._jwks = jwks
        self._stop = stop
        self._http = requests.Session()

    def run(self) -> None:
        step = self.index
        while not self._stop.is_set():
            kind = MIX[step % len(MIX)]
            step += 1
            try:
                if kind == "token":
                    self.token()
                elif kind == "session":
                    self.session()
                else:
                    self.autoid()
            except Exception as unexpected:  # a bug in the load generator must show, not stop the worker
                self.record.error(kind if kind in OPERATIONS else "session_refresh", 0.0, repr(unexpected))

    def _timed(self, call: Callable[[], requests.Response]) -> tuple[requests.Response | None, float, str]:
        started = time.perf_counter()
        try:
            response = call()
        except requests.RequestException as error:
            return None, time.perf_counter() - started, f"{type(error).__name__}: {error}"
        return response, time.perf_counter() - started, ""

    def token(self) -> None:
        url = f"{self._api}/token"
        held = self._jwks.snapshot()
        response, seconds, failure = self._timed(
            lambda: self._http.get(url, headers=self._signer.headers("GET", url), timeout=TIMEOUT)
        )
        if response is None or response.status_code != 200:
            detail = failure or f"HTTP {response.status_code if response is not None else '-'}"
            body = response.text[:200] if response is not None else ""
            rejected = response is not None and response.status_code in (401, 403)
            self.record.error("token", seconds, f"GET /token: {detail} {body}".strip(), rejected=rejected)
            return
        token = str(response.json()["token"])
        refused = self._jwks.refused(token, held)
        if refused is not None:
            self.record.error("token", seconds, refused, rejected=True)
            return
        self.record.signing_kids.add(_kid(token))
        self.record.ok("token", seconds)

    def session(self) -> None:
        token = self._session
        response, seconds, failure = self._timed(
            lambda: self._http.post(
                f"{self._api}/session/refresh", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
            )
        )
        if response is None or response.status_code != 200:
            self._session_failed("session_refresh", seconds, failure, response)
            return
        fresh = str(response.json()["token"])
        self.record.ok("session_refresh", seconds)
        self.record.session_kids.add(_kid(fresh))
        self._session = fresh
        response, seconds, failure = self._timed(
            lambda: self._http.get(
                f"{self._api}/session", headers={"Authorization": f"Bearer {fresh}"}, timeout=TIMEOUT
            )
        )
        if response is None or response.status_code != 200:
            self._session_failed("session_show", seconds, failure, response)
            return
        self.record.ok("session_show", seconds)

    def _session_failed(self, op: str, seconds: float, failure: str, response: requests.Response | None) -> None:
        detail = failure or f"HTTP {response.status_code if response is not None else '-'}"
        body = response.text[:200] if response is not None else ""
        rejected = response is not None and response.status_code in (401, 403)
        self.record.error(op, seconds, f"{op}: {detail} {body} (kid {_kid(self._session)})".strip(), rejected=rejected)
        if rejected:  # carry on with a new session rather than count the same refusal again and again
            try:
                self._session = start_session(self._api, self._signer, self._http)
            except Exception as error:
                self.record.error(op, 0.0, f"could not start a replacement session: {error!r}")

    def autoid(self) -> None:
        started = time.perf_counter()
        try:
            answer = fetch(self._bundle, Want(secret_id=self._prepared.secret_id), timeout=TIMEOUT)
        except CallError as refused:
            seconds = time.perf_counter() - started
            rejected = refused.status in (401, 403)
            self.record.error("autoid", seconds, f"POST /auto-id: {refused}", rejected=rejected)
            return
        except Exception as error:
            self.record.error("autoid", time.perf_counter() - started, f"auto-id fetch: {error!r}")
            return
        seconds = time.perf_counter() - started
        if answer.get("secret", {}).get("value") != self._prepared.secret_value:
            self.record.error("autoid", seconds, "auto-id answered without the secret's value")
            return
        self.record.ok("autoid", seconds)

    def generation(self) -> int:
        return int(json.loads(self._bundle.read_text())["gen"])


class Rotator:
    """Fires the three rotations in turn, every ``every`` seconds, until told to stop."""

    def __init__(self, stack: Stack, session_secret: str, *, first: float, every: float, t0: float) -> None:
        self._stack = stack
        self._first, self._every, self._t0 = first, every, t0
        self._stop = threading.Event()
        self.results: list[dict[str, Any]] = []
        self.last_finished: float | None = None
        self._commands: list[tuple[str, list[str], Callable[[dict[str, Any]], bool]]] = [
            (
                "signing_keys",
                [str(BIN / "credport-admin"), "token", "rotate", "--force", "--local"],
                lambda out: out.get("kind") == "rotate",
            ),
            (
                "session_key",
                [sys.executable, "-m", "local", "rotate", session_secret],
                lambda out: bool(out.get("token")) and out.get("secret") == session_secret,
            ),
            (
                "autoid_keys",
                [sys.executable, "-m", "local", "trigger", "rotate_autoid_keys"],
                lambda out: out.get("ok") is True,
            ),
        ]
        self._thread = threading.Thread(target=self._loop, name="rotator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """No new round starts; returns once the round in progress (if any) has finished."""
        self._stop.set()
        self._thread.join(timeout=300)

    def _loop(self) -> None:
        delay = self._first
        while not self._stop.wait(delay):
            began = time.monotonic()
            for name, command, accepted in self._commands:
                self.results.append(self._fire(name, command, accepted))
            self.last_finished = time.monotonic()
            delay = max(0.0, self._every - (self.last_finished - began))

    def _fire(self, name: str, command: list[str], accepted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        started = time.monotonic()
        try:
            result = _command(self._stack, command)
            output: Any = json.loads(result.stdout) if result.stdout.strip() else {}
            ok = result.returncode == 0 and isinstance(output, dict) and accepted(output)
            detail = "" if ok else f"exit {result.returncode}: {result.stdout.strip()[:300]} {result.stderr[-300:]}"
        except (subprocess.TimeoutExpired, ValueError) as error:
            ok, detail = False, repr(error)
        finished = time.monotonic()
        entry: dict[str, Any] = {
            "rotation": name,
            "at_s": round(started - self._t0, 2),
            "seconds": round(finished - started, 2),
            "ok": ok,
        }
        if detail:
            entry["detail"] = detail.strip()
        return entry


def run(options: LoadOptions) -> dict[str, Any]:
    """One load run with its own stack; the summary (also written to ``options.out`` when given)."""
    if options.duration <= 0 or options.workers <= 0 or options.rotate_every <= 0:
        raise ValueError("duration, workers and rotate-every must be positive")
    workdir = Path(tempfile.mkdtemp(prefix="credport-load-"))
    try:
        stack_started = time.monotonic()
        stack = start_stack(workdir / "stack")
        try:
            startup = time.monotonic() - stack_started
            summary = _measure(stack, workdir, options)
            summary["stack_startup_s"] = round(startup, 1)
        except BaseException:
            stop_stack(stack)
            print("the load run failed; the stack's complaints:", *_complaints(stack.log), sep="\n", file=sys.stderr)
            raise
        code = stop_stack(stack)
        summary["stack_exit"] = code
        summary["stack_complaints"] = _complaints(stack.log)
        summary["passed"] = summary["passed"] and code == 0
    finally:
        if options.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _complaints(log: Path, limit: int = 20) -> list[str]:
    """The stack's warnings, errors and tracebacks (its log also holds a line per request served)."""
    marks = ('"level":"WARNING"', '"level":"ERROR"', '"level":"CRITICAL"', "Traceback", "Error", "failed")
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line[:500] for line in lines if any(mark in line for mark in marks)][-limit:]


def _measure(stack: Stack, workdir: Path, options: LoadOptions) -> dict[str, Any]:
    signer = Signer(stack.credentials(), stack.region)
    prepared = prepare(stack, workdir, options.workers, signer)
    jwks = Jwks(stack.api)
    stop = threading.Event()
    workers = [Worker(i, stack, prepared, signer, jwks, stop) for i in range(options.workers)]
    threads = [threading.Thread(target=w.run, name=f"load-{w.index}", daemon=True) for w in workers]
    monitor = LoadMonitor(stack.process.pid)
    t0 = time.monotonic()
    rotator = Rotator(
        stack,
        prepared.session_secret,
        first=min(options.rotate_every, options.duration / 3),
        every=options.rotate_every,
        t0=t0,
    )
    monitor.start()
    jwks.start()
    for thread in threads:
        thread.start()
    rotator.start()
    time.sleep(options.duration)
    # The run ends after --duration, and never in the middle of a rotation round: no round starts after it,
    # traffic goes on until the round in progress has finished, and for a moment after, so its effect shows.
    rotator.stop()
    if rotator.last_finished is not None:
        time.sleep(max(0.0, rotator.last_finished + SETTLE - time.monotonic()))
    stop.set()
    for thread in threads:
        thread.join(timeout=TIMEOUT + 5)
    elapsed = time.monotonic() - t0
    jwks.stop()
    load = monitor.finish()
    generations = [w.generation() for w in workers]
    return _summarise(options, elapsed, workers, rotator, jwks, generations, load, prepared)


def _summarise(
    options: LoadOptions,
    elapsed: float,
    workers: list[Worker],
    rotator: Rotator,
    jwks: Jwks,
    generations: list[int],
    load: dict[str, Any],
    prepared: Prepared,
) -> dict[str, Any]:
    from bench.harness import machine

    operations: dict[str, Any] = {}
    errors: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    samples: list[dict[str, Any]] = []
    for worker in workers:
        errors.update(worker.record.errors)
        rejected.update(worker.record.rejected)
        samples.extend(worker.record.samples)
    errors["jwks"] = len(jwks.fetch_errors)
    samples.extend(jwks.fetch_errors)
    for op in OPERATIONS:
        latencies = [s for w in workers for s in w.record.latencies[op]]
        operations[op] = {
            "count": len(latencies),
            "errors": errors[op],
            "rejected_valid": rejected[op],
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "max_ms": round(max(latencies, default=0.0) * 1000, 2),
            "throughput_per_s": round(len(latencies) / elapsed, 2),
        }
    all_latencies = [s for w in workers for op in OPERATIONS for s in w.record.latencies[op]]
    rotation_failures = sum(1 for r in rotator.results if not r["ok"])
    rounds = Counter(r["rotation"] for r in rotator.results if r["ok"])
    totals = {
        "requests": len(all_latencies),
        "errors": sum(errors.values()),
        "rejected_valid_tokens": sum(rejected.values()),
        "rotations_ok": sum(rounds.values()),
        "rotations_failed": rotation_failures,
        "p50_ms": round(percentile(all_latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(all_latencies, 0.99) * 1000, 2),
        "throughput_per_s": round(len(all_latencies) / elapsed, 2),
    }
    passed = (
        totals["errors"] == 0
        and totals["rejected_valid_tokens"] == 0
        and rotation_failures == 0
        and all(operations[op]["count"] > 0 for op in OPERATIONS)
    )
    return {
        "passed": passed,
        "measured_at": int(time.time()),
        "machine": machine(),
        "options": {"duration_s": options.duration, "workers": options.workers, "rotate_every_s": options.rotate_every},
        "elapsed_s": round(elapsed, 2),
        "operations": operations,
        "totals": totals,
        "observed": {
            "signing_kids": len(set().union(*(w.record.signing_kids for w in workers))),
            "session_kids": len(set().union(*(w.record.session_kids for w in workers))),
            "autoid_generation": {"enrolled": 1, "min_at_end": min(generations), "max_at_end": max(generations)},
            "jwks_fetches": jwks.fetches,
        },
        "rotations": rotator.results,
        "load": load,
        "error_samples": sorted(samples, key=lambda s: float(s["at"]))[:MAX_ERROR_SAMPLES],
        "notes": (
            "latency is the client's round trip over loopback; autoid includes the client library's own work "
            "(bundle load, RSA-4096 seal, answer decrypt); token excludes its JWKS verification"
        ),
    }


def format_table(summary: dict[str, Any]) -> str:
    header = ("operation", "count", "errors", "rejected", "p50", "p99", "max", "throughput")
    rows = [header]
    for op, figures in summary["operations"].items():
        rows.append(
            (
                op,
                str(figures["count"]),
                str(figures["errors"]),
                str(figures["rejected_valid"]),
                f"{figures['p50_ms']:.1f} ms",
                f"{figures['p99_ms']:.1f} ms",
                f"{figures['max_ms']:.1f} ms",
                f"{figures['throughput_per_s']:.1f} /s",
            )
        )
    t = summary["totals"]
    rows.append(
        (
            "all",
            str(t["requests"]),
            str(t["errors"]),
            str(t["rejected_valid_tokens"]),
            f"{t['p50_ms']:.1f} ms",
            f"{t['p99_ms']:.1f} ms",
            "",
            f"{t['throughput_per_s']:.1f} /s",
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, lines[1])
    o, load, observed = summary["options"], summary["load"], summary["observed"]
    cpu = load["cpu_seconds"]
    lines += [
        "",
        f"{summary['elapsed_s']:.1f} s, {o['workers']} workers; rotations every {o['rotate_every_s']:g} s: "
        f"{t['rotations_ok']} ok, {t['rotations_failed']} failed",
        f"seen: {observed['signing_kids']} signing keys, {observed['session_kids']} session keys, auto-id generation "
        f"1 -> {observed['autoid_generation']['min_at_end']}..{observed['autoid_generation']['max_at_end']}, "
        f"{observed['jwks_fetches']} JWKS fetches",
        f"machine: {summary['machine']['cpu']}, {load['cores']} cores; busy {load['cpu_busy_fraction']:.0%}; "
        f"load average {load['loadavg_1min']['start']} -> max {load['loadavg_1min']['max']}; CPU s: stack "
        f"{cpu['stack']}, load generator {cpu['load_generator']}, rotation commands {cpu['rotation_commands']}, "
        f"other processes and kernel {cpu['other_processes_and_kernel']}",
    ]
    if summary.get("error_samples"):
        lines.append("first errors:")
        lines += [f"  [{s['op']}] {s['error']}" for s in summary["error_samples"][:10]]
    failed = [r for r in summary["rotations"] if not r["ok"]]
    if failed:
        lines.append("failed rotations:")
        lines += [f"  {r['rotation']} at {r['at_s']} s: {r.get('detail', '')}" for r in failed]
    if summary.get("stack_complaints"):
        lines.append(f"the stack's warnings and errors ({len(summary['stack_complaints'])}, see the JSON):")
        lines += [f"  {line[:200]}" for line in summary["stack_complaints"][:5]]
    lines.append("PASSED: 0 errors, 0 rejected valid tokens" if summary["passed"] else "FAILED")
    return "\n".join(lines)


@contextmanager
def _quiet_app_logs() -> Iterator[None]:
    """The client library and verifier log through credport's logger; keep them off the table."""
    import logging

    logger = logging.getLogger("credport")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent client threads (default 8)")
    parser.add_argument("--rotate-every", type=float, default=10.0, help="seconds between rotation rounds")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"summary JSON (default {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stack directory (its log)")
    args = parser.parse_args(argv)
    options = LoadOptions(args.duration, args.workers, args.rotate_every, args.out, args.keep)
    print(
        f"load: {options.duration:g} s, {options.workers} workers, rotations every {options.rotate_every:g} s ...",
        file=sys.stderr,
        flush=True,
    )
    with _quiet_app_logs():
        summary = run(options)
    print(format_table(summary))
    if options.out is not None:
        print(f"\nwrote {options.out}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
