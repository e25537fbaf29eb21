"""Creating a 1:1 talk: a ``normal`` talk with exactly one other agent reuses the pair's
active 1:1 talk instead of creating another.

The pair's talks have deterministic ids, ``uuid5(customer, a, b, n)`` for n = 0, 1, 2, ...
(``a`` < ``b``): the decision walks them in order, answers the first that is active (not
closed, not deleted) and still holds exactly the pair, and otherwise creates the first free
one. Two creations racing both try to create the same stream at version 0: the store lets one
through and the other is decided again, finds the new talk and answers it. So the race is
decided by the talk's own stream, never by a read of the read tables.
"""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID, uuid5

from command_api.domain import ChatState, decide_chat
from command_api.domain.commands import CreateChat
from command_api.execution import Decision, group_appends, load_chat
from events.catalogue import chat_stream
from events.store import EventStore

PAIR_NAMESPACE = UUID("5b0c1f4e-7a0e-4c55-9d6e-1a1c0f7e0a11")
MAX_PAIR_TALKS = 10_000


def pair_of(cmd: CreateChat) -> tuple[UUID, UUID] | None:
    """The (sorted) pair if ``cmd`` creates a normal talk with exactly one other agent."""
    if cmd.type != "normal":
        return None
    others = {p.owner_id for p in cmd.participants if p.owner_id != cmd.actor_id}
    if len(others) != 1 or any(p.owner_type != "agent" for p in cmd.participants):
        return None
    a, b = sorted((cmd.actor_id, others.pop()), key=str)
    return a, b


def pair_chat_id(customer_id: UUID, pair: tuple[UUID, UUID], n: int) -> UUID:
    return uuid5(PAIR_NAMESPACE, f"{customer_id}:{pair[0]}:{pair[1]}:{n}")


def reusable(state: ChatState, customer_id: UUID, pair: tuple[UUID, UUID]) -> bool:
    return (state.exists and state.customer_id == customer_id and state.type == "normal"
            and not state.deleted and not state.closed
            and set(state.owner_ids) == set(pair))


async def decide_create(store: EventStore, cmd: CreateChat) -> Decision:
    """A plain creation, or for a pair: the pair's active talk (nothing appended) or a new one."""
    pair = pair_of(cmd)
    if pair is None:
        state, prior, head = await load_chat(store, cmd.chat_id)
        events = decide_chat(state, cmd)
        return Decision(group_appends(events, {chat_stream(cmd.chat_id): state.version}),
                        events, prior, head, state, cmd.customer_id)
    for n in range(MAX_PAIR_TALKS):
        chat_id = pair_chat_id(cmd.customer_id, pair, n)
        state, prior, head = await load_chat(store, chat_id)
        if state.exists:
            if reusable(state, cmd.customer_id, pair):
                return Decision([], [], prior, head, state, cmd.customer_id)
            continue
        new = replace(cmd, chat_id=chat_id)
        events = decide_chat(state, new)
        return Decision(group_appends(events, {}), events, prior, head, state, cmd.customer_id)
    raise RuntimeError("too many talks of one pair")
