"""credport's Chalice app: wiring only. Each handler reads its input, calls one chalicelib function or one method of
the composition root's capabilities (``services()``, :mod:`chalicelib.services`), returns."""

from __future__ import annotations

from typing import Any

from chalice.app import (
    AuthRequest,
    AuthResponse,
    CloudWatchEvent,
    IAMAuthorizer,
    Rate,
    Request,
    Response,
    SNSEvent,
    SQSEvent,
)

from chalicelib import config, health
from chalicelib.api import (
    api_view,
    authorizer_response,
    chalice_errors_middleware,
    chalice_local_middleware,
    json_body,
    json_route,
    public_document,
)
from chalicelib.coldstart import FirstInvocation
from chalicelib.dispatch import DirectChalice
from chalicelib.identity import RequestIdentity
from chalicelib.observability import invocation_middleware
from chalicelib.services import LazyServices, Services

app = DirectChalice(app_name="credport")
# credport's API speaks JSON only: no route takes or returns a binary media type. Chalice's default list (sixteen
# image, audio, video and archive types) would have API Gateway base64 such bodies for routes that refuse them anyway
# (415), and costs every request three content-type matches against the list (~25 us of a warm /token).
app.api.binary_types = []
# The process's capabilities, built on the first call (importing the app creates no AWS client); tests install
# their own with services.use(...), the local stack its builder with services.build_with(...).
services = LazyServices(Services.from_environment)
iam = IAMAuthorizer()
api = api_view(lambda: app.current_request)


def request() -> Request:
    current = app.current_request
    assert current is not None, "Chalice sets the request before it calls a view"
    return current


# What only some routes and functions use is imported on their first call, not with the app: a container's cold
# start pays only for what its first request needs (a token needs neither the session parser, nor auto-id, nor the
# transfer envelope, whose packages bring JOSE and crypto imports that cost tens of milliseconds).
def bearer_token(authorization: str | None) -> str:
    from chalicelib.sessions.service import bearer_token as parse  # noqa: PLC0415 (lazy, see above)

    return parse(authorization)


def autoid_max_body_bytes() -> int:
    from chalicelib.autoid.service import MAX_BODY_BYTES  # noqa: PLC0415 (lazy, see above)

    return MAX_BODY_BYTES


def transfer_import_max_bytes() -> int:
    """An envelope at its largest, and room for the JSON around it."""
    from chalicelib.envelope import MAX_ENVELOPE_BYTES  # noqa: PLC0415 (lazy, see above)

    return MAX_ENVELOPE_BYTES + 1024


_prefix = config.deployment_prefix()

# On Lambda, a container's first invocation (its cold start's bulk) runs without the cyclic collector: coldstart.py.
first_invocation = FirstInvocation(enabled=config.on_lambda())
app.register_middleware(invocation_middleware(lambda: app.lambda_context, first_invocation), "all")
app.register_middleware(chalice_errors_middleware, "http")
local_middleware = chalice_local_middleware(lambda: app.routes)
app.register_middleware(local_middleware, "http")  # acts under `chalice local` only


@app.route("/health", methods=["GET"])
@api
def health_check() -> dict[str, str]:
    return health.status()


@app.route("/whoami", methods=["GET"], authorizer=iam)
@api
def whoami() -> dict[str, str]:
    return RequestIdentity.from_context(request().context).public_view()


@app.route("/token", methods=["GET"], authorizer=iam)
@api
def token() -> dict[str, Any]:
    identity = RequestIdentity.from_context(request().context)
    return services().tokens.token_for(identity, request().query_params)


# The token route is the hot path: dispatched without chalice's per-request work (chalicelib/dispatch.py). The
# errors middleware rewrites only chalice's own answers, which direct dispatch never makes; the local middleware
# acts only under `chalice local`, where nothing is dispatched directly.
app.dispatch_directly([("GET", "/token")], not_needed=[chalice_errors_middleware, local_middleware])


@app.route("/.well-known/openid-configuration", methods=["GET"])
@api
def openid_configuration() -> Response:
    root = services()
    return public_document(root.tokens.discovery(), max_age=root.settings.jwks_max_age)


@app.route("/.well-known/jwks.json", methods=["GET"])
@api
def jwks() -> Response:
    root = services()
    return public_document(root.tokens.jwks(), max_age=root.settings.jwks_max_age)


