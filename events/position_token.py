"""``X-Talk-Position``: where an event stands in the global order, as one string that
compares in that order.

The projection applies events in the order ``(tx_id, position)`` (DESIGN "Ordering"), not
by ``position``: a transaction that drew a lower position can commit after one that drew a
higher, and is then applied after it. So two positions do not say which of two writes the
projection reaches last. A token does: it is ``tx_id`` in 20 digits followed by
``position`` in 19 digits (xid8 and bigint fit), 39 decimal digits, zero-padded. Two tokens
compare as strings, and as integers, exactly as ``(tx_id, position)`` does; the greatest of
the tokens a client holds is the last of its writes the projection will apply, and a read
that waits for it has all of them.

The old form, a bare ``position`` (any value below ``10**19``), still parses: it means "the
event at this position", which the reader looks up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from events.envelope import Checkpoint

TX_DIGITS = 20
POSITION_DIGITS = 19
TOKEN_DIGITS = TX_DIGITS + POSITION_DIGITS
SCALE = 10**POSITION_DIGITS
MAX_TX_ID = 2**64 - 1  # xid8
MAX_POSITION = 2**63 - 1  # bigint
PATTERN = f"[0-9]{{1,{TOKEN_DIGITS}}}"
_FORM = re.compile(PATTERN)


@dataclass(frozen=True, slots=True)
class BarePosition:
    """The old form: the event at ``position`` (its place in the order is looked up)."""

    position: int


def format_position(at: Checkpoint) -> str:
    """The token of a place in the global order (39 digits)."""
    return f"{at.tx_id:0{TX_DIGITS}d}{at.position:0{POSITION_DIGITS}d}"


def parse_position(text: str) -> Checkpoint | BarePosition:
    """A token, or a bare position (below ``10**19``); ValueError if it is neither.

    The values are not bounded here: a tx_id above ``MAX_TX_ID`` or a position above
    ``MAX_POSITION`` parses, and is beyond any store's head (see :func:`impossible`)."""
    text = text.strip()
    if not _FORM.fullmatch(text):
        raise ValueError(f"not a position: at most {TOKEN_DIGITS} digits 0-9")
    value = int(text)
    if value < SCALE:
        return BarePosition(value)
    tx_id, position = divmod(value, SCALE)
    return Checkpoint(tx_id, position)


def impossible(at: Checkpoint | BarePosition) -> bool:
    """Whether no event can ever stand there (past the largest xid8 or bigint)."""
    if isinstance(at, BarePosition):
        return at.position > MAX_POSITION
    return at.tx_id > MAX_TX_ID or at.position > MAX_POSITION
