from dataclasses import FrozenInstanceError
from datetime import datetime

import pytest

from command_api.domain import (
    AddParticipant,
    ChatState,
    Conflict,
    DeleteChat,
    Forbidden,
    Invalid,
    NotFound,
    RemoveParticipant,
    UpdateChat,
    decide_chat,
    evolve_chat,
    fold_chat,
    rules,
    stream_of,
)
from events.catalogue import (
    ChatCreated,
    ChatDeleted,
    ChatUpdated,
    MessagePosted,
    ParticipantJoined,
    ParticipantLeft,
    ReactionAdded,
)

from .support import (
    ALICE,
    BOB,
    CAROL,
    CUSTOMER,
    DAVE,
    NOW,
    OTHER_CUSTOMER,
    a_chat,
    create_cmd,
    ctx,
    invitee,
    new_id,
)


def add_cmd(chat, owner, actor=ALICE, **kw):
    fields = {"chat_id": chat.chat_id, "owner_type": "agent", "owner_id": owner,
              "participant_id": new_id(), "system_message_id": new_id()} | ctx(actor) | kw
    return AddParticipant(**fields)


def remove_cmd(chat, participant_id, actor=ALICE, **kw):
    return RemoveParticipant(chat_id=chat.chat_id, participant_id=participant_id,
                             system_message_id=new_id(), **(ctx(actor) | kw))


# --- create -------------------------------------------------------------------------------------


def test_create_emits_chat_then_a_join_per_member_and_one_system_message():
    cmd = create_cmd(ALICE, "group", (BOB, CAROL))
    events = decide_chat(ChatState(), cmd)
    assert [type(e) for e in events] == [
        ChatCreated, ParticipantJoined, ParticipantJoined, ParticipantJoined, MessagePosted,
    ]
    created = events[0]
    assert (created.chat_id, created.customer_id, created.type, created.name, created.detail,
            created.tm_create) == (cmd.chat_id, CUSTOMER, "group", "talk", "about", NOW)
    joins = [e for e in events if isinstance(e, ParticipantJoined)]
    assert [j.owner_id for j in joins] == [ALICE, BOB, CAROL]
    assert joins[0].participant_id == cmd.creator_participant_id
    assert [j.participant_id for j in joins[1:]] == [p.participant_id for p in cmd.participants]
    system = events[-1]
    assert system.message_id == cmd.creator_system_message_id
    assert (system.type, system.owner_type, system.owner_id, system.text, system.chat_id,
            system.parent_id, system.tm_create) == (
        "system", "system", ALICE, f"{ALICE} and 2 others joined the talk", cmd.chat_id, None,
        NOW)


def test_a_talk_created_alone_says_its_creator_joined():
    cmd = create_cmd(BOB, "group", ())
    *_, system = decide_chat(ChatState(), cmd)
    assert system.text == f"{BOB} joined the talk"
    *_, system = decide_chat(ChatState(), create_cmd(BOB, "group", (CAROL,)))
    assert system.text == f"{BOB} and 1 other joined the talk"


def test_the_events_of_a_creation_grow_linearly_with_its_members():
    members = tuple(new_id() for _ in range(rules.TALK_MAX_MEMBERS - 1))
    events = decide_chat(ChatState(), create_cmd(ALICE, "group", members))
    assert len(events) == 1 + rules.TALK_MAX_MEMBERS + 1  # created, the joins, one message


def test_create_is_deterministic():
    cmd = create_cmd(ALICE, "group", (BOB,))
    assert decide_chat(ChatState(), cmd) == decide_chat(ChatState(), cmd)


def test_create_dedupes_and_ignores_creator_listed_again():
    cmd = create_cmd(ALICE, "normal", (ALICE, BOB, BOB))
    state = fold_chat(decide_chat(ChatState(), cmd))
    assert state.owner_ids == (ALICE, BOB)
    assert state.participant_id_of(ALICE) == cmd.creator_participant_id
    assert state.participant_id_of(BOB) == cmd.participants[1].participant_id
    assert state.member_count == 2
    assert state.version == 3


