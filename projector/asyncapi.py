"""The AsyncAPI 3.0 document of the published stream, for teams that write their own gateways.

The message bodies are the pydantic models below (``data`` is one of the API's resource
models, the same ones the OpenAPI document uses); the document is generated from them and
checked in as ``projector/asyncapi.json`` (a test holds the file equal to the generated
one). Regenerate it with ``python -m projector.asyncapi``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

from projector.published import CONTENT_TYPE, EVENT_NAMES, RESOURCE_OF, WHAT_HAPPENED
from services.openapi import Message, Participant, Talk
from services.settings import Settings

DOCUMENT_PATH = Path(__file__).with_name("asyncapi.json")
SCHEMA_REF = "#/components/schemas/{model}"
AMQP_BINDING_VERSION = "0.3.0"

RESOURCES: dict[str, type[BaseModel]] = {"Talk": Talk, "Participant": Participant, "Message": Message}


class PublishedEvent(BaseModel):
    """The body every published event shares."""

    model_config = ConfigDict(extra="forbid")

    type: str
    event_id: UUID = Field(description="the stored event's id, also the AMQP `message_id`: "
                                       "consumers drop repeats by it")
    position: int = Field(ge=1, description="the event's position in the event store")
    customer_id: UUID
    chat_id: UUID
    audience: list[UUID] = Field(description="the agents allowed to see the event")


def _model_name(event: str) -> str:
    return "".join(part.capitalize() for part in event.split("_")) + "Event"


BODY_MODELS: dict[str, type[PublishedEvent]] = {
    event: create_model(
        _model_name(event),
        __base__=PublishedEvent,
        __doc__=WHAT_HAPPENED[event],
        type=(Literal[event], ...),  # type: ignore[valid-type]
        data=(RESOURCES[RESOURCE_OF[event]],
              Field(description=f"the {RESOURCE_OF[event]} as the query API shows it after "
                                "the event")),
    )
    for event in EVENT_NAMES.values()
}


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema([(m, "validation") for m in BODY_MODELS.values()],
                                ref_template=SCHEMA_REF)
    return dict(sorted(top["$defs"].items()))


def document(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings.model_construct()  # the defaults, not the environment
    events = list(BODY_MODELS)
    message_refs = {e: {"$ref": f"#/components/messages/{e}"} for e in events}

    def operation_messages(channel: str) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{channel}/messages/{e}"} for e in events]

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Talk events",
            "version": "1.0.0",
            "description": (
                "Every change a client can see, published by the Talk projector to a RabbitMQ "
                "topic exchange, in order per talk, at least once (publisher confirms and an "
                "outbox). AMQP properties of each message: `message_id` = the body's "
                "`event_id` (drop repeats by it), `content_type` application/json, "
                "`delivery_mode` 2 (persistent). A durable stream queue bound with `#` keeps "
                f"the history ({settings.stream_max_age} by default) for consumers that "
                "resume from an offset. The names here are the defaults (`TALK_EXCHANGE`, "
                "`TALK_STREAM_QUEUE`, `TALK_STREAM_MAX_AGE`)."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "rabbitmq": {
                "host": "rabbitmq:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The broker `TALK_AMQP_URL` points at.",
            }
        },
        "channels": {
            "talkEvents": {
                "address": "{customer_id}.{chat_id}.{event}",
                "title": "Routing keys on the topic exchange",
                "description": f"Published to the durable topic exchange `{settings.exchange}`.",
                "parameters": {
                    "customer_id": {"description": "the customer (tenant) id"},
                    "chat_id": {"description": "the talk id"},
                    "event": {"enum": events, "description": "what happened"},
                },
                "messages": message_refs,
                "bindings": {"amqp": {
                    "is": "routingKey",
                    "exchange": {"name": settings.exchange, "type": "topic", "durable": True,
                                 "autoDelete": False, "vhost": "/"},
                    "bindingVersion": AMQP_BINDING_VERSION,
                }},
            },
            "talkEventsStream": {
                "address": settings.stream_queue,
                "title": "The stream queue with history",
                "description": (
                    "A durable stream queue (`x-queue-type: stream`, `x-max-age: "
                    f"{settings.stream_max_age}`) bound to `{settings.exchange}` with `#`. "
                    "Consume it with a prefetch (basic.qos) and `x-stream-offset` "
                    "(`first`, `last`, `next`, an offset or a timestamp) to resume."
                ),
                "messages": message_refs,
                "bindings": {"amqp": {
                    "is": "queue",
                    "queue": {"name": settings.stream_queue, "durable": True,
                              "exclusive": False, "autoDelete": False, "vhost": "/"},
                    "bindingVersion": AMQP_BINDING_VERSION,
                }},
            },
        },
        "operations": {
            "publishTalkEvent": {
                "action": "send",
                "channel": {"$ref": "#/channels/talkEvents"},
                "summary": "The projector publishes each event once it is committed.",
                "messages": operation_messages("talkEvents"),
                "bindings": {"amqp": {"deliveryMode": 2, "mandatory": False,
                                      "bindingVersion": AMQP_BINDING_VERSION}},
            },
            "consumeTalkEventStream": {
                "action": "receive",
                "channel": {"$ref": "#/channels/talkEventsStream"},
                "summary": "A gateway reads the stream from an offset.",
                "messages": operation_messages("talkEventsStream"),
                "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
            },
        },
        "components": {
            "messages": {
                event: {
                    "name": event,
                    "title": event.replace("_", " "),
                    "summary": WHAT_HAPPENED[event],
                    "contentType": CONTENT_TYPE,
                    "correlationId": {"location": "$message.payload#/event_id"},
                    "payload": {"$ref": SCHEMA_REF.format(model=model.__name__)},
                    "bindings": {"amqp": {"messageType": event,
                                          "bindingVersion": AMQP_BINDING_VERSION}},
                }
                for event, model in BODY_MODELS.items()
            },
            "schemas": _schemas(),
        },
    }


def render(settings: Settings | None = None) -> bytes:
    return orjson.dumps(document(settings), option=orjson.OPT_INDENT_2) + b"\n"


def main() -> int:
    """Write ``projector/asyncapi.json`` (with the default names, not the environment's)."""
    DOCUMENT_PATH.write_bytes(render())
    print(f"wrote {DOCUMENT_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
