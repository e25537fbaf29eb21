import pytest

from command_api.domain import (
    AddParticipant,
    AddReaction,
    ChatState,
    Conflict,
    DeleteMessage,
    EditMessage,
    Forbidden,
    Invalid,
    MessageState,
    NotFound,
    PostMessage,
    RemoveParticipant,
    RemoveReaction,
    decide_chat,
    decide_message,
    evolve_message,
    fold_chat,
    fold_message,
)
from events.catalogue import (
    ChatDeleted,
    Media,
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    ReactionAdded,
    ReactionRemoved,
)

from .support import (
    ALICE,
    BOB,
    CAROL,
    NOW,
    OTHER_CUSTOMER,
    a_chat,
    a_message,
    ctx,
    new_id,
)

PNG = Media(type="image/png", url="https://cdn.example.com/a.png", name="a.png")


def post_cmd(chat, actor=ALICE, **kw):
    fields = {"message_id": new_id(), "chat_id": chat.chat_id, "text": "hi"} | ctx(actor) | kw
    return PostMessage(**fields)


def invalid_fields(exc):
    return [e["field"] for e in exc.value.errors]


def delete_chat(chat):
    return fold_chat([ChatDeleted(chat_id=chat.chat_id, tm_delete=NOW)], chat)


def leave(chat, who):
    cmd = RemoveParticipant(chat_id=chat.chat_id, participant_id=chat.participant_id_of(who),
                            system_message_id=new_id(), **ctx(who))
    return fold_chat(decide_chat(chat, cmd), chat)


# --- post ---------------------------------------------------------------------------------------


def test_post_message():
    chat = a_chat(ALICE, BOB)
    cmd = post_cmd(chat, BOB, text="hello", medias=(PNG,))
    [ev] = decide_message(chat, MessageState(), cmd)
    assert ev == MessagePosted(message_id=cmd.message_id, chat_id=chat.chat_id, parent_id=None,
                               owner_type="agent", owner_id=BOB, type="normal", text="hello",
                               medias=(PNG,), tm_create=NOW)
    state = evolve_message(MessageState(), ev)
    assert (state.exists, state.owner_id, state.text, state.version) == (True, BOB, "hello", 1)


def test_post_media_only_needs_no_text():
    chat = a_chat(ALICE)
    [ev] = decide_message(chat, MessageState(), post_cmd(chat, text="", medias=(PNG,)))
    assert ev.text == "" and ev.medias == (PNG,)


def test_post_medias_as_mappings_are_normalised():
    chat = a_chat(ALICE)
    raw = ({"type": "image/png", "url": "https://x.io/a"},)
    [ev] = decide_message(chat, MessageState(), post_cmd(chat, medias=raw))
    assert ev.medias == (Media(type="image/png", url="https://x.io/a", name=""),)


def test_post_reply_to_a_message_of_the_same_talk_even_deleted():
    chat = a_chat(ALICE, BOB)
    parent = a_message(chat, ALICE)
    parent = fold_message([MessageDeleted(message_id=parent.message_id, chat_id=chat.chat_id,
                                          tm_delete=NOW)], parent)
    [ev] = decide_message(chat, MessageState(), post_cmd(chat, BOB, parent_id=parent.message_id),
                          parent)
    assert ev.parent_id == parent.message_id
    reply = evolve_message(MessageState(), ev)
    [ev2] = decide_message(chat, MessageState(), post_cmd(chat, parent_id=reply.message_id),
                           reply)  # replies nest
    assert ev2.parent_id == reply.message_id


def test_a_parent_that_is_no_message_of_the_talk_is_not_found():
    chat, other = a_chat(ALICE), a_chat(ALICE)
    elsewhere = a_message(other)
    here = a_message(chat)
    for parent_id, parent in [
        (new_id(), None),  # missing
        (new_id(), MessageState()),  # unknown
        (elsewhere.message_id, elsewhere),  # other talk
        (new_id(), here),  # state of a different message
    ]:
        with pytest.raises(NotFound) as exc:
            decide_message(chat, MessageState(), post_cmd(chat, parent_id=parent_id), parent)
        assert exc.value.problem == "parent-not-found"
    with pytest.raises(Invalid):  # bad input is told first
        decide_message(chat, MessageState(), post_cmd(chat, parent_id=new_id(), text=""), None)


