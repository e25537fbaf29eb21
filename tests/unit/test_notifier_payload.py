"""The commit notifier's payload: the partitions of the talks written since the last NOTIFY,
so a partitioned projector wakes only their readers; '' (everyone) when a poke does not say
which talks it wrote, or with one partition."""

from uuid import uuid4

from events.notifier import CommitNotifier
from projector.partitioning import partition_of


def test_the_payload_names_the_written_partitions_once_then_forgets_them():
    notifier = CommitNotifier("postgresql://unused", partitions=8)
    talks = [uuid4() for _ in range(5)]
    notifier.poke(talks[:3])
    notifier.poke(talks[3:])
    expected = sorted({partition_of(t, 8) for t in talks})
    assert notifier._payload() == ",".join(map(str, expected))
    assert notifier._payload() == ""  # nothing pending


def test_a_poke_without_talks_wakes_every_partition():
    notifier = CommitNotifier("postgresql://unused", partitions=8)
    notifier.poke([uuid4()])
    notifier.poke(None)
    assert notifier._payload() == ""


def test_one_partition_sends_an_empty_payload():
    notifier = CommitNotifier("postgresql://unused")
    notifier.poke([uuid4()])
    assert notifier._payload() == ""
