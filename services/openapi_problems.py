"""Which problem types each operation of the OpenAPI document answers, per status.

Every problem answer's ``type`` is ``https://talk.dev/problems/<slug>``: the domain's rules
(``command_api/domain/errors.py`` ``PROBLEM_TYPES``) and, around them, the HTTP layer's
generic ones (the status's title: ``bad-request``, ``not-found`` ...) and a few named ones
(``idempotency-key-reused``, ``service-unavailable``, ``commit-outcome-unknown``).

For 403, 404, 409 and 422, whose types the domain and the query API own, the document says
exactly which ones an operation may answer (an ``enum`` on ``type``, so a fuzzer checking
the answers against the document catches a type it does not list). For the other statuses
the types are listed in the description: they come from layers (headers, bodies, outages)
that every operation shares.
"""

from __future__ import annotations

from command_api.domain.errors import PROBLEM_TYPES
from command_api.http import KEY_REUSED
from services.http.problems import generic_slug, problem_type_url
from services.http.unavailable import OUTCOME_UNKNOWN_TYPE, UNAVAILABLE_TYPE

STRICT_STATUSES = (403, 404, 409, 422)

# Besides the domain's: what the HTTP layer answers on any operation.
SHARED: dict[int, tuple[str, ...]] = {
    400: (generic_slug(400),),
    401: (generic_slug(401),),
    403: (generic_slug(403),),
    404: (generic_slug(404),),  # a malformed id in the path
    409: (generic_slug(409),),
    413: (generic_slug(413),),
    415: (generic_slug(415),),
    422: (KEY_REUSED,),
    503: (UNAVAILABLE_TYPE, OUTCOME_UNKNOWN_TYPE),
}

_TALK = ("talk-not-found",)
_MEMBER = ("not-a-participant",)
_AUTHOR = ("not-the-author",)
_INPUT = ("invalid-input",)
_WRITE = ("talk-deleted", "concurrent-change")
_OPEN = ("talk-closed",)
_MESSAGE = ("message-not-found",)

# operationId -> status -> the domain's (and query API's) types it may answer. An operation
# not listed here may answer any type of the statuses it documents.
BY_OPERATION: dict[str, dict[int, tuple[str, ...]]] = {
    "createChat": {400: _INPUT, 409: ("talk-full", "too-many-members", "talk-exists",
                                      "concurrent-change")},
    "updateChat": {400: _INPUT, 403: _MEMBER, 404: _TALK, 409: _WRITE},
    "deleteChat": {403: _MEMBER, 404: _TALK, 409: _WRITE},
    "addParticipant": {400: _INPUT, 403: _MEMBER, 404: _TALK,
                       409: (*_WRITE, *_OPEN, "already-participant", "talk-full",
                             "too-many-members")},
    "removeParticipant": {403: _MEMBER, 404: (*_TALK, "participant-not-found"), 409: _WRITE},
    "postMessage": {400: _INPUT, 403: _MEMBER, 404: (*_TALK, "parent-not-found"),
                    409: (*_WRITE, *_OPEN, "message-exists")},
    "editMessage": {400: _INPUT, 403: _AUTHOR, 404: _MESSAGE,
                    409: (*_WRITE, *_OPEN, "message-deleted", "text-required")},
    "deleteMessage": {403: _AUTHOR, 404: _MESSAGE, 409: _WRITE},
    "addReaction": {400: _INPUT, 403: _MEMBER, 404: _MESSAGE,
                    409: (*_WRITE, *_OPEN, "message-deleted", "too-many-reactions",
                          "too-many-reactions-by-agent")},
    "removeReaction": {400: _INPUT, 403: _MEMBER, 404: _MESSAGE,
                       409: (*_WRITE, *_OPEN, "message-deleted")},
    "closeChat": {403: _MEMBER, 404: _TALK, 409: _WRITE},
    "reopenChat": {403: _MEMBER, 404: _TALK, 409: _WRITE},
    "markChatRead": {400: _INPUT, 403: _MEMBER, 404: (*_TALK, *_MESSAGE),
                     409: ("concurrent-change",)},
    # reads (query_api/access.py, messages.py)
    "listChats": {},
    "getChat": {403: _MEMBER, 404: _TALK},
    "listParticipants": {403: _MEMBER, 404: _TALK},
    "listMessages": {403: _MEMBER, 404: (*_TALK, *_MESSAGE)},
    "getMessage": {403: _MEMBER, 404: (*_TALK, *_MESSAGE)},
    "getMessageHistory": {403: _MEMBER, 404: (*_TALK, *_MESSAGE)},
    # audit (query_api/audit.py)
    "getTalkAt": {403: ("not-an-auditor",), 404: _TALK},
    "getMessageEvents": {403: ("not-an-auditor",), 404: _MESSAGE},
}
# The overview page's short forms answer as their long forms do.
for short, long in (("createTalk", "createChat"), ("addTalkParticipant", "addParticipant"),
                    ("removeTalkParticipant", "removeParticipant"),
                    ("postTalkMessage", "postMessage"), ("listTalkMessages", "listMessages"),
                    ("addMessageReaction", "addReaction")):
    BY_OPERATION[short] = BY_OPERATION[long]

# Types the query API answers (not the domain's): listed so that an unknown operation's
# reads are covered too.
QUERY_TYPES: dict[int, tuple[str, ...]] = {403: (*_MEMBER, "not-an-auditor"),
                                           404: (*_TALK, *_MESSAGE)}


def problem_types(operation_id: str | None, status: int) -> list[str]:
    """The slugs ``operation_id`` may answer with ``status``, in a stable order."""
    own = BY_OPERATION.get(operation_id or "")
    if own is not None:
        specific = own.get(status, ())
    else:
        specific = tuple(p.slug for p in PROBLEM_TYPES.values() if p.status == status)
        specific += QUERY_TYPES.get(status, ())
    return sorted(set(SHARED.get(status, ())) | set(specific))


def meaning(slug: str) -> str:
    known = PROBLEM_TYPES.get(slug)
    return known.meaning if known is not None else ""


def type_schema(operation_id: str | None, status: int) -> dict | None:
    """The ``type`` property's schema for a strict status, else None."""
    if status not in STRICT_STATUSES:
        return None
    return {"type": "string",
            "enum": [problem_type_url(slug) for slug in problem_types(operation_id, status)]}


def describe(operation_id: str | None, status: int, title: str) -> str:
    """The response's description: its title and the types it may carry."""
    slugs = problem_types(operation_id, status)
    if not slugs:
        return title
    items = "; ".join(f"`{s}`" + (f" ({meaning(s)})" if meaning(s) else "") for s in slugs)
    return f"{title}. `type` (https://talk.dev/problems/...): {items}"
