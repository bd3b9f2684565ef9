"""A process's first invocation runs without the cyclic garbage collector, and what it built is frozen at its end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.coldstart import FirstInvocation
from chalicelib.observability import invocation_middleware

ROOT = Path(__file__).resolve().parents[2]


class FakeCollector:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.calls: list[str] = []

    def isenabled(self) -> bool:
        return self.enabled

    def disable(self) -> None:
        self.calls.append("disable")
        self.enabled = False

    def enable(self) -> None:
        self.calls.append("enable")
        self.enabled = True

    def freeze(self) -> None:
        self.calls.append("freeze")


def http_event() -> Any:
    return SimpleNamespace(context={"requestId": "r-1"})


def lambda_context() -> Any:
    return SimpleNamespace(aws_request_id="i-1", function_name="api_handler")


def test_the_first_invocation_runs_without_the_collector_and_freezes_what_it_built() -> None:
    collector = FakeCollector()
    middleware = invocation_middleware(lambda_context, FirstInvocation(collector))
    seen: list[bool] = []

    def handler(_: Any) -> str:
        seen.append(collector.isenabled())
        return "answer"

    assert middleware(http_event(), handler) == "answer"
    assert seen == [False]
    assert collector.calls == ["disable", "freeze", "enable"]  # frozen before the collector is back
    assert middleware(http_event(), handler) == "answer"
    assert seen == [False, True]
    assert collector.calls == ["disable", "freeze", "enable"]  # the second invocation touches nothing


def test_the_collector_is_back_on_however_the_first_invocation_ends() -> None:
    collector = FakeCollector()
    middleware = invocation_middleware(lambda_context, FirstInvocation(collector))

    def fails(_: Any) -> str:
        raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError, match="the handler failed"):
        middleware(http_event(), fails)
    assert collector.enabled
    assert collector.calls == ["disable", "freeze", "enable"]


def test_the_collector_is_back_on_even_when_freezing_fails() -> None:
    collector = FakeCollector()

    def broken_freeze() -> None:
        raise MemoryError

    collector.freeze = broken_freeze  # type: ignore[method-assign]
    end = FirstInvocation(collector).begin()
    assert end is not None
    with pytest.raises(MemoryError):
        end()
    assert collector.enabled


def test_a_process_that_turned_the_collector_off_keeps_it_off() -> None:
    collector = FakeCollector(enabled=False)
    first = FirstInvocation(collector)
    assert first.begin() is None
    assert first.begin() is None
    assert collector.calls == []
    assert not collector.enabled


def test_an_invocation_beginning_alongside_the_first_ends_the_pause_and_nothing_is_frozen() -> None:
    collector = FakeCollector()
    first = FirstInvocation(collector)
    end = first.begin()
    assert end is not None
    assert not collector.enabled
    assert first.begin() is None  # a second invocation while the first runs (a threaded host)
    assert collector.enabled
    end()
    assert collector.calls == ["disable", "enable"]  # never frozen: the heap holds the other invocation's objects
    assert first.begin() is None
    assert collector.calls == ["disable", "enable"]


def test_a_process_that_is_not_lambda_never_pauses() -> None:
    collector = FakeCollector()
    first = FirstInvocation(collector, enabled=False)
    middleware = invocation_middleware(lambda_context, first)
    assert middleware(http_event(), lambda _: collector.isenabled()) is True
    assert collector.calls == []


def test_one_thread_only_is_the_first() -> None:
    collector = FakeCollector()
    first = FirstInvocation(collector)
    barrier = threading.Barrier(8)
    ends: list[object] = []

    def invoke() -> None:
        barrier.wait()
        ends.append(first.begin())

    threads = [threading.Thread(target=invoke) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(end is not None for end in ends) == 1
    assert collector.calls == ["disable", "enable"]  # the others ran alongside it: the pause ended, nothing frozen


@pytest.mark.parametrize("on_lambda", [True, False])
def test_the_app_pauses_the_real_collector_for_its_first_request_on_lambda_only(on_lambda: bool) -> None:
    """In a fresh interpreter (a freeze would outlive this test's process): the app's own wiring, the real gc."""
    child = textwrap.dedent(
        """
        import gc, json
        import app
        from tests.support.gateway import gateway_event

        seen = []
        original = app.health.status

        def status():
            seen.append(gc.isenabled())
            return original()

        app.health.status = status
        event = gateway_event("/health", {"sourceIp": "127.0.0.1"})
        context = type("Context", (), {"aws_request_id": "cold", "function_name": "api_handler"})()
        frozen_before = gc.get_freeze_count()
        answers = [app.app(event, context)["statusCode"] for _ in range(2)]
        print(json.dumps({
            "answers": answers, "enabled_during": seen, "enabled_after": gc.isenabled(),
            "frozen_before": frozen_before, "frozen_after": gc.get_freeze_count(),
        }))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_FUNCTION_NAME"}
    if on_lambda:
        env["AWS_LAMBDA_FUNCTION_NAME"] = "credport-dev"  # Lambda always sets it
    done = subprocess.run(
        [sys.executable, "-c", child], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["answers"] == [200, 200]
    assert report["enabled_after"] is True
    assert report["frozen_before"] == 0
    if on_lambda:
        assert report["enabled_during"] == [False, True]
        assert report["frozen_after"] > 10_000  # the app and its libraries, never scanned again
    else:
        assert report["enabled_during"] == [True, True]
        assert report["frozen_after"] == 0
