"""The caps over HTTP: a talk of more than 1,000 members and a 21st emoji by one agent on one
message are refused with a 409 naming the rule, and nothing is stored; a talk created at the
cap costs N + 2 events (one system message for all its members)."""

from __future__ import annotations

from uuid import uuid4

from command_api.domain import rules

CHATS = "/v1.0/service_agents/talk_chats"
MESSAGES = "/v1.0/service_agents/talk_messages"
PROBLEMS = "https://talk.dev/problems/"


def _members(n: int) -> list[dict]:
    return [{"owner_type": "agent", "owner_id": str(uuid4())} for _ in range(n)]


async def test_a_talk_holds_at_most_the_member_cap(talk):
    alice = talk.agent()
    over = await alice.problem(409, "POST", CHATS, json={
        "type": "group", "participants": _members(rules.TALK_MAX_MEMBERS)})  # + the creator
    assert over["type"] == f"{PROBLEMS}too-many-members"
    before = await talk.event_count()
    full = await alice.ok("POST", CHATS, json={
        "type": "group", "participants": _members(rules.TALK_MAX_MEMBERS - 1)})
    assert full["member_count"] == rules.TALK_MAX_MEMBERS
    # the talk, one join per member, one system message for them all
    assert await talk.event_count() - before == rules.TALK_MAX_MEMBERS + 2
    one_more = await alice.problem(409, "POST", f"{CHATS}/{full['id']}/participants",
                                   json={"owner_type": "agent", "owner_id": str(uuid4())})
    assert one_more["type"] == f"{PROBLEMS}too-many-members"


async def test_one_agent_adds_at_most_the_per_agent_cap_of_emoji(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    message = await alice.post(chat, "react to me")
    path = f"{MESSAGES}/{message['id']}/reactions"
    for i in range(rules.AGENT_MAX_EMOJI_PER_MESSAGE):
        await alice.ok("POST", path, json={"emoji": f"e{i}"})
    again = await alice.ok("POST", path, json={"emoji": "e0"})  # already there: a no-op
    assert len(again["metadata"]["reactions"]) == rules.AGENT_MAX_EMOJI_PER_MESSAGE
    refused = await alice.problem(409, "POST", path, json={"emoji": "one-more"})
    assert refused["type"] == f"{PROBLEMS}too-many-reactions-by-agent"
    await bob.ok("POST", path, json={"emoji": "one-more"})  # another agent still may