def test_post_by_non_participant_is_forbidden():
    chat = a_chat(ALICE, BOB)
    with pytest.raises(Forbidden):
        decide_message(chat, MessageState(), post_cmd(chat, CAROL))
    with pytest.raises(Forbidden):  # left the talk
        decide_message(leave(chat, BOB), MessageState(), post_cmd(chat, BOB))


def test_post_into_missing_or_foreign_talk_is_not_found():
    chat = a_chat(ALICE)
    with pytest.raises(NotFound):
        decide_message(ChatState(), MessageState(), post_cmd(chat))
    with pytest.raises(NotFound):
        decide_message(chat, MessageState(), post_cmd(chat, customer_id=OTHER_CUSTOMER))
    with pytest.raises(NotFound):
        decide_message(a_chat(ALICE), MessageState(), post_cmd(chat))


def test_post_into_deleted_talk_is_conflict():
    chat = a_chat(ALICE, deleted=True)
    with pytest.raises(Conflict, match="deleted"):
        decide_message(chat, MessageState(), post_cmd(chat))


def test_post_with_a_taken_id_is_conflict():
    chat = a_chat(ALICE)
    taken = a_message(chat)
    with pytest.raises(Conflict):
        decide_message(chat, taken, post_cmd(chat, message_id=taken.message_id))


@pytest.mark.parametrize(("kw", "fields"), [
    ({"type": "system"}, ["type"]),
    ({"type": "urgent"}, ["type"]),
    ({"text": ""}, ["text"]),
    ({"text": "   "}, ["text"]),
    ({"text": "x" * 10_001}, ["text"]),
    ({"medias": (PNG,) * 11}, ["medias"]),
    ({"medias": (Media(type="png", url="https://x.io/a"),)}, ["medias[0].type"]),
    ({"medias": (Media(type="image/png", url="ftp://x.io/a"),)}, ["medias[0].url"]),
    ({"medias": (Media(type="image/png", url="https://x.io/" + "a" * 2048),)}, ["medias[0].url"]),
    ({"medias": (PNG, Media(type="image/png", url="https://x.io", name="n" * 256))},
     ["medias[1].name"]),
    ({"text": "", "type": "system"}, ["type", "text"]),
])
def test_post_invalid_input(kw, fields):
    chat = a_chat(ALICE)
    with pytest.raises(Invalid) as exc:
        decide_message(chat, MessageState(), post_cmd(chat, **kw))
    assert invalid_fields(exc) == fields


def test_post_text_at_the_limit_is_fine():
    chat = a_chat(ALICE)
    assert decide_message(chat, MessageState(), post_cmd(chat, text="x" * 10_000))


# --- edit / delete ------------------------------------------------------------------------------


def edit_cmd(msg, actor=ALICE, text="edited", **kw):
    return EditMessage(message_id=msg.message_id, text=text, **(ctx(actor) | kw))


def test_edit_by_author():
    chat = a_chat(ALICE, BOB)
    msg = a_message(chat, ALICE)
    [ev] = decide_message(chat, msg, edit_cmd(msg))
    assert ev == MessageEdited(message_id=msg.message_id, chat_id=chat.chat_id, text="edited",
                               tm_update=NOW)
    assert evolve_message(msg, ev).text == "edited"


def test_edit_by_someone_else_is_forbidden():
    chat = a_chat(ALICE, BOB)
    msg = a_message(chat, ALICE)
    with pytest.raises(Forbidden):
        decide_message(chat, msg, edit_cmd(msg, BOB))


def test_nobody_edits_or_deletes_a_system_message():
    chat = a_chat(ALICE)
    join = decide_chat(chat, AddParticipant(
        chat_id=chat.chat_id, owner_type="agent", owner_id=BOB, participant_id=new_id(),
        system_message_id=new_id(), **ctx()))
    chat = fold_chat(join, chat)
    system = fold_message([join[1]])
    assert system.owner_id == BOB and system.owner_type == "system"
    with pytest.raises(Forbidden):
        decide_message(chat, system, edit_cmd(system, BOB))
    with pytest.raises(Forbidden):
        decide_message(chat, system, DeleteMessage(message_id=system.message_id, **ctx(BOB)))


