"""credport's Chalice app: wiring only. Each handler reads its input, calls one chalicelib function, returns."""

from __future__ import annotations

from typing import Any

from chalice import Chalice, IAMAuthorizer
from chalice.app import SNSEvent, SQSEvent

from chalicelib import config, events, health
from chalicelib.api import api_view
from chalicelib.identity import RequestIdentity
from chalicelib.observability import invocation_middleware

app = Chalice(app_name="credport")
iam = IAMAuthorizer()
api = api_view(lambda: app.current_request)
_prefix = config.deployment_prefix()

app.register_middleware(invocation_middleware(lambda: app.lambda_context), "all")


@app.route("/health", methods=["GET"])
@api
def health_check() -> dict[str, str]:
    return health.status()


@app.route("/whoami", methods=["GET"], authorizer=iam)
@api
def whoami() -> dict[str, str]:
    return RequestIdentity.from_context(app.current_request.context).public_view()


@app.on_sqs_message(queue=config.s3_events_queue_name(_prefix), batch_size=1)
def s3_object_events(event: SQSEvent) -> Any:
    events.router.handle_sqs_records(event)


@app.on_sns_message(topic=config.key_events_topic_name(_prefix))
def key_events(event: SNSEvent) -> Any:
    events.bus.handle_sns_records([event.message])
