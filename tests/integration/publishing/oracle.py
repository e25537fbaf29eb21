"""The resources as DESIGN describes them, folded from the events' own payloads on the test's
side: no function of the service (not the query API's row folds or formatters the outbox
uses) goes into the expected ``data``, so a mistake there cannot hide in both.

Only the fields of DESIGN's resource lists (and the talk's ``status``) are held here; the
fields that depend on the reader or on read state are checked against the query API's own
answer instead (``expected.assert_latest_as_the_api_answers``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # DESIGN: UTC, "YYYY-MM-DD HH:MM:SS.ffffff"; unset: ""


def ts(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime(TS_FORMAT) if value is not None else ""


class Oracle:
    """Feed it a customer's events in the store's order; :meth:`data` answers the resource an
    event's published ``data`` must show (the fields held here)."""

    def __init__(self, customer_id: UUID) -> None:
        self.customer = str(customer_id)
        self.talks: dict[str, dict[str, Any]] = {}
        self.members: dict[str, dict[str, dict[str, Any]]] = {}  # talk -> participant id -> it
        self.messages: dict[str, dict[str, Any]] = {}

    def data(self, event_type: str, e: Any) -> dict[str, Any]:
        chat = str(e.chat_id)
        talk = self.talks.get(chat)
        members = self.members.setdefault(chat, {})
        if event_type == "ChatCreated":
            self.talks[chat] = {
                "id": chat, "customer_id": self.customer, "type": e.type, "name": e.name,
                "detail": e.detail, "member_count": 0, "status": "active",
                "tm_create": ts(e.tm_create), "tm_update": ts(e.tm_create), "tm_delete": ""}
            return dict(self.talks[chat])
        if event_type == "ChatUpdated":
            talk.update({k: v for k, v in (("name", e.name), ("detail", e.detail)) if v is not None})
            talk["tm_update"] = ts(e.tm_update)
            return dict(talk)
        if event_type == "ChatDeleted":
            talk.update(tm_delete=ts(e.tm_delete), tm_update=ts(e.tm_delete))
            return dict(talk)
        if event_type == "ChatClosed":
            talk.update(status="closed", tm_update=ts(e.tm_close))
            return dict(talk)
        if event_type == "ChatReopened":
            talk.update(status="active", tm_update=ts(e.tm_reopen))
            return dict(talk)
        if event_type == "ParticipantJoined":
            talk.update(member_count=talk["member_count"] + 1, tm_update=ts(e.tm_joined))
            members[str(e.participant_id)] = {
                "id": str(e.participant_id), "customer_id": self.customer,
                "owner_type": e.owner_type, "owner_id": str(e.owner_id), "chat_id": chat,
                "tm_joined": ts(e.tm_joined)}
            return dict(members[str(e.participant_id)])
        if event_type == "ParticipantLeft":
            talk.update(member_count=talk["member_count"] - 1, tm_update=ts(e.tm_left))
            return members.pop(str(e.participant_id))
        if event_type == "ChatRead":  # the reader's marker, at the message read
            return {**members[str(e.participant_id)],
                    "last_read_message_id": str(e.message_id), "tm_read": ts(e.tm_read)}
        return self._message(event_type, e)

    def _message(self, event_type: str, e: Any) -> dict[str, Any]:
        mid = str(e.message_id)
        if event_type == "MessagePosted":
            self.messages[mid] = {
                "id": mid, "customer_id": self.customer, "owner_type": e.owner_type,
                "owner_id": str(e.owner_id), "chat_id": str(e.chat_id),
                "parent_id": str(e.parent_id) if e.parent_id else "", "type": e.type,
                "text": e.text,
                "medias": [{"type": m.type, "url": m.url, "name": m.name} for m in e.medias],
                "metadata": {"reactions": []},
                "tm_create": ts(e.tm_create), "tm_update": ts(e.tm_create), "tm_delete": ""}
            return _copy(self.messages[mid])
        message = self.messages[mid]
        reactions = message["metadata"]["reactions"]
        if event_type == "MessageEdited":
            message.update(text=e.text, tm_update=ts(e.tm_update))
        elif event_type == "MessageDeleted":
            message.update(text="", medias=[], tm_delete=ts(e.tm_delete), tm_update=ts(e.tm_delete))
        elif event_type == "ReactionAdded":
            reactions.append({"emoji": e.emoji, "owner_type": e.owner_type,
                              "owner_id": str(e.owner_id), "tm_create": ts(e.tm_create)})
            message["tm_update"] = ts(e.tm_create)
        elif event_type == "ReactionRemoved":
            reactions[:] = [r for r in reactions
                            if not (r["emoji"] == e.emoji and r["owner_id"] == str(e.owner_id))]
            message["tm_update"] = ts(e.tm_remove)
        else:
            raise AssertionError(f"the test oracle knows no {event_type}: add it to {__name__}")
        return _copy(message)


def _copy(message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "medias": list(message["medias"]),
            "metadata": {"reactions": list(message["metadata"]["reactions"])}}
