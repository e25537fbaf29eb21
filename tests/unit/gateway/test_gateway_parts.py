"""The gateway's pure parts: resume tokens, stream message parsing, topics, dedupe."""

from __future__ import annotations

from uuid import uuid4

import orjson
import pytest

from services.gateway.dedupe import RecentIds
from services.gateway.feed import FeedMessage, MalformedMessage
from services.gateway.subscriptions import Topic, TopicError, parse_topic
from services.gateway.tokens import (
    InvalidResumeToken,
    decode_token,
    encode_token,
    message_tag,
)


def test_resume_token_round_trip_is_opaque_and_compact():
    message_id = str(uuid4())
    token = encode_token(123_456_789, message_id)
    assert len(token) <= 20 and "123456789" not in token
    point = decode_token(token)
    assert point.offset == 123_456_789
    assert point.tag == message_tag(message_id) != message_tag(str(uuid4()))


@pytest.mark.parametrize("token", ["", "%%%", "abc", 42, None, "A" * 100,
                                   encode_token(1, "x") + "AAAA"])
def test_foreign_resume_tokens_are_refused(token):
    with pytest.raises(InvalidResumeToken):
        decode_token(token)


def _body(**over) -> dict:
    body = {"type": "message_created", "event_id": str(uuid4()), "position": 7,
            "customer_id": str(uuid4()).upper(), "chat_id": str(uuid4()),
            "audience": [str(uuid4())], "data": {"id": "m"}}
    body.update(over)
    return body


def test_feed_message_parses_the_published_body_and_builds_frames_once():
    body = _body()
    msg = FeedMessage.parse(5, orjson.dumps(body), "the-message-id")
    assert msg.message_id == "the-message-id"
    assert msg.customer_id == body["customer_id"].lower()
    assert msg.chat_topic == f"chat:{body['chat_id']}"
    frame = msg.frame(msg.chat_topic)
    assert msg.frame(msg.chat_topic) is frame
    assert orjson.loads(frame) == {"type": "message_created", "topic": msg.chat_topic,
                                   "resume_token": encode_token(5, "the-message-id"),
                                   "data": {"id": "m"}}
    msg.drop_frames()
    assert msg.frame(msg.chat_topic) == frame


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", orjson.dumps(_body(type="message_posted")),
    orjson.dumps({k: v for k, v in _body().items() if k != "audience"}),
    orjson.dumps(_body(audience="everyone")), orjson.dumps(_body(chat_id=5)),
])
def test_malformed_stream_messages_are_recognised(raw):
    with pytest.raises(MalformedMessage):
        FeedMessage.parse(0, raw)


def test_topics_parse_or_say_why_not():
    chat_id = uuid4()
    assert parse_topic(f"chat:{chat_id}") == Topic("chat", chat_id)
    assert str(parse_topic(f"agent:{chat_id}")) == f"agent:{chat_id}"
    for bad in ("chat:", "chats:1", "chat:xyz", 5, None, f"room:{chat_id}"):
        refused = parse_topic(bad)
        assert isinstance(refused, TopicError) and refused.error == "unknown_topic"
        assert refused.frame()["type"] == "error"


def test_recent_ids_forget_the_oldest():
    recent = RecentIds(2)
    assert not recent.seen("a") and recent.seen("a")
    assert not recent.seen("b") and not recent.seen("c")
    assert not recent.seen("a")  # forgotten: only the last two are kept
