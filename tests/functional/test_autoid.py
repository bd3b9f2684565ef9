"""Auto-id through the deployed-shape app against moto: enrollment, a request, the answer, rotation."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
from chalice.test import Client
from joserfc.jwk import RSAKey

from chalicelib import autoid
from chalicelib.autoid import AutoIdService, ClientPolicy, Want, build_request
from chalicelib.aws import AwsServices
from chalicelib.config import get_settings
from chalicelib.envelope import decrypt_direct, public_key_from_pem, seal
from chalicelib.services import Services
from local.provision import Provisioned
from tests.conftest import install_services
from tests.support import Clock, proxy_post

SECRET = "credport-dev/autoid/db-password"
ROLE_PATTERN = "arn:aws:iam::123456789012:role/credport-dev-autoid-*"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
NOW = 1_795_000_000.0
ANSWER_BYTES = 4 * 1024 * 1024  # an answer may carry a whole 1 MiB generation


@pytest.fixture
def service(services: Services) -> autoid.AutoIdService:
    return services.autoid


def seal_to(jwk: dict[str, Any], document: dict[str, Any]) -> str:
    recipient = public_key_from_pem(RSAKey.import_key(jwk).as_pem(private=False))
    return seal(recipient, json.dumps(document).encode())


def current_jwk(service: autoid.AutoIdService) -> dict[str, Any]:
    documents = service.server_keys.public_documents()
    return next(k for k in documents["keys"] if k["kid"] == documents["current_kid"])


def sealed_request(service: autoid.AutoIdService, document: dict[str, Any]) -> str:
    return seal_to(current_jwk(service), document)


def post(client: Client, body: Any) -> Any:
    """POST /auto-id as API Gateway hands it to the auto_id function (``client`` kept for the fixtures it sets up)."""
    return proxy_post("/auto-id", json.dumps(body))


def unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def test_an_enrolled_client_gets_its_secret_and_a_session(
    service: autoid.AutoIdService, aws: AwsServices, client: Client
) -> None:
    aws.secrets.create(SECRET, "hunter2-canary")
    enrollment = service.registry.enroll("worker-1", ClientPolicy(secrets=("credport-dev/autoid/db-*",)))
    document, response_key = build_request("worker-1", 1, enrollment.entropy, Want(secret_id=SECRET))
    response = post(client, {"jwe": sealed_request(service, document)})
    assert response.status_code == 200, response.body
    answer = json.loads(decrypt_direct(json.loads(response.body)["jwe"], response_key))
    assert answer["secret"]["value"] == "hunter2-canary"
    assert answer["secret"]["secret_id"] == SECRET
    assert answer["session"]["token_type"] == "Bearer"
    assert "entropy" not in answer
    assert "server_keys" not in answer
    # The same request again is a replay.
    again = post(client, {"jwe": sealed_request(service, document)})
    assert again.status_code == 401
    assert json.loads(again.body)["error"] == "authentication_failed"


def test_a_client_assumes_a_role_its_policy_allows_and_no_other(service: AutoIdService, client: Client) -> None:
    iam = boto3.client("iam")
    # As on AWS, the role must trust credport's account (README: its trust policy must trust the app's role).
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "sts:AssumeRole"}],
        }
    )
    role_arn = iam.create_role(RoleName="credport-dev-autoid-reader", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    other_arn = iam.create_role(RoleName="credport-dev-admin", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    enrollment = service.registry.enroll("worker-1", ClientPolicy(roles=(ROLE_PATTERN,)))

    document, response_key = build_request("worker-1", 1, enrollment.entropy, Want(role_arn=role_arn))
    response = post(client, {"jwe": sealed_request(service, document)})
    assert response.status_code == 200, response.body
    credentials = json.loads(decrypt_direct(json.loads(response.body)["jwe"], response_key))["credentials"]
    assert {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"} <= set(credentials)
    assert all(isinstance(credentials[k], str) and credentials[k] for k in ("AccessKeyId", "SessionToken"))
    assert credentials["AssumedRoleArn"].endswith(":assumed-role/credport-dev-autoid-reader/autoid-worker-1")

    document, _ = build_request("worker-1", 1, enrollment.entropy, Want(role_arn=other_arn))
    refused = post(client, {"jwe": sealed_request(service, document)})
    assert refused.status_code == 403
    assert json.loads(refused.body)["error"] == "forbidden"


def test_the_keys_endpoint_serves_public_members_only(service: AutoIdService, client: Client) -> None:
    response = client.http.get("/auto-id/keys")
    assert response.status_code == 200
    document = json.loads(response.body)
    assert document["current_kid"] == service.server_keys.current_kid()
    assert [k["kid"] for k in document["keys"]] == [document["current_kid"]]
    for key in document["keys"]:
        assert not PRIVATE_MEMBERS & set(key)
        assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RSA-OAEP-256", "enc")
        public = RSAKey.import_key(key)
        assert public.thumbprint() == key["kid"]  # RFC 7638
        assert public.raw_value.key_size == 4096


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def clocked(provisioned: Provisioned, clock: Clock) -> AutoIdService:
    """The service as the app builds it, on the moto stack, with every clock injected."""
    return install_services(clock=clock).autoid


def entropy_keys(aws: AwsServices, client_id: str) -> set[str]:
    return set(aws.s3.list_keys(get_settings().resources.transfer_bucket, f"autoid/{client_id}/"))


def ask(client: Client, gen: int, entropy: bytes, jwk: dict[str, Any], now: float) -> Any:
    """POST a fresh request sealed to ``jwk``; the decrypted answer on 200, else the status code."""
    document, response_key = build_request("worker-1", gen, entropy, Want(secret_id=SECRET), now=now)
    response = post(client, {"jwe": seal_to(jwk, document)})
    if response.status_code != 200:
        return response.status_code
    return json.loads(decrypt_direct(json.loads(response.body)["jwe"], response_key, max_bytes=ANSWER_BYTES))


def test_rotation_grace_and_expiry(clocked: AutoIdService, clock: Clock, aws: AwsServices, client: Client) -> None:
    aws.secrets.create(SECRET, "hunter2-canary")
    grace = get_settings().autoid_grace_period
    assert grace == 7 * 86400  # CREDPORT_AUTOID_GRACE_PERIOD's default
    gen1 = clocked.registry.enroll("worker-1", ClientPolicy(secrets=(SECRET,))).entropy
    old = current_jwk(clocked)

    report = clocked.rotate("r1")
    new = current_jwk(clocked)
    assert report.server_key.changed
    assert report.clients_rotated == ("worker-1",)
    assert report.server_key.current_kid == new["kid"] != old["kid"]
    record = clocked.registry.require("worker-1")
    assert record.generation == 2
    assert len(entropy_keys(aws, "worker-1")) == 2

    # Nearly a week later the old file and the old key still work, and the answer brings both up to date.
    clock.advance(grace - 60)
    answer = ask(client, 1, gen1, old, clock.now)
    assert answer["secret"]["value"] == "hunter2-canary"
    gen2 = aws.s3.get(get_settings().resources.transfer_bucket, record.object_key(2)).body
    assert answer["entropy"]["gen"] == 2
    assert unb64(answer["entropy"]["data"]) == gen2
    assert answer["server_keys"]["current_kid"] == new["kid"]
    assert {k["kid"] for k in answer["server_keys"]["keys"]} == {old["kid"], new["kid"]}
    assert not PRIVATE_MEMBERS & {m for k in answer["server_keys"]["keys"] for m in k}
    only_file = ask(client, 1, gen1, new, clock.now)  # each refresh comes only when it is due
    assert "entropy" in only_file
    assert "server_keys" not in only_file
    only_key = ask(client, 2, gen2, old, clock.now)
    assert "entropy" not in only_key
    assert "server_keys" in only_key
    current = ask(client, 2, gen2, new, clock.now)
    assert current["secret"]["value"] == "hunter2-canary"
    assert "entropy" not in current
    assert "server_keys" not in current

    # The same rotation id again (a retried delivery) changes nothing.
    again = clocked.rotate("r1")
    assert not again.server_key.changed
    assert again.server_key.current_kid == new["kid"]
    assert again.clients_rotated == ()
    assert clocked.registry.require("worker-1") == record
    assert current_jwk(clocked) == new
    assert len(entropy_keys(aws, "worker-1")) == 2

    # Past the grace period the old generation and the old key are refused; the current pair still works.
    clock.advance(120)
    assert ask(client, 1, gen1, new, clock.now) == 401
    assert ask(client, 2, gen2, old, clock.now) == 401
    assert "secret" in ask(client, 2, gen2, new, clock.now)
    assert [k["kid"] for k in json.loads(client.http.get("/auto-id/keys").body)["keys"]] == [new["kid"]]
    # The next rotation forgets generation 1 and deletes its object.
    clocked.rotate("r2")
    latest = clocked.registry.require("worker-1")
    assert latest.generation == 3
    assert set(latest.previous) == {2}
    assert entropy_keys(aws, "worker-1") == {latest.object_key(2), latest.object_key(3)}


def test_end_grace_refuses_the_old_generation_at_once(
    clocked: AutoIdService, clock: Clock, aws: AwsServices, client: Client
) -> None:
    aws.secrets.create(SECRET, "hunter2-canary")
    gen1 = clocked.registry.enroll("worker-1", ClientPolicy(secrets=(SECRET,))).entropy
    clocked.rotate("r1")
    jwk = current_jwk(clocked)
    gen2 = unb64(ask(client, 1, gen1, jwk, clock.now)["entropy"]["data"])

    record = clocked.registry.end_grace("worker-1")
    assert ask(client, 1, gen1, jwk, clock.now) == 401
    assert "entropy" not in ask(client, 2, gen2, jwk, clock.now)
    assert entropy_keys(aws, "worker-1") == {record.object_key(2)}
    head = boto3.client("s3").head_object(Bucket=get_settings().resources.transfer_bucket, Key=record.object_key(2))
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["ContentLength"] == 1024 * 1024


def test_the_schedule_rotates_publishes_and_ignores_a_redelivery(
    service: AutoIdService, client: Client, aws: AwsServices
) -> None:
    r = get_settings().resources
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="key-events-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=r.key_events_topic_arn, Protocol="sqs", Endpoint=queue_arn)
    service.registry.enroll("worker-1", ClientPolicy(secrets=(SECRET,)))
    old_kid = service.server_keys.current_kid()
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:rule"]
    )

    first = client.lambda_.invoke("rotate_autoid_keys", event).payload
    assert first == {"rotation_id": event["id"], "clients_rotated": 1}
    new_kid = service.server_keys.current_kid()
    assert new_kid != old_kid
    assert service.registry.require("worker-1").generation == 2
    published = json.loads(aws.s3.get(r.public_bucket, "autoid/keys.json").body)
    assert published == json.loads(client.http.get("/auto-id/keys").body)
    assert published["current_kid"] == new_kid
    assert {k["kid"] for k in published["keys"]} == {old_kid, new_kid}
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    notices = [json.loads(json.loads(m["Body"])["Message"]) for m in messages]
    assert notices == [
        {"type": "autoid-keys-rotated", "rotation_id": event["id"], "current_kid": new_kid, "clients_rotated": 1}
    ]

    second = client.lambda_.invoke("rotate_autoid_keys", event).payload
    assert second == {"rotation_id": event["id"], "clients_rotated": 0}
    assert service.server_keys.current_kid() == new_kid
    assert service.registry.require("worker-1").generation == 2
    assert len(entropy_keys(aws, "worker-1")) == 2
    assert json.loads(aws.s3.get(r.public_bucket, "autoid/keys.json").body) == published

    # A new delivery (another event id) is another rotation.
    third = client.lambda_.invoke("rotate_autoid_keys", {**event, "id": "another-day"}).payload
    assert third == {"rotation_id": "another-day", "clients_rotated": 1}
    assert service.server_keys.current_kid() not in {old_kid, new_kid}


def test_opening_a_request_never_makes_the_first_server_key(provisioned: Provisioned, aws: AwsServices) -> None:
    """The auto_id function's role may only read the server keys: before any key exists (a fresh deployment, no
    GET /auto-id/keys yet), a request, which cannot be sealed to a key that does not exist, is refused as any
    undecryptable one, and the secret is left for the API handler or the schedule to fill."""
    from chalicelib.envelope import generate_recipient_key

    services = install_services()  # a fresh container: no server key read yet
    arn = get_settings().resources.autoid_key_secret_arn
    before = aws.secrets.get_value(arn).version_id
    response = post(None, {"jwe": seal(generate_recipient_key(2048), b'{"v": 2}')})  # type: ignore[arg-type]
    assert (response.status_code, json.loads(response.body)["error"]) == (401, "authentication_failed")
    assert aws.secrets.get_value(arn).version_id == before  # nothing written
    assert services.autoid.server_keys.public_documents()["keys"]  # the first GET /auto-id/keys makes it
    assert aws.secrets.get_value(arn).version_id != before
