"""No token and no secret in any log line: ``talk up`` runs as its own process (logging at
DEBUG) and is sent requests carrying tokens every way a client or an attacker can put them
(``?token=``, ``Authorization``, in the path, in malformed requests that aiohttp refuses
itself, on ``/v1.0/ws``); then its whole output is searched for them."""

from __future__ import annotations

import secrets
import signal
from pathlib import Path
from urllib.parse import quote
from uuid import uuid4

import aiohttp
import orjson

from services.auth import mint_token
from tests.e2e.processes import TalkProcess, clean_env, talk_processes
from tests.e2e.resources import empty_database
from tests.integration.raw_http import request_bytes, send_raw

CHATS = "/v1.0/service_agents/talk_chats"


def _upgrade(target: str) -> bytes:
    return request_bytes("GET", target, {
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})


async def test_no_token_or_secret_reaches_the_logs(tmp_path: Path, postgres_admin_url: str):
    secret = secrets.token_urlsafe(48)
    customer, agent = uuid4(), uuid4()
    token = mint_token(secret, customer, agent)
    forged = mint_token(secrets.token_urlsafe(48), customer, agent)  # fails to verify
    expired = mint_token(secret, customer, agent, ttl=-10)
    with empty_database(postgres_admin_url) as database_url:
        env = clean_env(database_url=database_url, jwt_secret=secret, log_level="DEBUG",
                        log_format="json")
        async with talk_processes() as running, aiohttp.ClientSession() as session:
            up = await TalkProcess.start("up", "--port", "0", env=env, cwd=tmp_path)
            running.append(up)
            base = await up.ready_url()
            port = int(base.rsplit(":", 1)[1])

            statuses = []
            for tok in (token, forged, expired):
                for target in (f"{CHATS}?token={tok}", f"{CHATS}?page_size=5&token={tok}",
                               f"{CHATS}/{tok}?token={tok}", f"/v1.0/nowhere?token={tok}",
                               f"{CHATS}/%3Ftoken%3D{quote(tok)}"):
                    async with session.get(f"{base}{target}") as resp:
                        statuses.append(resp.status)
                async with session.post(f"{base}{CHATS}", json={"type": "group"},
                                        headers={"Authorization": f"Bearer {tok}"}) as resp:
                    statuses.append(resp.status)
                async with session.get(f"{base}{CHATS}", headers={
                        "Authorization": f"Bearer {tok}", "X-Correlation-ID": "bad value",
                        "X-Talk-Min-Position": "not a position"}) as resp:
                    statuses.append(resp.status)
                # the WebSocket: upgraded with a good token, refused otherwise
                answer = await send_raw(port, _upgrade(f"/v1.0/ws?token={tok}"))
                statuses.append(answer.status)
                # what aiohttp refuses before the app sees it, the token in the request line
                for raw in (f"GE\x01T {CHATS}?token={tok} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
                            f"GET {CHATS}?token={tok}{'a' * 9000} HTTP/1.1\r\n\r\n".encode(),
                            b"GET /v1.0/\xff?token=" + tok.encode() + b" HTTP/1.1\r\n\r\n",
                            f"GET {CHATS}?token={tok} HTTP/1.1\r\nHost: t\r\nX-Long: "
                            f"{'a' * 9000}\r\n\r\n".encode(),
                            f"GET {CHATS}?token={tok} HTTP/1.1\r\nAuthorization: Bearer {tok}"
                            "\r\nX-Nul: \x00\r\n\r\n".encode()):
                    statuses.append((await send_raw(port, raw)).status)
                answer = await send_raw(port, request_bytes(
                    "GET", CHATS, {"Authorization": b"Bearer " + tok.encode() + b"\xff"}))
                statuses.append(answer.status)
            assert 200 in statuses and 401 in statuses and 404 in statuses and 400 in statuses
            assert all(s < 500 for s in statuses), statuses

            up.send(signal.SIGTERM)
            assert await up.exit_code(20) == 0, up.output()

    lines = up.stdout + up.stderr
    logged = "\n".join(lines)
    # the run logged what it was sent (so the search below searched something)
    records = [orjson.loads(line) for line in lines if line.startswith("{")]
    events = {r.get("event") for r in records}
    assert {"request", "request.malformed"} <= events, sorted(e for e in events if e)
    assert sum(1 for r in records if r.get("event") == "request") >= 3 * 7
    assert secret not in logged
    for tok in (token, forged, expired):
        _, payload, signature = tok.split(".")
        assert tok not in logged and quote(tok) not in logged
        assert payload not in logged and signature not in logged
