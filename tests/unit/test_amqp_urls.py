"""TALK_AMQP_URL with several nodes: parsing, refusal of a bad entry (without showing the
value), and the order in which :class:`services.amqp.BrokerNodes` tries the nodes."""

from __future__ import annotations

import pytest

from services import amqp
from services.settings import InvalidSettings, load_settings

A, B, C = (f"amqp://talk:pw@node-{n}:5672/" for n in "abc")


def test_one_url_or_several_separated_by_commas():
    assert amqp.amqp_urls(load_settings(amqp_url=A)) == [A]
    assert amqp.amqp_urls(load_settings(amqp_url=f"{A}, {B} ,{C},")) == [A, B, C]
    assert amqp.describe_node(B) == "node-b:5672"
    assert amqp.describe_node("amqps://talk:pw@mq/") == "mq:5671"


def test_an_entry_that_is_not_an_amqp_url_is_refused_without_showing_it():
    with pytest.raises(InvalidSettings) as refused:
        load_settings(amqp_url=f"{A},postgresql://talk:s3cret@db/")
    assert "TALK_AMQP_URL" in str(refused.value) and "entry 2 of 2" in str(refused.value)
    assert "s3cret" not in str(refused.value)


class FakeBroker:
    def __init__(self, down: set[str]) -> None:
        self.down = down
        self.tried: list[str] = []

    async def connect(self, url: str, **_: object) -> str:
        self.tried.append(url)
        if url in self.down:
            raise ConnectionRefusedError(url)
        return url


async def test_nodes_are_tried_from_the_one_after_the_last_connection(monkeypatch):
    broker = FakeBroker(down={A})
    monkeypatch.setattr(amqp.aio_pika, "connect", broker.connect)
    nodes = amqp.BrokerNodes(load_settings(amqp_url=f"{A},{B},{C}"))

    assert await nodes.connect("t") == B  # the first that answers
    assert (broker.tried, nodes.current) == ([A, B], "node-b:5672")
    broker.tried.clear()
    assert await nodes.connect("t") == C  # after a loss: the next node, round-robin
    broker.tried.clear()
    broker.down = set()
    assert await nodes.connect("t") == A
    assert broker.tried == [A]


async def test_no_node_answering_raises_the_last_failure(monkeypatch):
    broker = FakeBroker(down={A, B})
    monkeypatch.setattr(amqp.aio_pika, "connect", broker.connect)
    nodes = amqp.BrokerNodes(load_settings(amqp_url=f"{A},{B}"))
    with pytest.raises(ConnectionRefusedError):
        await nodes.connect("t")
    assert broker.tried == [A, B]


def test_talk_up_names_every_node_without_credentials():
    from services.up import _describe_amqp

    described = _describe_amqp(f"{A},{B}")
    assert described == "node-a:5672/, node-b:5672/"
    assert "pw" not in described
