"""``talk up`` with no configuration at all, as a newcomer runs it: no TALK_DATABASE_URL, no
TALK_AMQP_URL, no TALK_JWT_SECRET, in an empty directory. It must start on the embedded
PostgreSQL, serve the tutorial flow, leave no process behind on Ctrl-C, and find its data
again on the next start."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from uuid import UUID, uuid4

import aiohttp

from services.auth import mint_token
from tests.e2e.flow import (
    CHATS,
    MESSAGES,
    Agent,
    Api,
    close_code,
    frame_for,
    run_tutorial,
    subscribed_socket,
)
from tests.e2e.processes import (
    TalkProcess,
    children_of,
    clean_env,
    postgres_processes,
    process_alive,
    talk_command,
    talk_processes,
)


async def _token(cwd: Path, env: dict[str, str], customer_id: UUID, agent_id: UUID) -> str:
    """Minted as the start banner says: ``talk token`` with the generated secret."""
    out = await talk_command("token", "--customer-id", str(customer_id),
                             "--agent-id", str(agent_id), env=env, cwd=cwd)
    return out.strip()


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


def _assert_nothing_left(pgdata: Path, postmaster: int) -> None:
    assert not process_alive(postmaster), f"postgres {postmaster} is still running"
    assert children_of(postmaster) == []
    assert postgres_processes(pgdata) == []


async def test_talk_up_with_no_configuration(tmp_path: Path) -> None:
    env = clean_env()
    pgdata = tmp_path / ".talk" / "pgdata"
    customer = uuid4()
    async with talk_processes() as running, aiohttp.ClientSession() as session:
        # First start: initdb, a generated secret, migrations.
        first = await TalkProcess.start("up", "--port", "0", env=env, cwd=tmp_path)
        running.append(first)
        base = await first.ready_url()
        banner = "\n".join(first.stdout)
        assert re.search(r"Postgres +embedded PostgreSQL \d+, data in .*pgdata \(created now\)", banner)
        assert re.search(r"delivery +in-process", banner)
        assert "/v1.0/ws" in banner
        assert "talk token --customer-id UUID --agent-id UUID" in banner
        assert (tmp_path / ".talk" / "jwt_secret").exists()

        api = Api(session, write=base, read=base)
        alice_id, bob_id = uuid4(), uuid4()
        alice = Agent(api, customer, alice_id, await _token(tmp_path, env, customer, alice_id))
        secret = (tmp_path / ".talk" / "jwt_secret").read_text().strip()  # what talk token used
        bob = Agent(api, customer, bob_id, mint_token(secret, customer, bob_id, 3600))
        socket = await subscribed_socket(session, base, alice)
        tutorial = await run_tutorial(alice, bob)
        # Delivered in-process (no RabbitMQ here): the reply reaches alice's socket.
        frame = await frame_for(socket, "message_created", tutorial.reply["id"])
        assert frame["data"]["parent_id"] == tutorial.hello["id"]
        assert frame["topic"] == f"agent:{alice_id}"

        async with session.get(f"{base}/metrics") as resp:
            metrics = await resp.text()
        assert 'talk_events_appended_total{type="MessagePosted"}' in metrics
        assert 'talk_http_request_seconds_count{method="POST",route="/v1.0/service_agents/talk_messages"' in metrics
        assert "talk_projection_lag_events" in metrics

        # Ctrl-C: the service drains, then the embedded PostgreSQL stops with it.
        postmaster = _postmaster_pid(pgdata)
        assert process_alive(postmaster)
        assert await first.stop(signal.SIGINT) == 0, first.output()
        assert await close_code(socket) == 1001  # going away
        assert "embedded PostgreSQL stopped" in first.stdout
        _assert_nothing_left(pgdata, postmaster)

        # Second start: the same cluster, the same secret, the same talk.
        second = await TalkProcess.start("up", "--port", "0", env=env, cwd=tmp_path)
        running.append(second)
        base = await second.ready_url()
        assert re.search(r"data in .*pgdata \(kept between runs\)", "\n".join(second.stdout))
        api = Api(session, write=base, read=base)
        bob = Agent(api, customer, bob_id, bob.token)  # a token from the first run still works
        chat = await bob.query(f"{CHATS}/{tutorial.chat['id']}")
        assert (chat["name"], chat["member_count"]) == ("Support", 2)
        listed = await bob.query(MESSAGES, {"chat_id": tutorial.chat["id"]})
        assert {tutorial.hello["id"], tutorial.reply["id"]} <= {m["id"] for m in listed["result"]}

        postmaster = _postmaster_pid(pgdata)
        assert await second.stop(signal.SIGTERM) == 0, second.output()
        _assert_nothing_left(pgdata, postmaster)
