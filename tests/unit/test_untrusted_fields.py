"""Fields that reach AWS, fed arbitrary Unicode: the imported document (name, value, description), the token
service's query parameters, a transfer client id, the deployment's configuration and the command lines.

The importer runs against a secret store that encodes its arguments the way botocore does (strict UTF-8): before
chalicelib/untrusted.py a lone surrogate in a value or description raised UnicodeEncodeError there (a 500 on
``POST /transfer/import``, a dead letter for an inbox file) instead of ImportRefused.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chalicelib import transfer
from chalicelib.config import Env, Settings
from chalicelib.envelope import seal
from chalicelib.errors import ConfigError
from chalicelib.tokens.exceptions import InvalidAudience, InvalidTtl
from chalicelib.tokens.policy import MintRequest, TokenPolicy
from chalicelib.tokens.policy_errors import AudienceNotAllowed
from chalicelib.tokens.request import read_token_request
from chalicelib.transfer.exceptions import ImportRefused, UnknownClient
from chalicelib.transfer.importer import Importer
from chalicelib.untrusted import TextKind, check_text, encodable
from client.arguments import parse_checked
from tests.unit.test_config import VALID
from tests.unit.test_untrusted_parsers import EXAMPLES, JSON, JSON_BYTES, KEYS, MANY, RECIPIENT, only, utext

PREFIX = "credport-dev/imported/"
GOOD = {"secret_name": PREFIX + "db", "value": "s3cr3t", "description": "the database"}


class BotocoreLikeSecrets:
    """A secret store that, like botocore, encodes every string it sends as strict UTF-8, and records calls."""

    def __init__(self) -> None:
        self.stored: list[dict[str, Any]] = []

    def create_or_add_version(self, name: str, value: str, **kwargs: Any) -> tuple[str, str]:
        for text in (name, value, *(v for v in kwargs.values() if isinstance(v, str))):
            text.encode("utf-8")  # UnicodeEncodeError, as botocore raises it, for a lone surrogate
        self.stored.append({"name": name, "value": value, **kwargs})
        return f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}", "v1"


def importer(secrets: BotocoreLikeSecrets) -> Importer:
    keys = SimpleNamespace(opening=lambda: KEYS)
    return Importer(None, secrets, keys, bucket="b", name_prefix=PREFIX)  # type: ignore[arg-type]


def imported(plaintext: bytes) -> tuple[BotocoreLikeSecrets, str | None]:
    """What reached the store, and the refusal's reason (None when the file imported)."""
    secrets = BotocoreLikeSecrets()
    try:
        importer(secrets).import_envelope(seal(RECIPIENT, plaintext), token="t", source="test")
    except ImportRefused as refused:
        return secrets, refused.reason
    return secrets, None


@pytest.mark.parametrize(
    ("field", "text", "reason"),
    [
        ("value", "pass\ud800word", "unencodable_text"),
        ("value", "\udfff", "unencodable_text"),
        ("description", "\udc80", "unencodable_text"),
        ("description", "line\x00", "forbidden_character"),
        ("description", "\u202egnp.exe", "forbidden_character"),
        ("description", "\uffff", "forbidden_character"),
        ("note", "\ud800", "unencodable_text"),  # an unknown field: the document is refused as a whole
    ],
)
def test_an_imported_field_aws_cannot_take_is_refused_before_the_store(field: str, text: str, reason: str) -> None:
    secrets, refused = imported(json.dumps({**GOOD, field: text}).encode())
    assert refused == reason
    assert secrets.stored == []


