"""What creating a talk with N members costs (issue 12, "Amplification"): events appended,
bytes stored (the events' ``data`` and ``metadata`` as JSON) and bytes published (the
outbox bodies, audience included), for N = 10, 100 and 1,000.

    python -m bench.creation [--members 10 100 1000]

Pure and in memory, on the code paths the services run: ``decide_chat`` on a ``CreateChat``
(the handler's command), then the outbox fold (``projector.outbox.outbox_rows``) over the
decided events as one stored transaction, each body serialised as the outbox stores it.
The baseline in the same run is N = 10: bytes per member should stay flat as N grows
(O(N) in all); a per-member cost growing with N is an amplification. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, datetime
from uuid import uuid4

import orjson

from command_api.domain.chat import decide_chat
from command_api.domain.commands import CreateChat, NewParticipant
from events.catalogue import chat_stream, message_stream
from events.envelope import Metadata, NewEvent, StoredEvent
from projector.outbox import ReadState, outbox_rows

NOW = datetime(2026, 1, 1, tzinfo=UTC)
_NEW_PARTICIPANT_FIELDS = {f.name for f in dataclasses.fields(NewParticipant)}


def _member(owner_id) -> NewParticipant:
    ids = {"participant_id": uuid4()}
    if "system_message_id" in _NEW_PARTICIPANT_FIELDS:  # the field before issue 12
        ids["system_message_id"] = uuid4()
    return NewParticipant(owner_type="agent", owner_id=owner_id, **ids)


def creation(members: int) -> CreateChat:
    """A group talk created by one agent with ``members - 1`` others."""
    return CreateChat(customer_id=uuid4(), actor_id=uuid4(), now=NOW, chat_id=uuid4(),
                      type="group", name="bench", creator_participant_id=uuid4(),
                      creator_system_message_id=uuid4(),
                      participants=tuple(_member(uuid4()) for _ in range(members - 1)))


def stored(cmd: CreateChat) -> list[StoredEvent]:
    """The decided events as the store would hand them to the projector (one transaction)."""
    metadata = Metadata(customer_id=cmd.customer_id, actor_type="agent", actor_id=cmd.actor_id,
                        request_id="bench", correlation_id="bench").to_json()
    versions: dict[str, int] = {}
    out = []
    for position, event in enumerate(decide_chat_events(cmd), start=1):
        stream = (message_stream(event.message_id) if hasattr(event, "message_id")
                  else chat_stream(event.chat_id))
        versions[stream] = versions.get(stream, 0) + 1
        new = NewEvent(stream, event)
        out.append(StoredEvent(position=position, tx_id=1, event_id=new.event_id,
                               stream_id=stream, version=versions[stream], type=new.type,
                               schema_version=new.schema_version, data=new.data_json(),
                               metadata=metadata, recorded_at=NOW))
    return out


def decide_chat_events(cmd: CreateChat):
    from command_api.domain.chat import ChatState
    return decide_chat(ChatState(), cmd)


def measure(members: int) -> dict[str, int]:
    events = stored(creation(members))
    rows = outbox_rows(events, [e.decode() for e in events], ReadState())
    bodies = [len(orjson.dumps(r.body)) for r in rows]
    return {
        "members": members,
        "events": len(events),
        "stored_bytes": sum(len(orjson.dumps(e.data)) + len(orjson.dumps(e.metadata))
                            for e in events),
        "published_bytes": sum(bodies),
        "largest_body": max(bodies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[10, 100, 1000])
    args = parser.parse_args()
    print(f"{'members':>8} {'events':>7} {'stored':>12} {'published':>13} {'largest body':>13}"
          f" {'stored/member':>14} {'published/member':>17}")
    for n in args.members:
        m = measure(n)
        print(f"{n:>8} {m['events']:>7} {m['stored_bytes']:>12,} {m['published_bytes']:>13,}"
              f" {m['largest_body']:>13,} {m['stored_bytes'] // n:>14,}"
              f" {m['published_bytes'] // n:>17,}")


if __name__ == "__main__":
    main()
