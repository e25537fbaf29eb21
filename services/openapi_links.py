"""The links between operations of the OpenAPI document (OpenAPI 3.1 ``links``): from an
answer to the operations that use what it created, so that a stateful client or fuzzer can
walk the API (create a talk, then read it, list and add its participants, post into it;
post a message, then read, edit, react to, reply to and delete it).

Every link to a read carries the command's ``X-Talk-Position`` as ``X-Talk-Min-Position``:
the read then waits for the projection to apply the write (read-your-writes), so a resource
just created is never answered 404.
"""

from __future__ import annotations

from typing import Any

READ_YOUR_WRITE = {"header.X-Talk-Min-Position": "$response.header.X-Talk-Position"}

_TALK_ID = "$response.body#/id"


def _talk_links(chat_id: str) -> dict[str, dict[str, Any]]:
    """What a talk's answer leads to (``chat_id``: the expression of the talk's id)."""
    path = {"path.chat_id": chat_id}
    return {
        "GetTalk": {"operationId": "getChat", "parameters": {**path, **READ_YOUR_WRITE}},
        "ListParticipants": {"operationId": "listParticipants",
                             "parameters": {**path, **READ_YOUR_WRITE}},
        "ListMessages": {"operationId": "listMessages",
                         "parameters": {"query.chat_id": chat_id, **READ_YOUR_WRITE}},
        "AddParticipant": {"operationId": "addParticipant", "parameters": path},
        "PostMessage": {"operationId": "postMessage", "requestBody": {"chat_id": chat_id}},
        "PostTalkMessage": {"operationId": "postTalkMessage", "parameters": path},
        "UpdateTalk": {"operationId": "updateChat", "parameters": path},
        "DeleteTalk": {"operationId": "deleteChat", "parameters": path},
    }


def _message_links() -> dict[str, dict[str, Any]]:
    message = {"path.message_id": "$response.body#/id"}
    return {
        "GetMessage": {"operationId": "getMessage", "parameters": {**message, **READ_YOUR_WRITE}},
        "EditMessage": {"operationId": "editMessage", "parameters": message},
        "DeleteMessage": {"operationId": "deleteMessage", "parameters": message},
        "AddReaction": {"operationId": "addReaction", "parameters": message},
        "Reply": {"operationId": "postMessage",
                  "requestBody": {"chat_id": "$response.body#/chat_id",
                                  "parent_id": "$response.body#/id"}},
        "ListReplies": {"operationId": "listMessages",
                        "parameters": {"query.chat_id": "$response.body#/chat_id",
                                       "query.parent_id": "$response.body#/id",
                                       **READ_YOUR_WRITE}},
    }


def _participant_links() -> dict[str, dict[str, Any]]:
    return {
        "RemoveParticipant": {"operationId": "removeParticipant", "parameters": {
            "path.chat_id": "$response.body#/chat_id",
            "path.participant_id": "$response.body#/id"}},
        "GetTalk": {"operationId": "getChat", "parameters": {
            "path.chat_id": "$response.body#/chat_id", **READ_YOUR_WRITE}},
    }


# operationId -> the links of its 200 answer. A link naming an operation the document does
# not have is left out (build_document drops it), so this table may run ahead of the routes.
LINKS: dict[str, dict[str, dict[str, Any]]] = {
    "createChat": _talk_links(_TALK_ID),
    "createTalk": _talk_links(_TALK_ID),
    "addParticipant": _participant_links(),
    "addTalkParticipant": _participant_links(),
    "postMessage": _message_links(),
    "postTalkMessage": _message_links(),
    "addReaction": {
        "RemoveReaction": {"operationId": "removeReaction", "parameters": {
            "path.message_id": "$response.body#/id", "query.emoji": "$request.body#/emoji"}},
        "GetMessage": {"operationId": "getMessage", "parameters": {
            "path.message_id": "$response.body#/id", **READ_YOUR_WRITE}},
    },
}


def links_of(operation_id: str, known: set[str]) -> dict[str, dict[str, Any]]:
    """The links of ``operation_id``'s answer to operations in ``known``."""
    return {name: link for name, link in LINKS.get(operation_id, {}).items()
            if link["operationId"] in known}
