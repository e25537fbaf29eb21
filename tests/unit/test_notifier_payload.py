"""The commit notifier's payload names the talks written since the last NOTIFY by their
partition hash, and a partition's wake-up wakes only for its own talks, whatever the number
of partitions; '' (everyone) when a poke does not say which talks it wrote, or names too
many."""

from uuid import uuid4

from events.notifier import MAX_NAMED, CommitNotifier
from projector.partitioning import partition_of
from projector.wakeup import Listener, Wakeup


def _wakeup(partition: int, partitions: int) -> Wakeup:
    return Wakeup(listener=Listener("postgresql://unused"), partition=partition,
                  partitions=partitions)


def test_a_partition_wakes_for_its_own_talks_only():
    notifier = CommitNotifier("postgresql://unused")
    talks = [uuid4() for _ in range(3)]
    notifier.poke(talks[:2])
    notifier.poke(talks[2:])
    payload = notifier._payload()
    assert len(payload.split(",")) == 3
    assert notifier._payload() == ""  # nothing pending
    for partitions in (2, 4, 8):
        written = {partition_of(t, partitions) for t in talks}
        for p in range(partitions):
            wakeup = _wakeup(p, partitions)
            wakeup.notified(payload)
            assert wakeup.event.is_set() == (p in written), (partitions, p)


def test_an_empty_payload_wakes_every_partition():
    notifier = CommitNotifier("postgresql://unused")
    notifier.poke([uuid4()])
    notifier.poke(None)  # an append whose talks the caller did not say
    assert notifier._payload() == ""
    notifier.poke([uuid4() for _ in range(MAX_NAMED + 1)])
    assert notifier._payload() == ""
    wakeup = _wakeup(3, 4)
    wakeup.notified("")
    assert wakeup.event.is_set()


def test_one_partition_wakes_on_every_notification():
    wakeup = Wakeup(listener=Listener("postgresql://unused"))
    wakeup.notified("0000001")
    assert wakeup.event.is_set()