def test_create_normal_alone_is_fine():
    state = fold_chat(decide_chat(ChatState(), create_cmd(ALICE, "normal")))
    assert state.owner_ids == (ALICE,)


def test_create_normal_with_three_is_conflict():
    with pytest.raises(Conflict, match="at most 2"):
        decide_chat(ChatState(), create_cmd(ALICE, "normal", (BOB, CAROL)))


def test_create_group_has_no_limit():
    state = fold_chat(decide_chat(ChatState(), create_cmd(ALICE, "group", (BOB, CAROL, DAVE))))
    assert state.member_count == 4


@pytest.mark.parametrize(("kw", "field"), [
    ({"type": "private"}, "type"),
    ({"name": "n" * 256}, "name"),
    ({"detail": "d" * 10_001}, "detail"),
    ({"name": "a\x00"}, "name"),
    ({"participants": (invitee(BOB, "customer"),)}, "participants[0].owner_type"),
])
def test_create_invalid(kw, field):
    with pytest.raises(Invalid) as exc:
        decide_chat(ChatState(), create_cmd(**kw))
    assert [e["field"] for e in exc.value.errors] == [field]


def test_create_over_an_existing_talk_is_conflict():
    state = a_chat(ALICE)
    with pytest.raises(Conflict):
        decide_chat(state, create_cmd(chat_id=state.chat_id))


def test_command_needs_aware_now():
    with pytest.raises(ValueError):
        create_cmd(now=datetime(2024, 1, 1))


def test_commands_and_states_are_frozen():
    cmd = create_cmd()
    with pytest.raises(FrozenInstanceError):
        cmd.name = "x"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        ChatState().deleted = True  # type: ignore[misc]


# --- not found / forbidden (shared by every talk command) -------------------------------------


def _update(chat, actor=ALICE, customer=CUSTOMER):
    return UpdateChat(chat_id=chat.chat_id, name="x", **ctx(actor, customer))


def _delete(chat, actor=ALICE, customer=CUSTOMER):
    return DeleteChat(chat_id=chat.chat_id, **ctx(actor, customer))


def _add(chat, actor=ALICE, customer=CUSTOMER):
    return add_cmd(chat, DAVE, actor, customer_id=customer)


def _remove(chat, actor=ALICE, customer=CUSTOMER):
    return remove_cmd(chat, chat.participants[0][1], actor, customer_id=customer)


TALK_COMMANDS = [_update, _delete, _add, _remove]


@pytest.mark.parametrize("make", TALK_COMMANDS)
def test_missing_talk_is_not_found(make):
    chat = a_chat(ALICE, BOB)
    with pytest.raises(NotFound):
        decide_chat(ChatState(), make(chat))


@pytest.mark.parametrize("make", TALK_COMMANDS)
def test_other_customers_talk_is_not_found_not_forbidden(make):
    chat = a_chat(ALICE, BOB)
    with pytest.raises(NotFound):
        decide_chat(chat, make(chat, customer=OTHER_CUSTOMER))


@pytest.mark.parametrize("make", TALK_COMMANDS)
def test_state_of_another_talk_is_not_found(make):
    chat, other = a_chat(ALICE, BOB), a_chat(ALICE, BOB)
    with pytest.raises(NotFound):
        decide_chat(other, make(chat))


@pytest.mark.parametrize("make", TALK_COMMANDS)
def test_non_participant_is_forbidden(make):
    chat = a_chat(ALICE, BOB)
    with pytest.raises(Forbidden):
        decide_chat(chat, make(chat, actor=CAROL))


@pytest.mark.parametrize("make", TALK_COMMANDS)
def test_writes_into_a_deleted_talk_conflict(make):
    chat = a_chat(ALICE, BOB, deleted=True)
    with pytest.raises(Conflict, match="deleted"):
        decide_chat(chat, make(chat))


