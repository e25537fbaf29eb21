"""What a dependency outage answers: 503 ``application/problem+json`` with ``Retry-After``.

Every service maps Postgres errors here, in one place: a connection that could not be had
within the connect timeout or was lost (:class:`services.db.DatabaseUnavailable`, the pool's
``PoolTimeout``) and a server that cannot serve for now (shutting down or starting up, out
of connections, a statement cancelled) are an outage, not a bug: the request middleware
answers them with :func:`outage_problem` and logs one warning line, no traceback. A write whose COMMIT was
cut off may or may not be stored: :func:`outcome_unknown_problem` says so, and how to find
out (retry with the same ``Idempotency-Key``).
"""

from __future__ import annotations

import psycopg

from services.http.problems import Problem

RETRY_AFTER_SECONDS = 1
UNAVAILABLE_TYPE = "https://talk.dev/problems/service-unavailable"
OUTCOME_UNKNOWN_TYPE = "https://talk.dev/problems/commit-outcome-unknown"


def _retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


# SQLSTATE classes of a server that cannot serve now, whatever the request: connection
# exceptions, insufficient resources (too many connections, disk full), operator intervention
# (shutting down, starting up, a cancelled statement); a lock not had in time; and a read on
# a hot standby cancelled by a conflict with its replay (serialization failure, 40001).
TRANSIENT_CLASSES = ("08", "53", "57")
TRANSIENT_STATES = ("55P03", "40001")


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means a dependency could not be used (answered 503, not 500): a lost or
    refused connection, the pool's timeout (no SQLSTATE: the client's own errors), or a
    transient server state. An ``OperationalError`` about the request itself (a program
    limit exceeded, say) stays a 500: retrying it would not help."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES


def outage_problem(exc: BaseException) -> Problem | None:
    """The 503 answer to a dependency outage, or None if ``exc`` is not one."""
    if not is_outage(exc):
        return None
    return Problem(503, "the database is unavailable; retry after the time in Retry-After",
                   type_=UNAVAILABLE_TYPE, headers=_retry_after())


def outcome_unknown_problem(*, idempotency_key: bool) -> Problem:
    """The 503 answer to a write whose commit was cut off: it may or may not be stored."""
    if idempotency_key:
        how = ("retry with the same Idempotency-Key: a write that was stored is answered as "
               "it was, one that was not is made")
    else:
        how = ("check before retrying, and send an Idempotency-Key with writes so that a "
               "retry is always safe")
    return Problem(503, "the connection to the database was lost while the write was being "
                        f"committed, so it may or may not be stored; {how}",
                   type_=OUTCOME_UNKNOWN_TYPE, headers=_retry_after())