def test_author_who_left_cannot_edit_or_delete():
    chat = a_chat(ALICE, BOB)
    msg = a_message(chat, BOB)
    chat = leave(chat, BOB)
    with pytest.raises(Forbidden):
        decide_message(chat, msg, edit_cmd(msg, BOB))
    with pytest.raises(Forbidden):
        decide_message(chat, msg, DeleteMessage(message_id=msg.message_id, **ctx(BOB)))


@pytest.mark.parametrize("text", ["x" * 10_001, "a\x00"])
def test_edit_text_rules(text):
    chat = a_chat(ALICE)
    msg = a_message(chat)
    with pytest.raises(Invalid) as exc:
        decide_message(chat, msg, edit_cmd(msg, text=text))
    assert invalid_fields(exc) == ["text"]


@pytest.mark.parametrize("text", ["", "  "])
def test_a_blank_edit_of_a_message_without_attachments_conflicts(text):
    chat = a_chat(ALICE)
    msg = a_message(chat)
    with pytest.raises(Conflict) as exc:
        decide_message(chat, msg, edit_cmd(msg, text=text))
    assert exc.value.problem == "text-required"


def test_edit_deleted_message_is_conflict():
    chat = a_chat(ALICE)
    msg = a_message(chat)
    msg = fold_message(decide_message(chat, msg, DeleteMessage(message_id=msg.message_id,
                                                                **ctx())), msg)
    with pytest.raises(Conflict):
        decide_message(chat, msg, edit_cmd(msg))


def test_delete_by_author_then_again_is_a_no_op():
    chat = a_chat(ALICE)
    msg = a_message(chat)
    cmd = DeleteMessage(message_id=msg.message_id, **ctx())
    [ev] = decide_message(chat, msg, cmd)
    assert ev == MessageDeleted(message_id=msg.message_id, chat_id=chat.chat_id, tm_delete=NOW)
    msg = evolve_message(msg, ev)
    assert msg.deleted
    assert decide_message(chat, msg, cmd) == []


def test_delete_by_someone_else_is_forbidden():
    chat = a_chat(ALICE, BOB)
    msg = a_message(chat, ALICE)
    with pytest.raises(Forbidden):
        decide_message(chat, msg, DeleteMessage(message_id=msg.message_id, **ctx(BOB)))


# --- reactions ----------------------------------------------------------------------------------


def react(msg, emoji="👍", actor=ALICE, **kw):
    return AddReaction(message_id=msg.message_id, emoji=emoji, **(ctx(actor) | kw))


def unreact(msg, emoji="👍", actor=ALICE, **kw):
    return RemoveReaction(message_id=msg.message_id, emoji=emoji, **(ctx(actor) | kw))


def test_add_and_remove_reaction():
    chat = a_chat(ALICE, BOB)
    msg = a_message(chat, ALICE)
    [added] = decide_message(chat, msg, react(msg, actor=BOB))
    assert added == ReactionAdded(message_id=msg.message_id, chat_id=chat.chat_id, emoji="👍",
                                  owner_type="agent", owner_id=BOB, tm_create=NOW)
    msg = evolve_message(msg, added)
    assert msg.reactions == {(BOB, "👍")}
    [removed] = decide_message(chat, msg, unreact(msg, actor=BOB))
    assert removed == ReactionRemoved(message_id=msg.message_id, chat_id=chat.chat_id,
                                      emoji="👍", owner_type="agent", owner_id=BOB, tm_remove=NOW)
    assert evolve_message(msg, removed).reactions == frozenset()


def test_several_agents_and_several_emoji():
    chat = a_chat(ALICE, BOB)
    msg = a_message(chat)
    for actor, emoji in [(ALICE, "👍"), (BOB, "👍"), (ALICE, "heart")]:
        msg = fold_message(decide_message(chat, msg, react(msg, emoji, actor)), msg)
    assert msg.reactions == {(ALICE, "👍"), (BOB, "👍"), (ALICE, "heart")}


