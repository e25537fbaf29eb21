"""Which errors are an outage (503 with Retry-After) and which a bug (500): a lost or refused
connection, the pool's timeout and a server that cannot serve for now are outages; an
OperationalError about the request itself is not."""

from __future__ import annotations

import psycopg
import psycopg.errors as e
import pytest
from psycopg_pool import PoolTimeout

from services.db import DatabaseUnavailable
from services.http.unavailable import (
    OUTCOME_UNKNOWN_TYPE,
    UNAVAILABLE_TYPE,
    is_outage,
    outage_problem,
    outcome_unknown_problem,
)


@pytest.mark.parametrize("exc", [
    PoolTimeout("couldn't get a connection after 5.00 sec"),
    DatabaseUnavailable("read_stream", e.AdminShutdown(), outcome_unknown=False),
    psycopg.OperationalError("consuming input failed: server closed the connection"),
    e.AdminShutdown(), e.CannotConnectNow(), e.TooManyConnections(), e.QueryCanceled(),
    e.LockNotAvailable(), e.ConnectionFailure(),
])
def test_outages(exc: BaseException) -> None:
    assert is_outage(exc)
    problem = outage_problem(exc)
    assert problem is not None and problem.status == 503
    assert problem.type == UNAVAILABLE_TYPE
    assert problem.headers["Retry-After"].isdigit()


@pytest.mark.parametrize("exc", [
    e.ProgramLimitExceeded(), e.UniqueViolation(), e.DataError(), ValueError("a bug"),
])
def test_not_outages(exc: BaseException) -> None:
    assert not is_outage(exc)
    assert outage_problem(exc) is None


def test_an_unknown_outcome_says_how_to_find_out() -> None:
    keyed = outcome_unknown_problem(idempotency_key=True)
    bare = outcome_unknown_problem(idempotency_key=False)
    for problem in (keyed, bare):
        assert problem.status == 503 and problem.type == OUTCOME_UNKNOWN_TYPE
        assert problem.headers["Retry-After"].isdigit()
        assert "may or may not be stored" in problem.detail
    assert "same Idempotency-Key" in keyed.detail
    assert "send an Idempotency-Key" in bare.detail