# --- update / delete --------------------------------------------------------------------------


def test_update_name_or_detail():
    chat = a_chat(ALICE, BOB)
    [ev] = decide_chat(chat, UpdateChat(chat_id=chat.chat_id, detail="new", **ctx(BOB)))
    assert ev == ChatUpdated(chat_id=chat.chat_id, name=None, detail="new", tm_update=NOW)
    after = evolve_chat(chat, ev)
    assert (after.name, after.detail, after.version) == ("talk", "new", chat.version + 1)
    [ev] = decide_chat(after, UpdateChat(chat_id=chat.chat_id, name="", **ctx()))
    assert evolve_chat(after, ev).name == ""


def test_update_needs_name_or_detail():
    chat = a_chat(ALICE)
    with pytest.raises(Invalid) as exc:
        decide_chat(chat, UpdateChat(chat_id=chat.chat_id, **ctx()))
    assert exc.value.errors == [{"field": "body", "message": "name or detail is required"}]


def test_update_too_long_name_is_invalid():
    chat = a_chat(ALICE)
    with pytest.raises(Invalid) as exc:
        decide_chat(chat, UpdateChat(chat_id=chat.chat_id, name="n" * 256, **ctx()))
    assert exc.value.errors[0]["field"] == "name"


def test_delete_is_soft_and_keeps_participants():
    chat = a_chat(ALICE, BOB)
    [ev] = decide_chat(chat, DeleteChat(chat_id=chat.chat_id, **ctx(BOB)))
    assert ev == ChatDeleted(chat_id=chat.chat_id, tm_delete=NOW)
    after = evolve_chat(chat, ev)
    assert after.deleted and after.participants == chat.participants


def test_delete_twice_is_conflict():
    chat = a_chat(ALICE, deleted=True)
    with pytest.raises(Conflict):
        decide_chat(chat, DeleteChat(chat_id=chat.chat_id, **ctx()))


# --- participants -----------------------------------------------------------------------------


def test_add_participant_joins_and_posts_system_message():
    chat = a_chat(ALICE)
    cmd = add_cmd(chat, BOB)
    joined, posted = decide_chat(chat, cmd)
    assert joined == ParticipantJoined(chat_id=chat.chat_id, participant_id=cmd.participant_id,
                                       owner_type="agent", owner_id=BOB, tm_joined=NOW)
    assert posted == MessagePosted(
        message_id=cmd.system_message_id, chat_id=chat.chat_id, owner_type="system",
        owner_id=BOB, type="system", text=f"{BOB} joined the talk", tm_create=NOW)
    assert fold_chat([joined, posted], chat).owner_ids == (ALICE, BOB)


def test_add_non_agent_is_invalid():
    chat = a_chat(ALICE)
    with pytest.raises(Invalid) as exc:
        decide_chat(chat, add_cmd(chat, BOB, owner_type="customer"))
    assert exc.value.errors[0]["field"] == "owner_type"


def test_add_same_agent_twice_is_conflict():
    chat = a_chat(ALICE, BOB)
    with pytest.raises(Conflict, match="already"):
        decide_chat(chat, add_cmd(chat, BOB))
    with pytest.raises(Conflict, match="already"):
        decide_chat(chat, add_cmd(chat, ALICE))


def test_add_third_to_normal_talk_is_conflict():
    chat = a_chat(ALICE, BOB, type="normal")
    with pytest.raises(Conflict, match="at most 2"):
        decide_chat(chat, add_cmd(chat, CAROL))


def test_normal_talk_refills_after_a_leave():
    chat = a_chat(ALICE, BOB, type="normal")
    chat = fold_chat(decide_chat(chat, remove_cmd(chat, chat.participant_id_of(BOB))), chat)
    chat = fold_chat(decide_chat(chat, add_cmd(chat, CAROL)), chat)
    assert chat.owner_ids == (ALICE, CAROL)


