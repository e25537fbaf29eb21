"""Request bodies of the command API. Types are checked here; the domain checks meaning."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


def _none_if_empty(value: Any) -> Any:
    return None if value == "" else value


class ParticipantRef(Body):
    owner_type: str = "agent"
    owner_id: UUID


class CreateChatRequest(Body):
    type: str = Field(description="normal or group")
    name: str = ""
    detail: str = ""
    participants: list[ParticipantRef] = Field(default_factory=list, max_length=1000)


class UpdateChatRequest(Body):
    name: str | None = None
    detail: str | None = None


class AddParticipantRequest(Body):
    owner_type: str = "agent"
    owner_id: UUID


class MediaRequest(Body):
    type: str
    url: str
    name: str = ""


class PostMessageRequest(Body):
    chat_id: UUID
    type: str = "normal"
    text: str = ""
    parent_id: UUID | None = None
    medias: list[MediaRequest] = Field(default_factory=list, max_length=100)

    _parent = field_validator("parent_id", mode="before")(classmethod(lambda cls, v: _none_if_empty(v)))


class EditMessageRequest(Body):
    text: str


class ReactionRequest(Body):
    emoji: str


class MarkReadRequest(Body):
    message_id: UUID | None = None

    _message = field_validator("message_id", mode="before")(classmethod(lambda cls, v: _none_if_empty(v)))


# --- the overview page's short forms -----------------------------------------------------


class CreateTalkRequest(Body):
    name: str = ""
    detail: str = ""
    type: str = "group"
    participant_ids: list[UUID] = Field(default_factory=list, max_length=1000)


class AddTalkParticipantRequest(Body):
    agent_id: UUID


class PostTalkMessageRequest(Body):
    type: str = "normal"
    text: str = ""
    parent_id: UUID | None = None
    medias: list[MediaRequest] = Field(default_factory=list, max_length=100)

    _parent = field_validator("parent_id", mode="before")(classmethod(lambda cls, v: _none_if_empty(v)))
