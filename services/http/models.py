"""The resources and answers of the Talk API as pydantic models: exactly the fields DESIGN
names, as the handlers render them (``query_api/resources.py``, ``events/point_in_time.py``).

They describe the answers, they do not make them: the OpenAPI document
(:mod:`services.openapi`) is built from them, and tests hold them equal to what the service
renders (the models forbid unknown fields, so a field added to a resource and not here fails
those tests).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

TIMESTAMP = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$"
OPTIONAL_TIMESTAMP = r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6})?$"

Timestamp = Annotated[str, Field(pattern=TIMESTAMP,
                                 description="UTC, `YYYY-MM-DD HH:MM:SS.ffffff`")]
OptionalTimestamp = Annotated[str, Field(pattern=OPTIONAL_TIMESTAMP,
                                         description="UTC, `YYYY-MM-DD HH:MM:SS.ffffff`; "
                                                     "`\"\"` when unset")]


class Resource(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Talk(Resource):
    """A talk (chat). Deleting a talk is a soft delete: it keeps answering reads (`GET` 200)
    to its participants with `tm_delete` set, refuses every change (409 `talk-deleted`), and
    leaves its participants' lists of talks."""

    id: UUID
    customer_id: UUID
    type: Literal["normal", "group"]
    name: str
    detail: str
    member_count: int = Field(ge=0, description="current participants, always exact")
    tm_create: Timestamp
    tm_update: OptionalTimestamp
    tm_delete: OptionalTimestamp = Field(description="set once the talk is deleted (a soft "
                                                     "delete: the talk still reads)")
    status: Literal["active", "closed"] = Field(
        description="`closed`: closed by a participant, or by itself when its last participant "
                    "left; it refuses posts, edits, reactions and new participants (409 "
                    "`talk-closed`) and serves every read")
    # The talk as the caller sees it: GET answers (one talk, and the list) carry these.
    unread_count: int | None = Field(
        default=None, ge=0, description="(GET only) normal messages by others after the "
                                        "caller's read marker, deleted ones not counted")
    mention_count: int | None = Field(
        default=None, ge=0, description="(GET only) of those, the ones mentioning the caller")
    last_message: Message | None = Field(
        default=None, description="(GET only) the newest message (any type), or null")
    tm_last_message: OptionalTimestamp | None = Field(
        default=None, description="(GET only) the newest message's `tm_create`; `\"\"` if none")


class Participant(Resource):
    """A current (or, in a removal's answer, just removed) participant of a talk."""

    id: UUID
    customer_id: UUID
    owner_type: Literal["agent"]
    owner_id: UUID
    chat_id: UUID
    tm_joined: Timestamp
    last_read_message_id: UUID | Literal[""] = Field(
        description="the participant's read marker: the last message read (`POST "
                    "talk_chats/{id}/read`, or their own post); `\"\"` until then")
    tm_read: OptionalTimestamp = Field(description="when the marker last moved (clients show "
                                                   "\"seen by\" from it); `\"\"` until then")


class Media(Resource):
    type: str = Field(description="a MIME type")
    url: str = Field(description="an http(s) URL")
    name: str


class Reaction(Resource):
    emoji: str
    owner_type: Literal["agent"]
    owner_id: UUID
    tm_create: Timestamp


class MessageMetadata(Resource):
    reactions: list[Reaction]


class Message(Resource):
    """A message. Deleting one is a soft delete: it keeps answering reads (`GET` 200) as a
    tombstone (`tm_delete` set, `text` and `medias` empty) and refuses changes (409
    `message-deleted`)."""

    id: UUID
    customer_id: UUID
    owner_type: Literal["agent", "system"]
    owner_id: UUID
    chat_id: UUID
    parent_id: UUID | Literal[""] = Field(description="the message replied to; `\"\"` if none")
    type: Literal["normal", "system"]
    text: str
    medias: list[Media]
    metadata: MessageMetadata
    mentions: list[UUID] = Field(description="the participants its text names as "
                                             "`<@agent-id>` (re-evaluated by an edit)")
    reply_count: int = Field(ge=0, description="its direct replies (its thread's length, "
                                               "deleted replies included)")
    tm_last_reply: OptionalTimestamp = Field(description="the newest direct reply's "
                                                         "`tm_create`; `\"\"` without replies")
    tm_create: Timestamp
    tm_update: Timestamp = Field(description="`tm_create` at first, then the time of the "
                                             "last edit, deletion or reaction added or removed")
    tm_delete: OptionalTimestamp


NEXT_PAGE_TOKEN = Field(description="opaque; `\"\"` at the end. A bare timestamp in the API "
                                    "format is accepted as a token too.")


class TalkList(Resource):
    result: list[Talk] = Field(description="newest first")
    next_page_token: str = NEXT_PAGE_TOKEN


class ParticipantList(Resource):
    result: list[Participant]
    next_page_token: str = NEXT_PAGE_TOKEN


class MessageList(Resource):
    result: list[Message] = Field(description="newest first")
    next_page_token: str = NEXT_PAGE_TOKEN


class TextVersion(Resource):
    text: str
    tm_update: Timestamp = Field(description="when the message got this text (`tm_create` "
                                             "for the first)")


class MessageHistory(Resource):
    result: list[TextVersion] = Field(description="oldest first; empty once the message is "
                                                  "deleted")


# --- audit answers (query_api/audit.py, events/point_in_time.py) ----------------------------


class AuditedMessage(Message):
    """A message with its edit state."""

    edited: bool
    versions: int = Field(ge=1, description="texts it has had: the posted one plus one per edit")


class AtPosition(Resource):
    position: int = Field(ge=0)


class AtTime(Resource):
    time: Timestamp


class EventRef(Resource):
    position: int = Field(ge=1)
    recorded_at: Timestamp


class TalkAtMoment(Resource):
    """A talk as it was at a moment of the event store (what `talk events state` prints)."""

    at: AtPosition | AtTime
    last_event: EventRef | None = Field(description="the talk's last event at that moment")
    talk: Talk
    participants: list[Participant]
    messages: list[AuditedMessage] = Field(description="newest first, tombstones included")


class Actor(Resource):
    type: str | None
    id: str | None


class MessageEventVersion(Resource):
    """One event of a message's stream and the message as it stood after it."""

    version: int = Field(ge=1)
    position: int = Field(ge=1)
    event_id: UUID
    event_type: str
    actor: Actor
    request_id: str | None
    recorded_at: Timestamp
    change: dict[str, Any] = Field(description="the event's data")
    message: AuditedMessage | None
    deleted: bool


class AuditedMessageHistory(Resource):
    """Every event of a message's stream, oldest first, from the event store."""

    message_id: UUID
    chat_id: UUID
    result: list[MessageEventVersion] = Field(description="oldest first")


class FieldProblem(Resource):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details (`application/problem+json`). `type` names the rule
    refused (`https://talk.dev/problems/<slug>`); each operation lists the ones it answers."""

    type: str
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    request_id: str
    errors: list[FieldProblem] = Field(default_factory=list,
                                       description="field problems, when there are any")


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Talk, Participant, Message, TalkList, ParticipantList, MessageList, MessageHistory, TalkAtMoment,
    AuditedMessageHistory, Problem)
Talk.model_rebuild()