def test_remove_participant_leaves_and_posts_system_message():
    chat = a_chat(ALICE, BOB, CAROL)
    pid = chat.participant_id_of(BOB)
    cmd = remove_cmd(chat, pid)
    left, posted = decide_chat(chat, cmd)
    assert left == ParticipantLeft(chat_id=chat.chat_id, participant_id=pid, owner_type="agent",
                                   owner_id=BOB, tm_left=NOW)
    assert (posted.message_id, posted.type, posted.owner_type, posted.owner_id, posted.text) == (
        cmd.system_message_id, "system", "system", BOB, f"{BOB} left the talk")
    assert fold_chat([left, posted], chat).owner_ids == (ALICE, CAROL)


def test_leaving_is_removing_yourself():
    chat = a_chat(ALICE, BOB)
    events = decide_chat(chat, remove_cmd(chat, chat.participant_id_of(BOB), actor=BOB))
    assert fold_chat(events, chat).owner_ids == (ALICE,)


def test_remove_unknown_participant_is_not_found():
    chat, other = a_chat(ALICE, BOB), a_chat(CAROL)
    with pytest.raises(NotFound, match="participant"):
        decide_chat(chat, remove_cmd(chat, new_id()))
    with pytest.raises(NotFound, match="participant"):  # a participant of another talk
        decide_chat(chat, remove_cmd(chat, other.participant_id_of(CAROL)))


def test_rejoin_gets_a_new_participant_id():
    chat = a_chat(ALICE, BOB)
    first = chat.participant_id_of(BOB)
    chat = fold_chat(decide_chat(chat, remove_cmd(chat, first)), chat)
    chat = fold_chat(decide_chat(chat, add_cmd(chat, BOB)), chat)
    assert chat.participant_id_of(BOB) not in (None, first)


def test_removed_participant_loses_rights():
    chat = a_chat(ALICE, BOB)
    chat = fold_chat(decide_chat(chat, remove_cmd(chat, chat.participant_id_of(BOB))), chat)
    with pytest.raises(Forbidden):
        decide_chat(chat, UpdateChat(chat_id=chat.chat_id, name="x", **ctx(BOB)))


# --- evolve -------------------------------------------------------------------------------------


def test_evolve_ignores_other_aggregates_and_counts_versions():
    chat = a_chat(ALICE)
    msg = MessagePosted(message_id=new_id(), chat_id=chat.chat_id, owner_type="agent",
                        owner_id=ALICE, type="normal", text="x", tm_create=NOW)
    react = ReactionAdded(message_id=msg.message_id, chat_id=chat.chat_id, emoji="+1",
                          owner_type="agent", owner_id=ALICE, tm_create=NOW)
    assert fold_chat([msg, react], chat) is chat


def test_evolve_is_total_on_odd_sequences():
    cid = new_id()
    ghost = ParticipantLeft(chat_id=cid, participant_id=new_id(), owner_type="agent",
                            owner_id=BOB, tm_left=NOW)
    join = ParticipantJoined(chat_id=cid, participant_id=new_id(), owner_type="agent",
                             owner_id=BOB, tm_joined=NOW)
    rejoin = join.model_copy(update={"participant_id": new_id()})
    created = ChatCreated(chat_id=cid, customer_id=CUSTOMER, type="group", name="", detail="",
                          tm_create=NOW)
    state = fold_chat([ghost, created, join, rejoin, created, ChatDeleted(chat_id=cid,
                                                                          tm_delete=NOW)])
    assert state.version == 6
    assert state.owner_ids == (BOB,) and state.participant_id_of(BOB) == rejoin.participant_id
    assert state.deleted and state.exists


def test_stream_of_routes_system_messages_to_their_own_stream():
    chat = a_chat(ALICE)
    joined, posted = decide_chat(chat, add_cmd(chat, BOB))
    assert stream_of(joined) == f"chat-{chat.chat_id}"
    assert stream_of(posted) == f"message-{posted.message_id}"
