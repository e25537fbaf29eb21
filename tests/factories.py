"""Building events and appends for tests."""

from __future__ import annotations

from uuid import UUID, uuid4

from events.catalogue import ChatCreated, ChatUpdated, chat_stream
from events.envelope import Metadata, NewEvent
from events.store import StreamAppend
from services.timefmt import utcnow


def metadata(customer_id: UUID | None = None, actor_id: UUID | None = None) -> Metadata:
    return Metadata(customer_id=customer_id or uuid4(), actor_type="agent",
                    actor_id=actor_id or uuid4(), request_id=uuid4().hex)


def chat_created(chat_id: UUID | None = None, customer_id: UUID | None = None,
                 name: str = "talk") -> ChatCreated:
    return ChatCreated(chat_id=chat_id or uuid4(), customer_id=customer_id or uuid4(),
                       type="group", name=name, detail="", tm_create=utcnow())


def new_chat_append(chat_id: UUID | None = None, customer_id: UUID | None = None) -> tuple[StreamAppend, Metadata]:
    """A one-event transaction creating a talk; returns the append and matching metadata."""
    customer_id = customer_id or uuid4()
    event = chat_created(chat_id, customer_id)
    stream = chat_stream(event.chat_id)
    return StreamAppend(stream, 0, (NewEvent(stream, event),)), metadata(customer_id)


def rename(chat_id: UUID, version: int, name: str) -> StreamAppend:
    stream = chat_stream(chat_id)
    event = ChatUpdated(chat_id=chat_id, name=name, tm_update=utcnow())
    return StreamAppend(stream, version, (NewEvent(stream, event),))
