"""A synthetic but realistic event history for the replay benchmark, appended through the
event store (``talk_append_events``: stream versions and hash chain as in production).

Talks are spread over customers (100 talks each). Round 0 creates every talk with three
members (each join with its system message, as the command API writes them); every later
round adds about the same number of events to every talk: messages (some replies, some with
a media), edits, reactions and their removal, deletions, renames, and the occasional member
leaving or joining. Rounds interleave talks, so a message's later events land far from its
posting in the global order (as they do in a real store), and each append carries one
customer's events of one round (a few hundred to a thousand events per transaction).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from events import catalogue as ev
from events.envelope import Metadata, NewEvent
from events.postgres_store import append_on
from events.store import StreamAppend

TALKS_PER_CUSTOMER = 100
RECENT = 24  # messages per talk that later events may still edit, react to or delete
EMOJI = ("👍", "❤️", "😂", "🎉", "👀", "✅", "🙏", "🔥")
WORDS = ("order", "ticket", "refund", "customer", "shipping", "label", "warehouse", "call",
         "tomorrow", "today", "please", "thanks", "checked", "update", "invoice", "escalate",
         "priority", "status", "tracking", "account", "address", "return", "policy", "done")


@dataclass
class Message:
    id: UUID
    deleted: bool = False
    reactions: set[tuple[str, UUID]] = field(default_factory=set)


@dataclass
class Talk:
    id: UUID
    customer_id: UUID
    members: dict[UUID, UUID] = field(default_factory=dict)  # agent id -> participant id
    recent: list[Message] = field(default_factory=list)


class HistoryWriter:
    """Generates the history round by round and appends it, ``concurrency`` appends at a time
    (different customers within a round; rounds one after the other)."""

    def __init__(self, url: str, *, events: int, talks: int, seed: int = 6,
                 concurrency: int = 2) -> None:
        self.url = url
        self.target = events
        self.talks_n = talks
        self.rng = random.Random(seed)
        self.concurrency = concurrency
        self.clock = datetime(2024, 1, 1, tzinfo=UTC)
        self.written = 0
        self.generated = 0
        self._uuid_bits = self.rng.getrandbits
        self._versions: dict[str, int] = {}
        self._round_start: dict[str, int] = {}

    def uuid(self) -> UUID:
        return UUID(int=self._uuid_bits(128), version=4)

    def now(self) -> datetime:
        self.clock += timedelta(microseconds=self.rng.randint(1, 2000))
        return self.clock

    async def write(self, progress: Callable[[int], None] = lambda n: None) -> int:
        customers = [self.uuid() for _ in range(max(1, self.talks_n // TALKS_PER_CUSTOMER))]
        talks = [Talk(self.uuid(), customers[i % len(customers)]) for i in range(self.talks_n)]
        by_customer: dict[UUID, list[Talk]] = {}
        for talk in talks:
            by_customer.setdefault(talk.customer_id, []).append(talk)
        agents = {c: [self.uuid() for _ in range(20)] for c in customers}
        per_talk_round = 10
        conns = [await psycopg.AsyncConnection.connect(self.url, autocommit=True, row_factory=dict_row)
                 for _ in range(self.concurrency)]
        try:
            round_no = 0
            while self.generated < self.target:
                self._round_start = {}
                jobs = []
                for customer, group in by_customer.items():
                    if self.generated >= self.target:
                        break
                    batch: list[tuple[str, ev.Event]] = []
                    for talk in group:
                        if round_no == 0:
                            self._create(talk, agents[customer], batch)
                        else:
                            for _ in range(per_talk_round):
                                self._activity(talk, agents[customer], batch)
                    batch = batch[: self.target - self.generated]
                    self.generated += len(batch)
                    jobs.append((customer, agents[customer][0], batch))
                await self._append_round(conns, jobs, progress)
                round_no += 1
        finally:
            for conn in conns:
                await conn.close()
        return self.written

    async def _append_round(self, conns, jobs, progress) -> None:
        queue: asyncio.Queue = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)

        async def worker(conn) -> None:
            while not queue.empty():
                customer, actor, batch = queue.get_nowait()
                appends: dict[str, list[NewEvent]] = {}
                for stream, event in batch:
                    appends.setdefault(stream, []).append(NewEvent(stream, event))
                start = self._round_start  # each stream's version before this round
                result = await append_on(
                    conn, [StreamAppend(s, start[s], evs) for s, evs in appends.items()],
                    Metadata(customer, "agent", actor, request_id=self.uuid().hex),
                )
                self.written += len(result.positions)
                progress(len(result.positions))

        await asyncio.gather(*(worker(c) for c in conns))

    # --- what happens in a talk ------------------------------------------------------------

    def _emit(self, batch: list, stream: str, event: ev.Event) -> None:
        version = self._versions.get(stream, 0)
        self._round_start.setdefault(stream, version)
        self._versions[stream] = version + 1
        batch.append((stream, event))

    def _create(self, talk: Talk, agents: list[UUID], batch: list) -> None:
        stream = ev.chat_stream(talk.id)
        self._emit(batch, stream, ev.ChatCreated(
            chat_id=talk.id, customer_id=talk.customer_id, type="group",
            name=f"talk {talk.id.hex[:6]}", detail="", tm_create=self.now()))
        for agent in self.rng.sample(agents, 3):
            self._join(talk, agent, batch)

    def _join(self, talk: Talk, agent: UUID, batch: list) -> None:
        participant = self.uuid()
        talk.members[agent] = participant
        now = self.now()
        self._emit(batch, ev.chat_stream(talk.id), ev.ParticipantJoined(
            chat_id=talk.id, participant_id=participant, owner_type="agent", owner_id=agent,
            tm_joined=now))
        self._system_message(talk, agent, "joined", now, batch)

    def _leave(self, talk: Talk, agent: UUID, batch: list) -> None:
        participant = talk.members.pop(agent)
        now = self.now()
        self._emit(batch, ev.chat_stream(talk.id), ev.ParticipantLeft(
            chat_id=talk.id, participant_id=participant, owner_type="agent", owner_id=agent,
            tm_left=now))
        self._system_message(talk, agent, "left", now, batch)

    def _system_message(self, talk: Talk, agent: UUID, verb: str, now: datetime, batch) -> None:
        message = self.uuid()
        self._emit(batch, ev.message_stream(message), ev.MessagePosted(
            message_id=message, chat_id=talk.id, owner_type="system", owner_id=agent,
            type="system", text=f"{agent} {verb} the talk", tm_create=now))

    def _text(self) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(3, 30)))

    def _activity(self, talk: Talk, agents: list[UUID], batch: list) -> None:
        rng = self.rng
        r = rng.random()
        live = [m for m in talk.recent if not m.deleted]
        members = list(talk.members)
        if r < 0.66 or not live or not members:
            if not members:
                self._join(talk, rng.choice(agents), batch)
                return
            message = Message(self.uuid())
            parent = rng.choice(talk.recent).id if talk.recent and rng.random() < 0.1 else None
            medias = ((ev.Media(type="image/png", url=f"https://cdn.example.com/{message.id.hex}.png",
                                name="screenshot.png"),) if rng.random() < 0.05 else ())
            self._emit(batch, ev.message_stream(message.id), ev.MessagePosted(
                message_id=message.id, chat_id=talk.id, parent_id=parent, owner_type="agent",
                owner_id=rng.choice(members), type="normal", text=self._text(), medias=medias,
                tm_create=self.now()))
            talk.recent.append(message)
            if len(talk.recent) > RECENT:
                talk.recent.pop(0)
            return
        target = rng.choice(live)
        stream = ev.message_stream(target.id)
        if r < 0.74:
            self._emit(batch, stream, ev.MessageEdited(
                message_id=target.id, chat_id=talk.id, text=self._text(), tm_update=self.now()))
        elif r < 0.87:
            key = (rng.choice(EMOJI), rng.choice(members))
            if key in target.reactions:
                return self._activity(talk, agents, batch)
            target.reactions.add(key)
            self._emit(batch, stream, ev.ReactionAdded(
                message_id=target.id, chat_id=talk.id, emoji=key[0], owner_type="agent",
                owner_id=key[1], tm_create=self.now()))
        elif r < 0.90 and target.reactions:
            emoji, owner = target.reactions.pop()
            self._emit(batch, stream, ev.ReactionRemoved(
                message_id=target.id, chat_id=talk.id, emoji=emoji, owner_type="agent",
                owner_id=owner, tm_remove=self.now()))
        elif r < 0.93:
            target.deleted = True
            self._emit(batch, stream, ev.MessageDeleted(
                message_id=target.id, chat_id=talk.id, tm_delete=self.now()))
        elif r < 0.97:
            self._emit(batch, ev.chat_stream(talk.id), ev.ChatUpdated(
                chat_id=talk.id, name=f"talk {self.uuid().hex[:6]}", tm_update=self.now()))
        elif len(members) > 2 and rng.random() < 0.5:
            self._leave(talk, rng.choice(members), batch)
        else:
            outside = [a for a in agents if a not in talk.members]
            if outside:
                self._join(talk, rng.choice(outside), batch)
