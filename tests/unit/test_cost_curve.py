"""bench.cost: the cost curve's arithmetic, the quota each operation meets first, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import cost, cost_model
from bench import cost_prices as p

REPO = Path(__file__).resolve().parents[2]


def figure(name: str, value: float, unit: str = "ops/s", **extra: Any) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "target": "", "met": True, **extra}


def results(*, without: str = "") -> dict[str, Any]:
    """A latest.json as ``python -m bench`` writes it, with round numbers and the figures the model ignores."""
    figures = [
        figure("GET /token through the app handler, envelope signer, RS256", 1_000),
        figure("GET /token through the app handler, envelope signer, ES256", 4_000),
        figure("GET /token through the app handler, envelope signer, ES384", 2_000),
        figure("GET /token through the app handler, envelope signer, ES256, 10 audiences", 10),
        figure("session-token verifications/s through the authorizer", 10_000),
        figure("auto-id server cost per successful request (stores in memory)", 0.002, "s"),
        figure("KMS calls per token on a warm container, kms signer", 1, "calls/token"),
    ]
    return {
        "machine": {"cpu": "Synthetic CPU", "cores": 2},
        "measured_at": 1_796_169_600,
        "figures": [f for f in figures if f["name"] != without],
    }


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(document))
    return path


def test_one_token_priced_by_hand() -> None:
    # GET /token ES256, kms signer, 1 request/s, on a function with a whole vCPU (1,769 MB): 1 ms of CPU and the
    # 10 ms KMS Sign round trip bill 11 ms; one container starts an hour, bills 0.5 s of INIT and looks up three
    # aliases and two public keys, and re-reads the aliases every 300 s. The prices are us-east-1 list prices.
    seconds = {key: 1e-3 for key in cost_model.FIGURES if key != "cold_start.first_token"}
    op = next(o for o in cost_model.operations(seconds) if o.name == "GET /token ES256" and o.signer == "kms")
    row = cost.cost_row(op, 1, {"api_handler": 1769}, {"api_handler": "x86_64"})

    gb = 1769 / 1024
    lambda_usd = 0.20 / 1e6 + gb * (0.011 + 0.5 / 3600) * 0.0000166667
    api_usd = 3.50 / 1e6
    kms_usd = (
        0.15 / 10_000  # the Sign (an ECC key)
        + 3 * 1.00 / (730 * 3600)  # three keys a month, over a month of 1 request/s
        + (3 * 0.03 / 10_000 + 2 * 0.15 / 10_000) / 3600  # DescribeKey x3, GetPublicKey x2, per container start
        + 12 * 3 * 0.03 / 10_000 / 3600  # the aliases again every 300 s
    )
    logs_usd = 950 / 1e9 * 0.50
    assert row.billed_ms == {"api_handler": 11}
    assert row.by_service["Lambda"] == pytest.approx(lambda_usd * 1e6, rel=1e-9)
    assert row.by_service["API Gateway"] == pytest.approx(api_usd * 1e6, rel=1e-9)
    assert row.by_service["KMS"] == pytest.approx(kms_usd * 1e6, rel=1e-9)
    assert row.by_service["Logs"] == pytest.approx(logs_usd * 1e6, rel=1e-9)
    assert row.by_service["Secrets Manager"] == row.by_service["DynamoDB"] == 0
    assert row.usd_per_million == pytest.approx((lambda_usd + api_usd + kms_usd + logs_usd) * 1e6, rel=1e-9)
    assert row.concurrency == pytest.approx(0.011)


def test_tiers_lower_the_price_at_high_volume() -> None:
    # 10,000 requests/s is 26.28 billion a month: most of it in API Gateway's cheapest tiers.
    monthly = 10_000 * 730 * 3600
    expected = 333e6 * 3.50e-6 + 667e6 * 2.80e-6 + 19e9 * 2.38e-6 + (monthly - 20e9) * 1.51e-6
    assert cost.tiered(monthly, p.API_GATEWAY_REST_TIERS) == pytest.approx(expected)
    assert cost.tiered(1e6, p.API_GATEWAY_REST_TIERS) == pytest.approx(3.50)


def test_first_quota_met_at_10000_requests_per_second() -> None:
    rows = {(r.operation, r.signer): r for r in cost.cost_rows(results(), REPO) if r.rps == 10_000}

    # kms signer: KMS's shared request rate for the key type, long before anything else.
    assert rows["GET /token RS256", "kms"].first_quota == "KMS RSA 1,000/s"
    assert rows["GET /token ES256", "kms"].first_quota == "KMS ECC 1,000/s"
    assert rows["GET /token ES256", "kms"].first_quota_rps == pytest.approx(1_000)
    # envelope signer: no KMS call per token; API Gateway's throttle and Lambda's invocation rate, together.
    envelope = rows["GET /token ES256", "envelope"]
    assert envelope.first_quota == "API Gateway 10,000/s and Lambda invocations 10,000/s"
    assert "KMS ECC 1,000/s" not in envelope.quotas_rps
    # A session request is two invocations (authorizer, backend): Lambda's invocation rate at 5,000/s.
    session = rows["session request (authorizer + backend)", "either"]
    assert (session.first_quota, session.first_quota_rps) == ("Lambda invocations 10,000/s", pytest.approx(5_000))
    # auto-id: one write unit and one read unit per request on a new on-demand table (4,000 WRU or 12,000 RRU).
    autoid = rows["POST /auto-id (a secret)", "either"]
    assert autoid.first_quota_rps == pytest.approx(3_000)
    assert autoid.quotas_rps["GetSecretValue 10,000/s"] == pytest.approx(10_000)


def test_markdown_marks_a_rate_past_its_quota(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--results", str(write(tmp_path, results())), "--markdown"]) == 0
    table = capsys.readouterr().out
    kms = [line for line in table.splitlines() if line.startswith("| GET /token RS256 | kms |")]
    assert len(kms) == 3
    assert kms[0].endswith("KMS RSA 1,000/s: met at 1,000 req/s |")
    assert kms[2].endswith("KMS RSA 1,000/s: **met at 1,000 req/s** |")
    assert "measured 2026-12-02 on Synthetic CPU" in table


def test_json_has_every_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--results", str(write(tmp_path, results()))]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["prices_checked"] == p.PRICES_CHECKED
    assert len(document["rows"]) == (3 * 2 + 2) * len(cost.RATES)


def test_a_figure_found_by_key_before_its_name() -> None:
    document = results()
    for f in document["figures"]:
        if f["name"].startswith("session-token"):
            f.update(name="renamed", key="sessions.authorizer", value=5_000)
    assert cost_model.read_figures(document)["sessions.authorizer"] == pytest.approx(1 / 5_000)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (results(without="session-token verifications/s through the authorizer"), "no figure 'sessions.authorizer'"),
        ({"figures": "none"}, "no 'figures' list"),
    ],
)
def test_unusable_results_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: dict[str, Any], reason: str
) -> None:
    assert cost.main(["--results", str(write(tmp_path, document))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert reason in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err


def test_a_missing_results_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--results", str(tmp_path / "absent.json")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"python -m bench.cost: {tmp_path / 'absent.json'}: No such file or directory"
        " (run make bench first: it writes bench/results/latest.json)"
    )


def test_the_deployment_read_from_the_repository() -> None:
    # template.yaml sets no MemorySize or Architectures: chalice's lambda_memory_size (512) and Lambda's x86_64.
    memory, arch = cost_model.deployment(REPO)
    assert memory == {"api_handler": 512, "bearer": 512, "auto_id": 512}
    assert set(arch.values()) == {"x86_64"}


def test_the_regenerate_hint_reads_the_same_file_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path, results())
    assert cost.main(["--results", str(source), "--markdown"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"Figures: {source.name}, ")
    assert last.endswith(f"Regenerate: `.venv/bin/python -m bench.cost --markdown --results {source}`.")