def test_same_reaction_again_is_a_no_op():
    chat = a_chat(ALICE)
    msg = a_message(chat)
    msg = fold_message(decide_message(chat, msg, react(msg)), msg)
    assert decide_message(chat, msg, react(msg)) == []


def test_removing_an_absent_reaction_is_a_no_op():
    chat = a_chat(ALICE, BOB)
    msg = a_message(chat)
    msg = fold_message(decide_message(chat, msg, react(msg, actor=BOB)), msg)
    assert decide_message(chat, msg, unreact(msg)) == []  # only BOB's is there
    assert msg.reactions == {(BOB, "👍")}


def test_reactions_need_a_participant():
    chat = a_chat(ALICE, BOB)
    msg = a_message(chat)
    with pytest.raises(Forbidden):
        decide_message(chat, msg, react(msg, actor=CAROL))
    with pytest.raises(Forbidden):
        decide_message(chat, msg, unreact(msg, actor=CAROL))


@pytest.mark.parametrize("emoji", ["", "x" * 65, "not valid", "<b>"])
def test_reaction_emoji_rules(emoji):
    chat = a_chat(ALICE)
    msg = a_message(chat)
    for make in (react, unreact):
        with pytest.raises(Invalid) as exc:
            decide_message(chat, msg, make(msg, emoji))
        assert invalid_fields(exc) == ["emoji"]


def test_reactions_on_a_deleted_message_conflict():
    chat = a_chat(ALICE)
    msg = a_message(chat)
    msg = fold_message(decide_message(chat, msg, react(msg)), msg)
    msg = fold_message(decide_message(chat, msg, DeleteMessage(message_id=msg.message_id,
                                                                **ctx())), msg)
    for make in (react, unreact):
        with pytest.raises(Conflict):
            decide_message(chat, msg, make(msg))


# --- shared guards ------------------------------------------------------------------------------


def _edit(m, **kw):
    return edit_cmd(m, **kw)


def _delete(m, **kw):
    return DeleteMessage(message_id=m.message_id, **(ctx() | kw))


MESSAGE_COMMANDS = [_edit, _delete, react, unreact]


@pytest.mark.parametrize("make", MESSAGE_COMMANDS)
def test_missing_message_is_not_found(make):
    chat = a_chat(ALICE)
    msg = a_message(chat)
    with pytest.raises(NotFound):
        decide_message(chat, MessageState(), make(msg))


@pytest.mark.parametrize("make", MESSAGE_COMMANDS)
def test_message_of_another_customer_is_not_found(make):
    chat = a_chat(ALICE)
    msg = a_message(chat)
    with pytest.raises(NotFound):
        decide_message(chat, msg, make(msg, customer_id=OTHER_CUSTOMER))


@pytest.mark.parametrize("make", MESSAGE_COMMANDS)
def test_message_with_the_wrong_talk_is_not_found(make):
    chat = a_chat(ALICE)
    msg = a_message(chat)
    with pytest.raises(NotFound):
        decide_message(a_chat(ALICE), msg, make(msg))
    with pytest.raises(NotFound):
        decide_message(ChatState(), msg, make(msg))


@pytest.mark.parametrize("make", MESSAGE_COMMANDS)
def test_message_writes_into_a_deleted_talk_conflict(make):
    chat = a_chat(ALICE)
    msg = a_message(chat)
    with pytest.raises(Conflict, match="talk is deleted"):
        decide_message(delete_chat(chat), msg, make(msg))


def test_evolve_message_ignores_other_events_and_is_total():
    chat = a_chat(ALICE)
    msg = a_message(chat)
    assert evolve_message(msg, ChatDeleted(chat_id=chat.chat_id, tm_delete=NOW)) is msg
    ghost = ReactionRemoved(message_id=msg.message_id, chat_id=chat.chat_id, emoji="x",
                            owner_type="agent", owner_id=BOB, tm_remove=NOW)
    assert evolve_message(msg, ghost).reactions == frozenset()
    assert evolve_message(msg, ghost).version == msg.version + 1
