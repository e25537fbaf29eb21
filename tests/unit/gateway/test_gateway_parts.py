"""The gateway's pure parts: resume tokens, stream message parsing, topics, dedupe, limits."""

from __future__ import annotations

from uuid import uuid4

import orjson
import pytest

from services.gateway.dedupe import RecentIds
from services.gateway.feed import FeedMessage, MalformedMessage
from services.gateway.limits import RecentKeys, TokenBucket
from services.gateway.subscriptions import Topic, TopicError, parse_topic
from services.gateway.tokens import InvalidResumeToken, ResumeTokens, message_tag

TOKENS = ResumeTokens("a-secret-of-this-deployment-0123456789")


def test_resume_token_round_trip_is_opaque_compact_and_signed():
    message_id, customer = str(uuid4()), str(uuid4())
    token = TOKENS.encode(123_456_789, message_id, customer)
    assert len(token) <= 30 and "123456789" not in token
    point = TOKENS.decode(token, customer)
    assert point.offset == 123_456_789 and point.genuine
    assert point.tag == message_tag(message_id) != message_tag(str(uuid4()))


def test_a_token_of_another_customer_or_deployment_or_altered_is_not_genuine():
    customer = str(uuid4())
    token = TOKENS.encode(42, str(uuid4()), customer)
    assert not TOKENS.decode(token, str(uuid4())).genuine  # another customer's socket
    other = ResumeTokens("another-deployment-secret-0123456789abc")
    assert not other.decode(token, customer).genuine
    raw = bytearray(token.encode())
    raw[3] = ord("A") if raw[3] != ord("A") else ord("B")  # the offset altered
    assert not TOKENS.decode(raw.decode(), customer).genuine


@pytest.mark.parametrize("token", ["", "%%%", "abc", 42, None, "A" * 100,
                                   TOKENS.encode(1, "x", "c") + "AAAA"])
def test_foreign_resume_tokens_are_refused(token):
    with pytest.raises(InvalidResumeToken):
        TOKENS.decode(token, "c")


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
    frame = msg.frame(msg.chat_topic, TOKENS)
    assert msg.frame(msg.chat_topic, TOKENS) is frame
    assert orjson.loads(frame) == {
        "type": "message_created", "topic": msg.chat_topic,
        "resume_token": TOKENS.encode(5, "the-message-id", msg.customer_id),
        "data": {"id": "m"}}
    msg.drop_frames()
    assert msg.frame(msg.chat_topic, TOKENS) == frame


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


def test_recent_ids_memory_stays_flat_whatever_the_traffic():
    import tracemalloc

    ids = [str(uuid4()) for _ in range(40_000)]
    tracemalloc.start()
    try:
        recent = RecentIds(1_000)
        for i in range(5_000):
            recent.seen(ids[i])
        full = tracemalloc.get_traced_memory()[0]
        for i in range(5_000, 40_000):
            recent.seen(ids[i])
        later = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(recent) == 1_000
    assert later - full < 10_000, f"{later - full} bytes more after 35,000 more ids"


def test_recent_keys_let_one_through_per_interval_and_forget_the_expired():
    keys = RecentKeys(2.0)
    assert keys.allow("a", now=0.0) and not keys.allow("a", now=1.9)
    assert keys.allow("b", now=1.0)
    assert keys.allow("a", now=2.0)  # its interval has passed
    assert len(keys) == 2
    assert keys.allow("c", now=10.0) and len(keys) == 1  # a and b forgotten


def test_token_bucket_spends_and_refuses_beyond_its_budget():
    bucket = TokenBucket()
    assert bucket.take(1_000)
    assert not bucket.take(500)
    assert bucket.retry_after(500) > 0
