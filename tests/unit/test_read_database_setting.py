"""``TALK_READ_DATABASE_URL``: where reads go, and whether that is another server than the
primary (then the query API and the gateway open a second pool on it)."""

from __future__ import annotations

from services.settings import Settings

PRIMARY = "postgresql://talk@primary:5432/talk"
STANDBY = "postgresql://talk@standby:5432/talk"


def test_reads_go_to_the_primary_unless_told():
    for unset in (None, ""):  # the ConfigMap ships it empty
        settings = Settings(database_url=PRIMARY, read_database_url=unset)
        assert settings.require_read_database_url() == PRIMARY
        assert not settings.reads_elsewhere


def test_reads_go_to_the_standby_when_it_is_another_server():
    settings = Settings(database_url=PRIMARY, read_database_url=STANDBY)
    assert settings.require_read_database_url() == STANDBY
    assert settings.reads_elsewhere
    assert not Settings(database_url=PRIMARY, read_database_url=PRIMARY).reads_elsewhere
