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
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.load_report import OPERATIONS, LoadMonitor, Recorder, complaints, format_table, summarise
from bench.load_stack import (
    BIN,
    TIMEOUT,
    Jwks,
    Prepared,
    Signer,
    kid_of,
    prepare,
    run_command,
    start_session,
)
from chalicelib.autoid.protocol import Want
from client.autoid import fetch
from client.aws_call import CallError
from local.launcher import RunningStack, launch

__all__ = ["OPERATIONS", "LoadOptions", "format_table", "main", "run"]

RESULTS = Path(__file__).parent / "results" / "load.json"
# Each worker walks this cycle (from its own offset): auto-id costs the server an RSA-4096 decrypt, so it
# comes half as often as the other two.
MIX = ("token", "session", "token", "session", "autoid")
SETTLE = 1.5  # seconds of traffic kept after the last rotation round, so its effect is measured


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
        stack: RunningStack,
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
        self.record.signing_kids.add(kid_of(token))
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
        self.record.session_kids.add(kid_of(fresh))
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
        self.record.error(
            op, seconds, f"{op}: {detail} {body} (kid {kid_of(self._session)})".strip(), rejected=rejected
        )
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

    def __init__(self, stack: RunningStack, session_secret: str, *, first: float, every: float, t0: float) -> None:
        self._stack = stack
        self._first, self._every, self._t0 = first, every, t0
        self._stop = threading.Event()
        self.results: list[dict[str, Any]] = []
        self.last_finished: float | None = None
        self._commands: list[tuple[str, list[str], Callable[[dict[str, Any]], bool]]] = [
            (
                "signing_keys",
                [str(BIN / "credport-admin"), "token", "rotate", "--force", "--local"],
                # One report per enabled algorithm: {"RS256": {"kind": ...}, "ES384": {...}}.
                lambda out: bool(out) and all(report.get("kind") == "rotate" for report in out.values()),
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
            result = run_command(self._stack, command)
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
        stack = launch(workdir / "stack", "--quiet")
        try:
            summary = _measure(stack, workdir, options)
            summary["stack_startup_s"] = round(stack.started_in, 1)
        except BaseException:
            stack.stop()
            print("the load run failed; the stack's complaints:", *complaints(stack.log), sep="\n", file=sys.stderr)
            raise
        code = stack.stop()
        summary["stack_exit"] = code
        summary["stack_complaints"] = complaints(stack.log)
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


def _measure(stack: RunningStack, workdir: Path, options: LoadOptions) -> dict[str, Any]:
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
    return summarise(options, elapsed, workers, rotator, jwks, generations, load, prepared)


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