@MANY
@given(
    st.one_of(
        st.dictionaries(st.sampled_from([*GOOD, "extra"]), JSON | utext(80), max_size=4).map(lambda d: {**GOOD, **d}),
        st.builds(lambda name, value: {**GOOD, "secret_name": PREFIX + name, "value": value}, utext(20), utext(60)),
    ).flatmap(
        lambda d: st.sampled_from(
            [json.dumps(d).encode(), json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass")]
        )
    )
    | JSON_BYTES
)
@example(json.dumps({**GOOD, "value": "\ud800"}).encode())
@example(json.dumps({**GOOD, "description": "\ud800"}).encode())
def test_the_importer_stores_only_what_aws_can_take_or_refuses(plaintext: bytes) -> None:
    EXAMPLES["transfer.Importer (document)"] += 1
    secrets, refused = imported(plaintext)
    if refused is not None:
        assert secrets.stored == []
        return
    (stored,) = secrets.stored
    assert stored["name"].startswith(PREFIX)
    assert stored["name"].isascii()
    assert encodable(stored["value"])
    if stored["description"] is not None:
        assert check_text(stored["description"], TextKind.FREE_TEXT) == stored["description"]


# --- the token service's query parameters and a transfer client's id ----------------------------------------------

SETTINGS = Settings.from_env(VALID)


@MANY
@given(utext(80), utext(12))
@example("sts.amazonaws.com\ud800", "9\udc80")
def test_token_query_parameters_give_a_value_or_their_400(aud: str, ttl: str) -> None:
    """The query's syntax is a 400 (read_token_request); an audience outside the allow-list is the token policy's
    403 (audience_not_allowed). Anything else would be a 500."""
    EXAMPLES["tokens.read_token_request (aud/ttl) + the default policy"] += 1
    request = only(InvalidAudience, lambda: read_token_request({"aud": aud}, SETTINGS))
    if request is not None:
        allowed = only(AudienceNotAllowed, lambda: POLICY.check(mint(request.audiences)))
        (audience,) = request.audiences
        assert allowed is None or audience in SETTINGS.token_audiences or audience == SETTINGS.token_default_audience
    timed = only(InvalidTtl, lambda: read_token_request({"ttl": ttl}, SETTINGS))
    assert timed is None or type(timed.ttl) is int


POLICY = TokenPolicy.default(SETTINGS.token_audiences, SETTINGS.token_max_ttl, SETTINGS.token_algorithms)


def mint(audiences: tuple[str, ...]) -> MintRequest:
    return MintRequest(
        subject="arn:aws:iam::123456789012:role/r",
        account="123456789012",
        org_id=None,
        principal_tags=None,
        audiences=audiences,
        ttl=SETTINGS.token_default_ttl,
        algorithm=SETTINGS.token_algorithms[0],
        tag_keys=(),
    )


def unreachable() -> Any:
    raise AssertionError("only the sender may be asked for")


@MANY
@given(utext(80))
def test_a_transfer_client_id_reaches_the_sender_only_when_it_is_one(
    client_id: str,
) -> None:
    EXAMPLES["transfer.TransferRequests.send (client id)"] += 1
    asked: list[str] = []
    sender = SimpleNamespace(send=lambda cid: asked.append(cid) or SimpleNamespace())
    requests = transfer.TransferRequests(
        importer=unreachable, sender=lambda: sender, link_store=unreachable, bucket="b", rotation_days=0
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transfer.Sender, "describe", staticmethod(lambda report: {}))
        only(UnknownClient, lambda: requests.send(client_id))
    assert all(cid.isascii() and encodable(cid) for cid in asked)


# --- configuration and command lines ------------------------------------------------------------------------------


def test_an_environment_value_that_is_not_utf8_is_a_config_problem() -> None:
    """os.environ hands bytes that are not UTF-8 over as lone surrogates; an ARN took them as they were."""
    bad = VALID[Env.NOTIFY_TOPIC_ARN] + "\udcff"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**VALID, Env.NOTIFY_TOPIC_ARN: bad, Env.TOKEN_AUDIENCES: "a\udc80"})
    assert f"{Env.NOTIFY_TOPIC_ARN}: is not valid UTF-8 text" in caught.value.problems
    assert f"{Env.TOKEN_AUDIENCES}: is not valid UTF-8 text" in caught.value.problems
    assert encodable(caught.value.message)


ENV_NAMES = sorted({*VALID, Env.PREFIX, Env.ISSUER, Env.TOKEN_AUDIENCES, Env.TRANSFER_IMPORT_PREFIX, Env.AWS_TIMEOUT})


@MANY
@given(st.dictionaries(st.sampled_from(ENV_NAMES), utext(60) | st.sampled_from(list(VALID.values())), max_size=4))
def test_settings_from_any_environment_are_settings_or_one_config_error(changes: dict[str, str]) -> None:
    EXAMPLES["config.Settings.from_env"] += 1
    settings = only(ConfigError, lambda: Settings.from_env({**VALID, **changes}))
    if settings is not None:
        texts = [v for v in vars(settings).values() if isinstance(v, str)]
        texts += [v for v in vars(settings.resources).values() if isinstance(v, str)]
        assert all(encodable(text) for text in [*texts, *settings.token_audiences])


def test_command_line_text_that_is_not_utf8_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, ``send-file`` sealed the bad name for the importer to quarantine; ``credport-admin`` sent it to AWS."""
    from client.cli import main

    key, value = tmp_path / "key.pem", tmp_path / "value"
    key.write_bytes(RECIPIENT.public_pem())
    value.write_text("v")
    with pytest.raises(SystemExit) as exited:
        main(["transfer", "send-file", "--to-key", str(key), "--name", PREFIX + "\udcff", "--value-file", str(value)])
    assert exited.value.code == 2
    assert "argument --name is not valid UTF-8 text" in capsys.readouterr().err
    described = ["--name", PREFIX + "x", "--value-file", str(value), "--description", "a\x00b"]
    assert main(["transfer", "send-file", "--to-key", str(key), *described]) == 2


@MANY
@given(st.lists(utext(20), max_size=4))
def test_admin_arguments_are_text_or_a_usage_error(values: list[str]) -> None:
    EXAMPLES["client.arguments.parse_checked"] += 1
    import argparse

    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("client_id")
    parser.add_argument("--secret", action="append", default=[])
    argv = ["--", values[0]] if values else ["x"]
    argv = [*(f"--secret={v}" for v in values[1:]), *argv]
    if not all(encodable(value) for value in values):
        with pytest.raises(SystemExit) as exited:
            parse_checked(parser, argv)
        assert exited.value.code == 2
        return
    args = parse_checked(parser, argv)
    assert args.client_id == (values[0] if values else "x")
    assert args.secret == values[1:]
