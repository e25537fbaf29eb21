"""What clients may send: bad messages and topics they may not see get error frames, the
socket stays usable, and nothing of a refused topic is delivered."""

from __future__ import annotations

import time
from uuid import uuid4

import jwt
import pytest
from aiohttp import WSServerHandshakeError

from services.http.problems import PROBLEM_JSON
from tests.integration.gateway.support import create_talk, event_frame, without_token
from tests.support import TEST_SECRET


def _claims(**over) -> dict:
    return {"customer_id": str(uuid4()), "agent_id": str(uuid4()),
            "exp": int(time.time()) + 60, **over}


@pytest.mark.parametrize("token", [
    pytest.param(None, id="missing"),
    pytest.param("garbage", id="garbage"),
    pytest.param(jwt.encode(_claims(exp=int(time.time()) - 5), TEST_SECRET), id="expired"),
    pytest.param(jwt.encode(_claims(), "another-secret-of-enough-length-0000"), id="signature"),
])
async def test_bad_token_is_refused_with_401_before_the_upgrade(gateway, token):
    url = f"{gateway.base_url}/v1.0/ws" + (f"?token={token}" if token else "")
    with pytest.raises(WSServerHandshakeError) as info:
        await gateway.session.ws_connect(url)
    assert info.value.status == 401
    resp = await gateway.session.get(url)
    assert resp.status == 401
    assert resp.content_type == PROBLEM_JSON
    body = await resp.json(content_type=None)
    assert body["status"] == 401 and body["detail"]


async def test_bad_messages_get_error_frames_and_the_socket_stays_up(api, gateway, publisher):
    customer, other_customer = uuid4(), uuid4()
    me, colleague, stranger = uuid4(), uuid4(), uuid4()
    mine = await create_talk(api, customer, me, [])
    colleagues = await create_talk(api, customer, colleague, [])
    foreign = await create_talk(api, other_customer, stranger, [])
    client = await gateway.connect(customer, me)

    async def error_for(payload) -> dict:
        await client.send(payload)
        frame = await client.frame()
        assert frame["type"] == "error", frame
        assert isinstance(frame["detail"], str) and frame["detail"]
        return frame

    assert (await error_for("{not json"))["error"] == "malformed_frame"
    assert (await error_for("[1, 2]"))["error"] == "malformed_frame"
    assert (await error_for({"type": "publish", "topics": []}))["error"] == "unknown_type"
    assert (await error_for({"topics": ["agent:x"]}))["error"] == "unknown_type"
    assert (await error_for({"type": "subscribe"}))["error"] == "invalid_topics"
    assert (await error_for({"type": "subscribe", "topics": "chat:1"}))["error"] == "invalid_topics"
    for topic in ("room:1", "chat", "chat:not-a-uuid", 42, f"agent:{me}:x"):
        frame = await error_for({"type": "subscribe", "topics": [topic]})
        assert (frame["error"], frame["topic"]) == ("unknown_topic", topic)
    frame = await error_for({"type": "subscribe", "topics": [f"chat:{foreign['id']}"]})
    assert (frame["error"], frame["topic"]) == ("not_found", f"chat:{foreign['id']}")
    frame = await error_for({"type": "subscribe", "topics": [f"chat:{uuid4()}"]})
    assert frame["error"] == "not_found"
    frame = await error_for({"type": "subscribe", "topics": [f"chat:{colleagues['id']}"]})
    assert (frame["error"], frame["topic"]) == ("forbidden", f"chat:{colleagues['id']}")
    frame = await error_for({"type": "subscribe", "topics": [f"agent:{colleague}"]})
    assert frame["error"] == "forbidden"
    frame = await error_for({"type": "subscribe", "topics": [f"agent:{me}"],
                             "resume_token": "%%%"})
    assert frame["error"] == "invalid_resume_token"
    await client.ws.send_bytes(b"\x00\x01")
    assert (await client.frame())["error"] == "malformed_frame"

    # A subscribe mixing good and bad topics: errors for the bad, the good are acknowledged.
    await client.send({"type": "subscribe",
                       "topics": [f"chat:{mine['id']}", "nope", f"chat:{foreign['id']}"]})
    assert (await client.frame())["error"] == "unknown_topic"
    assert (await client.frame())["error"] == "not_found"
    assert await client.frame() == {"type": "subscribed", "topics": [f"chat:{mine['id']}"]}

    # Nothing of the refused talks arrives, the accepted one works.
    await publisher.publish("message_created", other_customer, foreign["id"], [stranger])
    await publisher.publish("message_created", customer, colleagues["id"], [colleague])
    mine_event = await publisher.publish("message_created", customer, mine["id"], [me])
    assert without_token(await client.frame()) == event_frame(mine_event, f"chat:{mine['id']}")


async def test_a_socket_is_closed_when_its_token_expires(gateway):
    from services.gateway.app import TOKEN_EXPIRED_CLOSE_CODE
    from tests.integration.gateway.support import wait_closed

    token = jwt.encode(_claims(exp=int(time.time()) + 2), TEST_SECRET)
    ws = await gateway.session.ws_connect(f"{gateway.base_url}/v1.0/ws?token={token}")
    assert await wait_closed(ws, timeout=10) == TOKEN_EXPIRED_CLOSE_CODE


async def test_one_frame_cannot_exceed_the_topic_limit(gateway):
    from services.gateway.protocol import MAX_TOPICS

    agent = uuid4()
    client = await gateway.connect(uuid4(), agent)
    await client.send({"type": "subscribe",
                       "topics": [f"chat:{uuid4()}" for _ in range(MAX_TOPICS + 1)]})
    frame = await client.frame()
    assert (frame["type"], frame["error"]) == ("error", "too_many_topics")
    # The connection is intact.
    assert (await client.subscribe(f"agent:{agent}"))["type"] == "subscribed"
