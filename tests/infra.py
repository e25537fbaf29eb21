"""Where the tests find Postgres and RabbitMQ, in this order:

1. ``TALK_TEST_DATABASE_URL`` / ``TALK_TEST_AMQP_URL`` (a server the tests may create
   databases on);
2. local servers on 127.0.0.1:5432 (user postgres, then root) / 127.0.0.1:5672 (guest);
3. testcontainers, when a Docker engine answers;
4. otherwise the tests that need them fail with a message saying what to start.
"""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack

import psycopg

LOCAL_PG = ("postgresql://postgres@127.0.0.1:5432/postgres",
            "postgresql://root@127.0.0.1:5432/postgres")
LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/"

START_PG = (
    "No PostgreSQL for the tests. Set TALK_TEST_DATABASE_URL to a server the tests may create "
    "databases on, or start a local one on 127.0.0.1:5432 (e.g. `pg_ctlcluster 15 main start`), "
    "or start a Docker engine for testcontainers."
)
START_AMQP = (
    "No RabbitMQ for the tests. Set TALK_TEST_AMQP_URL, or start a local one on 127.0.0.1:5672 "
    "(e.g. `rabbitmq-server -detached`), or start a Docker engine for testcontainers."
)


class InfrastructureMissing(RuntimeError):
    pass


def _pg_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    try:
        import docker  # testcontainers depends on it

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def find_postgres(stack: ExitStack) -> str:
    """An admin URL of a Postgres server (connected to a maintenance database)."""
    explicit = os.environ.get("TALK_TEST_DATABASE_URL")
    if explicit:
        if not _pg_answers(explicit):
            raise InfrastructureMissing(f"TALK_TEST_DATABASE_URL={explicit!r} does not answer. {START_PG}")
        return explicit
    for url in LOCAL_PG:
        if _pg_answers(url):
            return url
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = stack.enter_context(PostgresContainer("postgres:15", driver=None))
        return container.get_connection_url()
    raise InfrastructureMissing(START_PG)


def find_rabbitmq(stack: ExitStack) -> str:
    explicit = os.environ.get("TALK_TEST_AMQP_URL")
    if explicit:
        return explicit
    if _port_open("127.0.0.1", 5672):
        return LOCAL_AMQP
    if _docker_answers():
        from testcontainers.rabbitmq import RabbitMqContainer

        container = stack.enter_context(RabbitMqContainer("rabbitmq:3.10-management"))
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5672)
        return f"amqp://guest:guest@{host}:{port}/"
    raise InfrastructureMissing(START_AMQP)


def database_url_for(admin_url: str, dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


def create_database(admin_url: str, dbname: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return database_url_for(admin_url, dbname)


def drop_database(admin_url: str, dbname: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
