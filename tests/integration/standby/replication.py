"""A throw-away primary and hot standby: two :class:`ThrowawayCluster` on free ports of
127.0.0.1 (tests/integration/outage/cluster.py), the primary with ``wal_level=replica`` and
a replication entry in ``pg_hba.conf``, the standby made from it with ``pg_basebackup -R``
(streaming replication, read-only queries while it replays). Nothing touches the shared
server on 5432."""

from __future__ import annotations

from tests.integration.outage.cluster import ThrowawayCluster

PRIMARY_OPTIONS = ("wal_level=replica", "max_wal_senders=5", "hot_standby=on")
STANDBY_OPTIONS = ("hot_standby=on", "wal_receiver_status_interval=1")


class Replicated:
    """``start()`` makes and starts both; ``remove()`` stops both and deletes their files."""

    def __init__(self) -> None:
        self.primary = ThrowawayCluster(options=PRIMARY_OPTIONS, prefix="talk-primary-")
        self.standby: ThrowawayCluster | None = None
        with (self.primary.pgdata / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")

    def start_primary(self) -> None:
        self.primary.start()

    def start_standby(self) -> ThrowawayCluster:
        """A base backup of the running primary, started as its hot standby."""
        standby = self.standby = ThrowawayCluster(options=STANDBY_OPTIONS, initdb=False,
                                                  prefix="talk-standby-")
        standby._run(str(standby.bindir / "pg_basebackup"), "-h", "127.0.0.1",
                     "-p", str(self.primary.port), "-U", "postgres", "-D", str(standby.pgdata),
                     "-R", "-X", "stream", "-c", "fast", "--no-sync")
        standby.start()
        return standby

    def remove(self) -> None:
        try:
            if self.standby is not None:
                self.standby.remove()
        finally:
            self.primary.remove()
