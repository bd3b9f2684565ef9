"""``credport-admin`` mistakes: an unknown stack, no local stack, AWS saying AccessDenied, a rotation too soon; each one
line on standard error with its exit code (client/errors.py), no traceback. AWS is moto, or (AccessDenied, which
moto does not enforce without IAM emulation) botocore's own Stubber."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.aws.clients import ClientFactory
from client.admin import main
from client.errors import Exit
from local.provision import Provisioned


@pytest.fixture(autouse=True)
def logger_streams() -> Iterator[None]:
    """credport-admin points the library's log handler at the process's standard error (client/admin.py), which in
    a test is capsys's, closed after it: put the handler's own stream back."""
    import chalicelib.observability  # noqa: F401 (the handler)

    handlers = [h for h in logging.getLogger("credport").handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.stream for h in handlers]
    yield
    for handler, stream in zip(handlers, streams, strict=True):
        handler.stream = stream


def failed(capsys: pytest.CaptureFixture[str], argv: list[str], code: Exit) -> str:
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("credport-admin: ")
    assert err.count("\n") == 1, err
    return err


def test_an_unknown_stack(moto: None, capsys: pytest.CaptureFixture[str]) -> None:
    err = failed(capsys, ["token", "publish", "--stack", "no-such-stack"], Exit.CONFIG)
    assert "no-such-stack does not exist: check --stack and --region" in err


def test_no_local_stack(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CREDPORT_LOCAL_STATE_DIR", str(tmp_path))
    for argv in (["token", "rotate", "--local"], ["autoid", "show", "c1", "--local"]):
        err = failed(capsys, argv, Exit.CONFIG)
        assert f"no local stack is running from state dir {tmp_path}" in err
        assert "start one with `make run`" in err


def test_a_corrupt_local_state(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CREDPORT_LOCAL_STATE_DIR", str(tmp_path))
    (tmp_path / "stack.json").write_text('{"half": ')
    err = failed(capsys, ["token", "publish", "--local"], Exit.CONFIG)
    assert f"no local stack is running from state dir {tmp_path}" in err


def test_access_denied_names_the_action(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    real = boto3.session.Session.client

    def denying(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        client = real(self, name, *args, **kwargs)
        stubber = Stubber(client)
        stubber.add_client_error(
            "describe_stacks",
            service_error_code="AccessDenied",
            service_message="User: arn:aws:iam::123456789012:user/dev is not authorized to perform:"
            " cloudformation:DescribeStacks on resource: arn:aws:cloudformation:us-east-1:123456789012:stack/p/*",
            http_status_code=403,
        )
        stubber.activate()
        return client

    monkeypatch.setattr(boto3.session.Session, "client", denying)
    err = failed(capsys, ["token", "publish", "--stack", "p"], Exit.REFUSED)
    assert (
        "AWS refused DescribeStacks (AccessDenied): your identity may not perform cloudformation:DescribeStacks" in err
    )


def deploy_outputs_stack(factory: ClientFactory, provisioned: Provisioned) -> None:
    template = {
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "marker"}}},
        "Outputs": {name: {"Value": value} for name, value in provisioned.outputs.items()},
    }
    factory.client("cloudformation").create_stack(StackName="credport-prod", TemplateBody=json.dumps(template))


def kinds(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """The kind of run of each algorithm's key set, from ``token rotate --json`` (``{alg: {kind, ...}}``)."""
    return {alg: report["kind"] for alg, report in json.loads(capsys.readouterr().out).items()}


def test_a_rotation_too_soon_says_force_with_its_dashes(
    provisioned: Provisioned, factory: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_outputs_stack(factory, provisioned)
    assert main(["token", "rotate", "--stack", "credport-prod", "--json"]) == Exit.OK  # the first keys
    assert kinds(capsys) == {"RS256": "bootstrap", "ES384": "bootstrap"}  # one report per enabled algorithm
    err = failed(capsys, ["token", "rotate", "--stack", "credport-prod"], Exit.REFUSED)
    assert err.endswith(": pass --force to rotate anyway\n")
    assert "use force" not in err
    assert main(["token", "rotate", "--stack", "credport-prod", "--force", "--json"]) == Exit.OK
    assert kinds(capsys) == {"RS256": "rotate", "ES384": "rotate"}


def test_revoke_current_of_one_algorithm_or_of_an_algorithm_not_enabled(
    provisioned: Provisioned, factory: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_outputs_stack(factory, provisioned)
    assert main(["token", "rotate", "--stack", "credport-prod", "--json"]) == Exit.OK
    capsys.readouterr()
    err = failed(capsys, ["token", "revoke-current", "--alg", "ES256", "--stack", "credport-prod"], Exit.USAGE)
    assert "--alg ES256 is not enabled (enabled: RS256, ES384)" in err
    assert main(["token", "revoke-current", "--alg", "ES384", "--stack", "credport-prod", "--json"]) == Exit.OK
    assert kinds(capsys) == {"ES384": "revoke"}  # the other algorithm's keys are untouched


def test_enroll_refusals_keep_their_codes(
    provisioned: Provisioned, factory: ClientFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deploy_outputs_stack(factory, provisioned)
    target = ["--stack", "credport-prod", "--endpoint", "https://api.example"]
    bundle = tmp_path / "b.json"
    refused = failed(
        capsys, ["autoid", "enroll", "c1", "--secret", "credport-dev/*", "--out", str(bundle), *target], Exit.USAGE
    )
    assert "refused" in refused  # the policy reaches credport's own secrets: the operator's input (400)
    assert main(["autoid", "enroll", "c1", "--secret", "credport-dev/autoid/x", "--out", str(bundle), *target]) == 0
    capsys.readouterr()
    again = failed(
        capsys,
        ["autoid", "enroll", "c1", "--secret", "credport-dev/autoid/x", "--out", str(tmp_path / "2.json"), *target],
        Exit.REFUSED,
    )
    assert "already exists" in again  # a definite no (409)
    exists = failed(capsys, ["autoid", "enroll", "c2", "--out", str(bundle), *target], Exit.USAGE)
    assert f"--out {bundle} exists" in exists


@pytest.mark.parametrize(
    ("variable", "config", "named"),
    [
        ("AWS_MAX_ATTEMPTS", None, "$AWS_MAX_ATTEMPTS"),
        ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", None, "$AWS_METADATA_SERVICE_NUM_ATTEMPTS"),
        (None, "max_attempts = abc", "the AWS profile's max_attempts"),
    ],
)
def test_an_aws_setting_botocore_cannot_convert_names_the_setting(
    moto: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str | None,
    config: str | None,
    named: str,
) -> None:
    # botocore converts these when it first needs them and fails with a bare ValueError (no variable in it).
    if variable is not None:
        monkeypatch.setenv(variable, "abc")
    if config is not None:
        (tmp_path / "config").write_text(f"[default]\n{config}\n")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
        monkeypatch.delenv("AWS_PROFILE", raising=False)
    err = failed(capsys, ["token", "publish", "--stack", "no-such-stack"], Exit.CONFIG)
    assert f"credport-admin: {named} has a value botocore cannot use (invalid literal for int()" in err
    assert err.endswith(": fix it or unset it\n")
