"""Typed domain errors. Each maps to one HTTP status and names the rule it enforces.

A refusal carries ``problem``: the slug of its problem type (the answer's ``type`` is
``https://talk.dev/problems/<slug>``), one per rule, so a client can tell "already a
participant" from "the talk is full" without reading ``detail`` (the human text).
:data:`PROBLEM_TYPES` is the catalogue of the domain's slugs, each with its one status and
what it means; the OpenAPI document lists them per operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

FieldError = dict[str, str]  # {"field": "medias[0].url", "message": "..."}


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One refusal rule: its slug, its HTTP status, and what it means (for the docs)."""

    slug: str
    status: int
    meaning: str


PROBLEM_TYPES: dict[str, ProblemType] = {p.slug: p for p in (
    ProblemType("talk-not-found", 404,
                "no such talk (or another customer's: existence does not leak)"),
    ProblemType("message-not-found", 404, "no such message (or another customer's)"),
    ProblemType("participant-not-found", 404, "no such participant in this talk"),
    ProblemType("parent-not-found", 404, "`parent_id` names no message of this talk"),
    ProblemType("not-a-participant", 403, "only participants of the talk may do this"),
    ProblemType("not-the-author", 403,
                "only the message's author, while a participant, may do this"),
    ProblemType("talk-deleted", 409, "the talk is deleted (soft delete: it still reads)"),
    ProblemType("talk-closed", 409, "the talk is closed: reopen it first"),
    ProblemType("message-deleted", 409, "the message is deleted"),
    ProblemType("text-required", 409,
                "the message has no attachments, so its new text may not be blank"),
    ProblemType("already-participant", 409, "the agent is already a participant of the talk"),
    ProblemType("talk-full", 409, "a normal talk holds at most 2 participants"),
    ProblemType("too-many-members", 409, "a talk holds at most 1,000 participants"),
    ProblemType("too-many-reactions", 409,
                "a message carries at most 50 different emoji"),
    ProblemType("too-many-reactions-by-agent", 409,
                "one agent adds at most 20 different emoji to one message"),
    ProblemType("talk-exists", 409, "a talk with this id already exists"),
    ProblemType("message-exists", 409, "a message with this id already exists"),
    ProblemType("concurrent-change", 409,
                "others kept changing the resource while this command was decided; retry"),
    ProblemType("conflict", 409, "the state of the talk or message forbids it"),
    ProblemType("invalid-input", 400, "a field is malformed; `errors` lists the fields"),
)}


class DomainError(Exception):
    """A command the domain refuses. Nothing is recorded when one is raised."""

    status: ClassVar[int] = 400
    default_problem: ClassVar[str] = "invalid-input"

    def __init__(self, detail: str, problem: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problem = problem or self.default_problem
        self.errors: list[FieldError] = []
        known = PROBLEM_TYPES.get(self.problem)
        if known is None or known.status != self.status:
            raise ValueError(f"{self.problem!r} is not a {self.status} problem type")


class NotFound(DomainError):
    """The talk or message does not exist, or belongs to another customer (404)."""

    status = 404
    default_problem = "talk-not-found"


class Forbidden(DomainError):
    """The caller may not do this: not a participant, not the author (403)."""

    status = 403
    default_problem = "not-a-participant"


class Conflict(DomainError):
    """The state forbids it: talk deleted, already a participant, talk full (409)."""

    status = 409
    default_problem = "conflict"


class Invalid(DomainError):
    """The command's input is malformed (400); ``errors`` lists the field problems."""

    status = 400

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.errors = list(errors or [])

    @classmethod
    def field(cls, field: str, message: str) -> Invalid:
        return cls(f"{field}: {message}", [{"field": field, "message": message}])
