"""X-Talk-Position tokens compare, as strings and as integers, exactly as ``(tx_id, position)``
does; the old bare position still parses; values past xid8 or bigint are impossible."""

from __future__ import annotations

import random

import pytest

from events.envelope import Checkpoint
from events.position_token import (
    MAX_POSITION,
    MAX_TX_ID,
    BarePosition,
    format_position,
    impossible,
    parse_position,
)


def _random_checkpoint(rng: random.Random) -> Checkpoint:
    tx = rng.choice([rng.randrange(3, 2**32), rng.randrange(3, MAX_TX_ID + 1)])
    pos = rng.choice([rng.randrange(1, 1000), rng.randrange(1, MAX_POSITION + 1)])
    return Checkpoint(tx, pos)


def test_tokens_compare_as_the_projection_orders():
    rng = random.Random(12)
    for _ in range(5000):
        a, b = _random_checkpoint(rng), _random_checkpoint(rng)
        if rng.random() < 0.3:  # same transaction, positions differ
            b = Checkpoint(a.tx_id, b.position)
        ta, tb = format_position(a), format_position(b)
        assert len(ta) == len(tb) == 39
        assert (ta < tb) == (a < b) and (ta == tb) == (a == b)
        assert (int(ta) < int(tb)) == (a < b)
        assert parse_position(ta) == a and parse_position(str(int(ta))) == a


def test_a_lower_position_in_a_later_transaction_is_the_greater_token():
    earlier_tx_higher_position = format_position(Checkpoint(1000, 50))
    later_tx_lower_position = format_position(Checkpoint(1001, 49))
    assert max(earlier_tx_higher_position, later_tx_lower_position) == later_tx_lower_position


@pytest.mark.parametrize("text, expected", [
    ("0", BarePosition(0)), ("17", BarePosition(17)), (" 17 ", BarePosition(17)),
    (str(10**19 - 1), BarePosition(10**19 - 1)), (str(10**19), Checkpoint(1, 0)),
    ("0" * 39, BarePosition(0)),
])
def test_parse(text, expected):
    assert parse_position(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "+1", "1.0", "1e3", "0x1", "1" * 40, "١٢", "1 2",
                                  "\udcff"])
def test_malformed(text):
    with pytest.raises(ValueError):
        parse_position(text)


def test_impossible_places():
    assert impossible(BarePosition(MAX_POSITION + 1)) and not impossible(BarePosition(MAX_POSITION))
    assert impossible(parse_position("9" * 39))  # tx_id past xid8
    assert impossible(Checkpoint(1, MAX_POSITION + 1))
    assert not impossible(Checkpoint(MAX_TX_ID, MAX_POSITION))