@app.schedule(Rate(config.signing_key_rotation_days(), unit=Rate.DAYS), name="rotate_signing_keys")
def rotate_signing_keys(event: CloudWatchEvent) -> Any:
    return services().tokens.rotate_on_schedule()


# Verification is cheap and must follow each token's expiry and route exactly: no authorizer caching.
@app.authorizer(ttl_seconds=0)
def bearer(auth_request: AuthRequest) -> AuthResponse:
    # services() inside the call: a failure to build them is the authorizer's failure too (counted, answered).
    authorize = lambda arn, token: services().sessions.authorize(arn, token)  # noqa: E731, PLW0108
    return authorizer_response(auth_request, authorize)


@app.route("/session", methods=["POST"], authorizer=iam)
@api
def start_session() -> dict[str, Any]:
    identity = RequestIdentity.from_context(request().context)
    return services().sessions.start_for(identity)


@app.route("/session/refresh", methods=["POST"], authorizer=bearer)
@api
def refresh_session() -> dict[str, Any]:
    token = bearer_token(request().headers.get("authorization"))
    return services().sessions.refresh(token)


@app.route("/session", methods=["GET"], authorizer=bearer)
@api
def show_session() -> dict[str, Any]:
    token = bearer_token(request().headers.get("authorization"))
    return services().sessions.show(token)


@app.route("/transfer/import-key", methods=["GET"])
@api
def transfer_import_key() -> Response:
    root = services()
    return public_document(root.import_keys.public_documents(), max_age=root.settings.jwks_max_age)


@app.route("/transfer/import", methods=["POST"], authorizer=iam)
@api
def transfer_import() -> dict[str, Any]:
    identity = RequestIdentity.from_context(request().context)
    body = json_body(request(), max_bytes=transfer_import_max_bytes())
    return services().transfer.import_request(body, identity.user_arn)


@app.route("/transfer/clients/{client_id}/send", methods=["POST"], authorizer=iam)
@api
def transfer_send(client_id: str) -> dict[str, Any]:
    RequestIdentity.from_context(request().context)  # refuses a request without an IAM identity; not per caller
    return services().transfer.send(client_id)


@app.schedule(Rate(config.transfer_rotation_days() or 1, unit=Rate.DAYS), name="rotate_transfer_secrets")
def rotate_transfer_secrets(event: CloudWatchEvent) -> Any:
    return {"rotated": services().transfer.rotate_on_schedule()}


@app.route("/auto-id/keys", methods=["GET"])
@api
def autoid_keys() -> Response:
    root = services()
    return public_document(root.autoid.server_keys.public_documents(), max_age=root.settings.jwks_max_age)


# No AWS credentials here by design: the caller proves it holds its entropy file inside the request. Its own
# function, so its own role (which cannot read credport's internal secrets): template.yaml's RestAPI definition
# integrates POST /auto-id with it (proxy), and chalicelib.api.json_route answers exactly as a chalice view would.
@app.lambda_function(name="auto_id")
def auto_id(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Not services().autoid.identify: the service is built only for a request that passed the route's checks.
    identify = lambda body: services().autoid.identify(body)  # noqa: E731, PLW0108
    return json_route(event, identify, max_bytes=autoid_max_body_bytes())


@app.schedule(Rate(config.autoid_rotation_days(), unit=Rate.DAYS), name="rotate_autoid_keys")
def rotate_autoid_keys(event: CloudWatchEvent) -> Any:
    # The event id stays the same when EventBridge or Lambda retries a delivery: the rotation runs once.
    report = services().autoid_rotation.rotate(event.to_dict().get("id"))
    return {"rotation_id": report.rotation_id, "clients_rotated": len(report.clients_rotated)}


@app.lambda_function(name="rotate_session_key")
def rotate_session_key(event: dict[str, Any], context: Any) -> None:
    services().sessions.rotation.handle(event)


@app.on_sqs_message(queue=config.s3_events_queue_name(_prefix), batch_size=1)
def s3_object_events(event: SQSEvent) -> Any:
    services().s3_routes.handle_sqs_records(event)


@app.on_sns_message(topic=config.key_events_topic_name(_prefix))
def key_events(event: SNSEvent) -> Any:
    services().key_events.handle_sns_records([event.message])
