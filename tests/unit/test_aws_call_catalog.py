"""The catalog of AWS calls is the code's (tests.permissions): every ``aws_call`` of the Lambda code has an entry and
every entry a call, nothing reaches AWS around the adapters, each entry's code path and tags are the code's, and
:func:`~tests.permissions.entry_for` recognises real requests. Offline: the code is read as syntax, never run against
AWS.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

import pytest

from chalicelib.aws.errors import AwsNotFound
from chalicelib.aws.kms import KeyInfo
from chalicelib.envelope import generate_recipient_key, seal
from chalicelib.tokens.envelope_keys import EnvelopeKeyStore
from chalicelib.tokens.kms_keys import KmsKeyStore
from chalicelib.transfer.importer import Importer
from tests.permissions import CATALOG, NOT_IN_LAMBDA, entries_for, entry_for
from tests.permissions.check import ACCOUNT, REGION
from tests.permissions.model import SAMPLES, deployment, render
from tests.permissions.scan import (
    aws_call_sites,
    bypasses,
    definitions,
    lambda_code_uses,
    parse_modules,
    references,
)


def _accounted() -> set[tuple[str, str, str]]:
    return {(e.service, e.operation, e.site) for e in CATALOG if e.site} | {
        (n.service, n.operation, n.site) for n in NOT_IN_LAMBDA
    }


def _gaps(sites: list[Any], accounted: set[tuple[str, str, str]]) -> tuple[list[str], list[str]]:
    found = {(s.service, s.operation, s.function) for s in sites}
    missing = sorted(
        f"{s.location}: aws_call({s.service!r}, {s.operation!r}) in {s.function}"
        for s in sites
        if (s.service, s.operation, s.function) not in accounted
    )
    stale = sorted(f"{service} {operation} at {site}" for service, operation, site in accounted - found)
    return missing, stale


def test_every_aws_call_of_the_code_is_in_the_catalog_and_nothing_else() -> None:
    sites, problems = aws_call_sites()
    assert problems == []
    missing, stale = _gaps(sites, _accounted())
    assert missing == [], "AWS calls the catalog does not know: add an entry (tests/permissions/catalog)"
    assert stale == [], "catalog entries for calls the code no longer makes"


def test_a_new_aws_call_without_an_entry_is_reported() -> None:
    source = (
        "from chalicelib.aws.errors import aws_call\n"
        "class ObjectStore:\n"
        "    def tag(self, bucket, key):\n"
        "        with aws_call('s3', 'PutObjectTagging'):\n"
        "            self._client.put_object_tagging(Bucket=bucket, Key=key, Tagging={'TagSet': []})\n"
    )
    sites, _ = aws_call_sites(parse_modules({"chalicelib/aws/s3.py": source}))
    missing, _ = _gaps(sites, _accounted())
    assert missing == [
        "chalicelib/aws/s3.py:4: aws_call('s3', 'PutObjectTagging') in chalicelib.aws.s3.ObjectStore.tag"
    ]


def test_no_aws_access_bypasses_an_adapter() -> None:
    assert bypasses() == []


@pytest.mark.parametrize(
    ("path", "source", "problem"),
    [
        (
            "chalicelib/aws/s3.py",
            "class S:\n    def get(self):\n        return self._client.get_object(Bucket='b', Key='k')\n",
            "chalicelib/aws/s3.py:3: client.get_object(...) outside an aws_call naming that operation",
        ),
        (
            "chalicelib/aws/kms.py",
            "from chalicelib.aws.errors import aws_call\nclass K:\n    def keys(self):\n"
            "        pages = self._client.get_paginator('list_keys')\n"
            "        with aws_call('kms', 'DescribeKey'):\n            return list(pages.paginate())\n",
            'chalicelib/aws/kms.py:6: get_paginator("list_keys").paginate(...) outside an aws_call naming that '
            "operation",
        ),
        (
            "chalicelib/aws/kms.py",
            "from chalicelib.aws.errors import aws_call\nclass K:\n    def sign(self):\n"
            "        with aws_call('kms', 'Sing'):\n            return self._client.sign(KeyId='k')\n",
            "chalicelib/aws/kms.py:4: aws_call('kms', 'Sing') names no botocore operation",
        ),
        (
            "chalicelib/tokens/extra.py",
            "import boto3\n\ndef keys():\n    return boto3.client('kms').list_keys()\n",
            "chalicelib/tokens/extra.py:1: imports boto3 outside chalicelib/aws",
        ),
        (
            "chalicelib/tokens/extra.py",
            "def sign(aws):\n    return aws.kms._client.sign(KeyId='k')\n",
            "chalicelib/tokens/extra.py:2: reaches an adapter's client (._client)",
        ),
    ],
    ids=["client-call", "paginator", "unknown-operation", "boto3-import", "adapter-client"],
)
def test_a_bypass_is_reported(path: str, source: str, problem: str) -> None:
    assert problem in bypasses(parse_modules({path: source}))


def test_every_entry_names_code_that_exists_and_leads_to_its_call() -> None:
    known = definitions()
    problems = []
    for entry in CATALOG:
        if entry.site is None:
            continue
        for name in (*entry.callers, entry.site):
            if name not in known:
                problems.append(f"{entry.id}: {name} does not exist")
        if not entry.callers or any(name not in known for name in (*entry.callers, entry.site)):
            if not entry.callers:
                problems.append(f"{entry.id}: names no caller")
            continue
        # Each caller must call the site, or another caller that leads there (names as the code spells them).
        leads = {entry.site}
        for _ in entry.callers:
            leads |= {c for c in entry.callers if references(c) & {n.rsplit(".", 1)[1] for n in leads}}
        problems += [f"{entry.id}: {c} does not lead to {entry.site}" for c in entry.callers if c not in leads]
    assert problems == []


@pytest.mark.parametrize(
    "absent",
    sorted({(n.site, p) for n in NOT_IN_LAMBDA for p in n.absent}),
    ids=lambda absent: f"{absent[0].rsplit('.', 2)[1]}.{absent[0].rsplit('.', 1)[1]}-{absent[1]}",
)
def test_calls_listed_as_not_in_lambda_have_no_lambda_caller(absent: tuple[str, str]) -> None:
    site, pattern = absent
    assert lambda_code_uses(pattern) == [], f"{site} is listed as never called by a Lambda function"


def test_the_catalog_covers_exactly_the_apps_functions() -> None:
    import app
    from local.provision import app_functions

    functions = set(app_functions(app.app).values())
    named = {f for e in CATALOG for f in e.functions}
    assert named == functions
    assert all(len(e.functions) > 0 for e in CATALOG)
    assert len({e.id for e in CATALOG}) == len(CATALOG), "entry ids are unique"


def test_async_failure_destinations_are_the_templates() -> None:
    import app
    from local.provision import app_functions
    from local.template import load_template
    from tests.permissions.model import REPO_ROOT

    by_logical_id = app_functions(app.app)
    resources = load_template(REPO_ROOT / "template.yaml")["Resources"]
    with_destination = {
        by_logical_id[logical_id]
        for logical_id, resource in resources.items()
        if resource.get("Properties", {}).get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
    }
    entry = next(e for e in CATALOG if e.id == "lambda.async-failure-destination")
    assert entry.functions == with_destination


class _Recorder:
    """Stands in for the adapters a key store uses, recording what it asks AWS to create."""

    def __init__(self) -> None:
        self.created: dict[str, Any] = {}

    def find(self, resource_type: str, tags: Any) -> list[str]:
        return []  # no key made earlier under this label

    def create_key(self, **kwargs: Any) -> KeyInfo:
        self.created = kwargs
        return KeyInfo("arn:aws:kms:eu-west-1:123456789012:key/k", "k", "Enabled", "RSA_2048", "SIGN_VERIFY", None)

    def describe(self, name: str) -> Any:
        raise AwsNotFound("secretsmanager", "DescribeSecret", "ResourceNotFoundException")

    def create(self, name: str, value: Any, **kwargs: Any) -> tuple[str, str]:
        self.created = {"name": name, **kwargs}
        return "arn", "v1"

    create_or_add_version = create


def _rendered(entry_id: str, action: str) -> dict[str, Any]:
    d = deployment("dev")
    access = next(a for e in CATALOG if e.id == entry_id for a in e.access if a.action == action)

    def one(value: str) -> str:
        return render(value, d, account=ACCOUNT, region=REGION, function="api_handler")

    return {
        "resource": one(access.resource),
        **{k: tuple(map(one, v)) if isinstance(v, tuple) else one(str(v)) for k, v in access.context.items()},
    }


def _request_tags(context: dict[str, Any]) -> dict[str, str]:
    return {k.removeprefix("aws:RequestTag/"): v for k, v in context.items() if k.startswith("aws:RequestTag/")}


def test_the_catalogs_tags_are_the_ones_the_code_writes() -> None:
    prefix, label = deployment("dev").prefix, SAMPLES["label"]
    kms = _Recorder()
    store = KmsKeyStore(
        cast(Any, kms), prefix, "RS256", tagged=cast(Any, kms), caller_arn=lambda: f"arn:aws:iam::{ACCOUNT}:root"
    )
    store.create(label)
    for action in ("kms:CreateKey", "kms:TagResource"):
        context = _rendered("tokens.kms.create", action)
        assert _request_tags(context) == kms.created["tags"]
        assert context["aws:TagKeys"] == tuple(kms.created["tags"])

    secrets = _Recorder()
    envelope = EnvelopeKeyStore(
        cast(Any, secrets), cast(Any, None), prefix=prefix, algorithm_name="ES256", data_key_arn="arn:k"
    )
    envelope.create(label)
    for action in ("secretsmanager:CreateSecret", "secretsmanager:TagResource"):
        context = _rendered("tokens.envelope.create", action)
        assert _request_tags(context) == secrets.created["tags"]
        # Created: authorised by name, the random suffix does not exist yet.
        assert context["resource"] == f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secrets.created['name']}"

    recipient = generate_recipient_key(2048)
    imported = _Recorder()
    keys = SimpleNamespace(opening=lambda: {recipient.kid: recipient})
    importer = Importer(
        cast(Any, None), cast(Any, imported), cast(Any, keys), bucket="b", name_prefix=f"{prefix}/imported/"
    )
    payload = {"secret_name": f"{prefix}/imported/{SAMPLES['secret']}", "value": "v"}
    importer.import_envelope(seal(recipient, json.dumps(payload).encode()), token="t", source="test")
    for action in ("secretsmanager:CreateSecret", "secretsmanager:TagResource"):
        context = _rendered("transfer.import.create", action)
        assert _request_tags(context) == imported.created["tags"]
        assert context["resource"].split(":secret:")[1] == payload["secret_name"]


def test_every_entry_says_why_and_what_aws_checks() -> None:
    for entry in CATALOG:
        assert entry.why, entry.id
        assert bool(entry.access) != bool(entry.no_access), f"{entry.id}: requests, or the reason there are none"
        assert (entry.site is None) == (entry.service == "lambda"), entry.id


def test_entry_for_recognises_a_request_the_code_makes() -> None:
    sign = entry_for("kms:Sign", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    assert sign is not None
    assert sign.id == "tokens.kms.sign"
    inbox = entry_for("s3:GetObject", "arn:aws:s3:::credport-dev-transfer-123456789012/inbox/db.jwe")
    assert inbox is not None
    assert inbox.id == "transfer.inbox.read"
    nonce = entries_for(
        "dynamodb:DeleteItem",
        "arn:aws:dynamodb:us-east-1:123456789012:table/credport-dev-state",
        function="auto_id",
    )
    assert [e.id for e in nonce] == ["autoid.nonce.release"]
    # POST /auto-id runs as its own function: the API handler makes none of its calls.
    assert entries_for("dynamodb:DeleteItem", nonce[0].access[0].resource, function="api_handler") == ()
    logs = entry_for(
        "logs:PutLogEvents", "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/credport-dev:log-stream:s"
    )
    assert logs is not None
    assert logs.id == "lambda.logs"
    tagging = entry_for("tagging:GetResources", "*")  # SigV4's service name for IAM's tag: prefix
    assert tagging is not None
    assert tagging.id == "tokens.kms.find-unrecorded"
    not_yet = "arn:aws:secretsmanager:us-east-1:123456789012:secret:credport-dev/imported/db"  # no suffix: missing
    assert [e.id for e in entries_for("secretsmanager:DescribeSecret", not_yet)] == ["transfer.import.describe"]


def test_entry_for_refuses_a_request_the_catalog_does_not_know() -> None:
    bucket = "arn:aws:s3:::credport-dev-transfer-123456789012"
    assert entry_for("s3:GetObject", f"{bucket}/elsewhere/db.jwe") is None
    assert entry_for("s3:GetObject", "arn:aws:s3:::credport-prod-transfer-123456789012/inbox/db.jwe") is None
    assert entry_for("kms:Sign", "arn:aws:kms:us-east-1:123456789012:key/k", function="bearer") is None
    assert entry_for("s3:PutBucketPolicy", bucket) is None
    assert entry_for("s3:GetObject", f"{bucket}/inbox/db.jwe", stage="prod") is None
