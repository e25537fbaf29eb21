"""Read-table rows as the API's resources (exact field names of DESIGN)."""

from __future__ import annotations

from typing import Any

from events import catalogue as ev
from services.timefmt import format_ts


def chat_resource(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "customer_id": str(row["customer_id"]),
        "type": row["type"],
        "name": row["name"],
        "detail": row["detail"],
        "member_count": row["member_count"],
        "status": row.get("status") or "active",
        "tm_create": format_ts(row["tm_create"]),
        "tm_update": format_ts(row["tm_update"]),
        "tm_delete": format_ts(row["tm_delete"]),
    }


def participant_resource(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "customer_id": str(row["customer_id"]),
        "owner_type": row["owner_type"],
        "owner_id": str(row["owner_id"]),
        "chat_id": str(row["chat_id"]),
        "tm_joined": format_ts(row["tm_joined"]),
        "last_read_message_id": _id_or_empty(row.get("last_read_message_id")),
        "tm_read": format_ts(row.get("tm_read")),
    }


def _id_or_empty(value: Any) -> str:
    return str(value) if value else ""


def message_resource(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "customer_id": str(row["customer_id"]),
        "owner_type": row["owner_type"],
        "owner_id": str(row["owner_id"]),
        "chat_id": str(row["chat_id"]),
        "parent_id": str(row["parent_id"]) if row["parent_id"] else "",
        "type": row["type"],
        "text": row["text"],
        "medias": row["medias"],
        "metadata": {"reactions": row["reactions"]},
        "mentions": list(row.get("mentions") or []),
        "reply_count": row.get("reply_count") or 0,
        "tm_last_reply": format_ts(row.get("tm_last_reply")),
        "tm_create": format_ts(row["tm_create"]),
        "tm_update": format_ts(row["tm_update"]),
        "tm_delete": format_ts(row["tm_delete"]),
    }


# --- Pure folds: the read rows an event leads to -------------------------------------------
#
# The same rows the projector writes with SQL, computed in memory. The command API uses them
# to answer a command with the resource as it stands after it, the publisher to attach that
# resource to each published event; a test holds them equal to the projector's tables.


def evolve_chat_row(row: dict[str, Any] | None, event: Any, customer_id: Any) -> dict[str, Any] | None:
    if isinstance(event, ev.ChatCreated):
        return {"id": event.chat_id, "customer_id": event.customer_id, "type": event.type,
                "name": event.name, "detail": event.detail, "member_count": 0,
                "tm_create": event.tm_create, "tm_update": event.tm_create, "tm_delete": None,
                "status": "active", "message_seq": 0, "normal_count": 0,
                "last_message_id": None, "tm_last_message": None}
    if row is None:
        return None
    row = dict(row)
    if isinstance(event, ev.ChatUpdated):
        if event.name is not None:
            row["name"] = event.name
        if event.detail is not None:
            row["detail"] = event.detail
        row["tm_update"] = event.tm_update
    elif isinstance(event, ev.ChatDeleted):
        row["tm_delete"] = event.tm_delete
        row["tm_update"] = event.tm_delete
    elif isinstance(event, ev.ParticipantJoined):
        row["member_count"] += 1
        row["tm_update"] = event.tm_joined
    elif isinstance(event, ev.ParticipantLeft):
        row["member_count"] -= 1
        row["tm_update"] = event.tm_left
    elif isinstance(event, ev.ChatClosed):
        row["status"] = "closed"
        row["tm_update"] = event.tm_close
    elif isinstance(event, ev.ChatReopened):
        row["status"] = "active"
        row["tm_update"] = event.tm_reopen
    elif isinstance(event, ev.MessagePosted):  # the talk's counters (read state)
        row["message_seq"] += 1
        row["normal_count"] += event.type == "normal"
        row["last_message_id"] = event.message_id
        row["tm_last_message"] = event.tm_create
    return row


def participant_row(event: Any, customer_id: Any,
                    chat_row: dict[str, Any] | None = None) -> dict[str, Any]:
    """The participant row a ParticipantJoined creates (or a ParticipantLeft removes). Its
    read marker starts at the talk's newest message (``chat_row``: the talk when it joined):
    what was said before joining is not unread; ``last_read_message_id`` and ``tm_read``
    stay unset until a read or a post."""
    return {"id": event.participant_id, "customer_id": customer_id, "chat_id": event.chat_id,
            "owner_type": event.owner_type, "owner_id": event.owner_id,
            "tm_joined": getattr(event, "tm_joined", None),
            "read_seq": chat_row["message_seq"] if chat_row else 0,
            "read_n": chat_row["normal_count"] if chat_row else 0,
            "last_read_message_id": None, "tm_read": None}


def evolve_message_row(row: dict[str, Any] | None, event: Any, customer_id: Any) -> dict[str, Any] | None:
    if isinstance(event, ev.MessagePosted):
        return {"id": event.message_id, "customer_id": customer_id, "chat_id": event.chat_id,
                "parent_id": event.parent_id, "owner_type": event.owner_type,
                "owner_id": event.owner_id, "type": event.type, "text": event.text,
                "medias": [m.model_dump(mode="json") for m in event.medias], "reactions": [],
                "tm_create": event.tm_create, "tm_update": event.tm_create, "tm_delete": None,
                "seq": 0, "n": 0, "mentions": [str(a) for a in event.mentions],
                "reply_count": 0, "tm_last_reply": None}
    if row is None:
        return None
    row = dict(row)
    if isinstance(event, ev.MessageEdited):
        row["text"] = event.text
        row["tm_update"] = event.tm_update
        row["mentions"] = [str(a) for a in event.mentions]
    elif isinstance(event, ev.MessageDeleted):
        row.update(text="", medias=[], mentions=[], tm_delete=event.tm_delete,
                   tm_update=event.tm_delete)
    elif isinstance(event, ev.ReactionAdded):
        row["reactions"] = [*row["reactions"], {
            "emoji": event.emoji, "owner_type": event.owner_type, "owner_id": str(event.owner_id),
            "tm_create": format_ts(event.tm_create)}]
        row["tm_update"] = event.tm_create
    elif isinstance(event, ev.ReactionRemoved):
        row["reactions"] = [r for r in row["reactions"]
                            if not (r["emoji"] == event.emoji and r["owner_id"] == str(event.owner_id))]
        row["tm_update"] = event.tm_remove
    return row


def evolve_parent_row(row: dict[str, Any] | None, reply: Any) -> dict[str, Any] | None:
    """The parent's row once ``reply`` (a MessagePosted with ``parent_id``) is posted: one
    more direct reply, and the newest reply's time (a reply does not change the parent's
    ``tm_update``)."""
    if row is None:
        return None
    last = row.get("tm_last_reply")
    return {**row, "reply_count": (row.get("reply_count") or 0) + 1,
            "tm_last_reply": reply.tm_create if last is None else max(last, reply.tm_create)}
