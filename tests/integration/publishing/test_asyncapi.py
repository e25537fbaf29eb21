"""The AsyncAPI document in the repo is the one generated from the message models, and it
describes every published event type."""

from __future__ import annotations

import orjson

from projector.asyncapi import BODY_MODELS, DOCUMENT_PATH, document, render
from projector.published import EVENT_NAMES


def test_the_checked_in_document_is_the_generated_one():
    assert DOCUMENT_PATH.read_bytes() == render(), \
        "projector/asyncapi.json is stale: run `python -m projector.asyncapi`"


def test_it_describes_the_exchange_and_every_event():
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    channel = doc["channels"]["talkEvents"]
    assert channel["address"] == "{customer_id}.{chat_id}.{event}"
    assert channel["bindings"]["amqp"]["exchange"] == {
        "name": "talk.events", "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}
    events = set(EVENT_NAMES.values())
    assert set(channel["parameters"]["event"]["enum"]) == events == set(BODY_MODELS)
    for event in events:
        message = doc["components"]["messages"][event]
        schema = doc["components"]["schemas"][message["payload"]["$ref"].rsplit("/", 1)[1]]
        assert schema["properties"]["type"]["const"] == event
        assert set(schema["required"]) == {"type", "event_id", "position", "customer_id",
                                           "chat_id", "audience", "data"}
    orjson.loads(render())  # well-formed JSON
