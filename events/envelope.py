"""The envelope: what the store records around each event's data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from events.catalogue import Event
from events.ids import time_ordered_uuid
from events.upcasting import UPCASTERS, Upcasters


@dataclass(frozen=True, slots=True)
class Metadata:
    """Who caused an event and why. Stored as JSON beside the data."""

    customer_id: UUID
    actor_type: str  # "agent" | "system"
    actor_id: UUID | None
    request_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": str(self.customer_id),
            "actor": {"type": self.actor_type, "id": str(self.actor_id) if self.actor_id else None},
            "request_id": self.request_id,
            "correlation_id": self.correlation_id or self.request_id,
            "causation_id": self.causation_id,
        }


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended to ``stream_id``."""

    stream_id: str
    event: Event
    event_id: UUID = field(default_factory=time_ordered_uuid)

    @property
    def type(self) -> str:
        return self.event.event_type

    @property
    def schema_version(self) -> int:
        return self.event.schema_version

    def data_json(self) -> dict[str, Any]:
        return self.event.model_dump(mode="json")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the store, payload still as stored."""

    position: int
    tx_id: int
    event_id: UUID
    stream_id: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.tx_id, self.position)

    @property
    def customer_id(self) -> UUID:
        return UUID(self.metadata["customer_id"])

    def decode(self, upcasters: Upcasters = UPCASTERS) -> Event:
        """The payload upcast to the current schema and parsed into its catalogue model."""
        return upcasters.decode(self.type, self.schema_version, self.data)


@dataclass(frozen=True, slots=True, order=True)
class Checkpoint:
    """A place in the global order: ``(tx_id, position)`` of the last event read."""

    tx_id: int = 0
    position: int = 0

    def __str__(self) -> str:
        return f"{self.tx_id}:{self.position}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        tx, _, pos = text.partition(":")
        return cls(int(tx), int(pos))


START = Checkpoint(0, 0)
