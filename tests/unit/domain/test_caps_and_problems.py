"""The caps that bound what one talk or message costs (members per talk, different emoji per
message and per agent per message), and the problem type each refusal names: one slug per
rule, each with the status its error class answers."""

from __future__ import annotations

import pytest

from command_api.domain import (
    AddParticipant,
    ChatState,
    Conflict,
    DomainError,
    EditMessage,
    Forbidden,
    NotFound,
    decide_chat,
    decide_message,
    fold_message,
    rules,
)
from command_api.domain.errors import PROBLEM_TYPES, Invalid
from command_api.http import domain_problem

from .support import ALICE, BOB, CAROL, a_chat, a_message, create_cmd, ctx, new_id
from .test_message import react


def problem_of(call) -> str:
    with pytest.raises(DomainError) as exc:
        call()
    return exc.value.problem


# --- members per talk ---------------------------------------------------------------------


def test_a_talk_is_created_with_at_most_the_member_cap():
    at_cap = tuple(new_id() for _ in range(rules.TALK_MAX_MEMBERS - 1))
    assert decide_chat(ChatState(), create_cmd(ALICE, "group", at_cap))
    over = (*at_cap, new_id())
    with pytest.raises(Conflict, match="at most 1,000") as exc:
        decide_chat(ChatState(), create_cmd(ALICE, "group", over))
    assert exc.value.problem == "too-many-members"


def test_the_creator_listed_again_does_not_count_twice():
    at_cap = (ALICE, *(new_id() for _ in range(rules.TALK_MAX_MEMBERS - 1)))
    assert decide_chat(ChatState(), create_cmd(ALICE, "group", at_cap))


def test_a_full_group_talk_refuses_one_more_member():
    chat = a_chat(ALICE, *(new_id() for _ in range(rules.TALK_MAX_MEMBERS - 1)))
    assert chat.member_count == rules.TALK_MAX_MEMBERS
    add = AddParticipant(chat_id=chat.chat_id, owner_type="agent", owner_id=new_id(),
                         participant_id=new_id(), system_message_id=new_id(), **ctx())
    assert problem_of(lambda: decide_chat(chat, add)) == "too-many-members"


def test_a_full_normal_talk_is_talk_full_and_a_member_already_in_is_already_participant():
    chat = a_chat(ALICE, BOB, type="normal")

    def add(who):
        return AddParticipant(chat_id=chat.chat_id, owner_type="agent", owner_id=who,
                              participant_id=new_id(), system_message_id=new_id(), **ctx())

    assert problem_of(lambda: decide_chat(chat, add(CAROL))) == "talk-full"
    assert problem_of(lambda: decide_chat(chat, add(BOB))) == "already-participant"
    assert problem_of(lambda: decide_chat(ChatState(), create_cmd(ALICE, "normal", (BOB, CAROL)))) \
        == "talk-full"


# --- reactions per message ----------------------------------------------------------------


def emoji(i: int) -> str:
    return f"e{i}"


def with_reactions(pairs) -> tuple:
    chat = a_chat(ALICE, BOB, CAROL)
    msg = a_message(chat)
    for actor, e in pairs:
        msg = fold_message(decide_message(chat, msg, react(msg, e, actor)), msg)
    return chat, msg


def test_one_agent_adds_at_most_the_per_agent_cap_of_emoji():
    cap = rules.AGENT_MAX_EMOJI_PER_MESSAGE
    chat, msg = with_reactions([(ALICE, emoji(i)) for i in range(cap)])
    assert len(msg.reactions) == cap
    assert problem_of(lambda: decide_message(chat, msg, react(msg, emoji(cap)))) \
        == "too-many-reactions-by-agent"
    assert decide_message(chat, msg, react(msg, emoji(0))) == []  # already there: a no-op
    assert decide_message(chat, msg, react(msg, emoji(cap), BOB))  # another agent may


def test_a_message_carries_at_most_the_cap_of_different_emoji():
    cap, per_agent = rules.MESSAGE_MAX_EMOJI, rules.AGENT_MAX_EMOJI_PER_MESSAGE
    agents = [ALICE, BOB, CAROL]
    chat, msg = with_reactions([(agents[i // per_agent], emoji(i)) for i in range(cap)])
    assert len({e for _, e in msg.reactions}) == cap
    assert problem_of(lambda: decide_message(chat, msg, react(msg, "new", CAROL))) \
        == "too-many-reactions"
    assert decide_message(chat, msg, react(msg, emoji(0), CAROL))  # an emoji already there


# --- problem types ------------------------------------------------------------------------


def test_each_rule_names_its_problem_type():
    chat = a_chat(ALICE, BOB)
    msg = a_message(chat, ALICE)
    add = AddParticipant(chat_id=chat.chat_id, owner_type="agent", owner_id=CAROL,
                         participant_id=new_id(), system_message_id=new_id(), **ctx(CAROL))
    assert problem_of(lambda: decide_chat(chat, add)) == "not-a-participant"
    edit = EditMessage(message_id=msg.message_id, text="x", **ctx(BOB))
    assert problem_of(lambda: decide_message(chat, msg, edit)) == "not-the-author"
    deleted = a_chat(ALICE, deleted=True)
    add = AddParticipant(chat_id=deleted.chat_id, owner_type="agent", owner_id=CAROL,
                         participant_id=new_id(), system_message_id=new_id(), **ctx())
    assert problem_of(lambda: decide_chat(deleted, add)) == "talk-deleted"
    other = AddParticipant(chat_id=new_id(), owner_type="agent", owner_id=CAROL,
                           participant_id=new_id(), system_message_id=new_id(), **ctx())
    assert problem_of(lambda: decide_chat(ChatState(), other)) == "talk-not-found"


def test_every_problem_type_has_the_status_of_its_class_and_an_unknown_one_is_refused():
    for cls in (NotFound, Forbidden, Conflict, Invalid):
        assert PROBLEM_TYPES[cls.default_problem].status == cls.status
    for slug, problem in PROBLEM_TYPES.items():
        assert problem.slug == slug and problem.meaning and 400 <= problem.status < 500
    with pytest.raises(ValueError):
        Conflict("x", "talk-not-found")  # a 404 type on a 409
    with pytest.raises(ValueError):
        Conflict("x", "no-such-rule")


def test_a_refusal_answers_its_type_as_a_url():
    answer = domain_problem(Conflict("the talk is full", "talk-full"))
    assert (answer.status, answer.type, answer.detail) == (
        409, "https://talk.dev/problems/talk-full", "the talk is full")
    assert domain_problem(Invalid.field("text", "bad")).type == \
        "https://talk.dev/problems/invalid-input"
