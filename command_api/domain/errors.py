"""Typed domain errors. Each maps to one HTTP status; ``detail`` is the human text."""

from __future__ import annotations

from typing import ClassVar

FieldError = dict[str, str]  # {"field": "medias[0].url", "message": "..."}


class DomainError(Exception):
    """A command the domain refuses. Nothing is recorded when one is raised."""

    status: ClassVar[int] = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors: list[FieldError] = []


class NotFound(DomainError):
    """The talk or message does not exist, or belongs to another customer (404)."""

    status = 404


class Forbidden(DomainError):
    """The caller may not do this: not a participant, not the author (403)."""

    status = 403


class Conflict(DomainError):
    """The state forbids it: talk deleted, already a participant, normal talk full (409)."""

    status = 409


class Invalid(DomainError):
    """The command's input is malformed (400); ``errors`` lists the field problems."""

    status = 400

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.errors = list(errors or [])

    @classmethod
    def field(cls, field: str, message: str) -> Invalid:
        return cls(f"{field}: {message}", [{"field": field, "message": message}])
