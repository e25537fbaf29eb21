"""A Talk WebSocket client to copy: connect, subscribe, keep the last resume token, and
reconnect with a back-off when the gateway goes away (1001), the token expires (4001) or the
client fell behind (4008), resuming where it left off; on ``resync_required`` re-read what
was missed through the HTTP API (here: a line saying so).

    python examples/ws_client.py --url ws://127.0.0.1:8080 --token "$TOKEN" \\
        --topic agent:<your agent id> [--topic chat:<chat id>] [--max-frames N]

Each frame is printed as one JSON line on stdout; what the client does (connecting,
reconnecting) goes to stderr. With ``--token-command`` the token is re-minted on 4001 (e.g.
``--token-command 'talk token --customer-id ... --agent-id ...'``). Needs aiohttp only.
The protocol: ``GET /v1.0/asyncapi.json`` on the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys

import aiohttp

RECONNECT_CODES = {1001, 1006, 4001, 4008}  # gone away, dropped, token expired, too slow
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 30.0


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.token: str = args.token
        self.resume_token: str | None = None
        self.events = 0
        self.connected = False

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def fresh_token(self) -> None:
        if self.args.token_command:
            self.token = subprocess.run(self.args.token_command, shell=True, check=True,
                                        capture_output=True, text=True).stdout.strip()

    async def run(self) -> int:
        backoff = FIRST_BACKOFF
        async with aiohttp.ClientSession() as session:
            while True:
                self.connected = False
                try:
                    code = await self.session(session)
                except (aiohttp.ClientError, OSError) as exc:
                    code = 1006
                    self.say(f"connection failed: {exc!r}")
                if code is None:
                    return 0  # --max-frames reached
                if code not in RECONNECT_CODES:
                    self.say(f"closed with {code}: not retrying")
                    return 1
                if code == 4001:
                    self.fresh_token()
                if self.connected:
                    backoff = FIRST_BACKOFF  # it worked a moment ago: start over small
                delay = backoff * random.uniform(0.5, 1.0)  # jitter: gateways restart together
                self.say(f"closed with {code}: reconnecting in {delay:.1f} s")
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def session(self, session: aiohttp.ClientSession) -> int | None:
        """One connection; the close code, or ``None`` once ``--max-frames`` were received."""
        url = f"{self.args.url.rstrip('/')}/v1.0/ws"
        async with session.ws_connect(url, params={"token": self.token}, heartbeat=30) as ws:
            self.connected = True
            self.say("connected")
            subscribe: dict = {"type": "subscribe", "topics": self.args.topic}
            if self.resume_token:
                subscribe["resume_token"] = self.resume_token
            await ws.send_json(subscribe)
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(msg.data)
                print(json.dumps(frame), flush=True)
                if frame["type"] == "resync_required":
                    self.say("missed events cannot be replayed: re-read the talks over HTTP")
                elif "resume_token" in frame:
                    self.resume_token = frame["resume_token"]
                    self.events += 1
                    if self.args.max_frames and self.events >= self.args.max_frames:
                        return None
            return ws.close_code if ws.close_code is not None else 1006


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the gateway, e.g. ws://127.0.0.1:8080")
    parser.add_argument("--token", required=True, help="the API's JWT")
    parser.add_argument("--token-command", help="prints a fresh token (run on 4001)")
    parser.add_argument("--topic", action="append", required=True,
                        help="chat:<chat id> or agent:<own agent id> (repeatable)")
    parser.add_argument("--max-frames", type=int, default=0,
                        help="exit after this many event frames (0: run until stopped)")
    try:
        return asyncio.run(Client(parser.parse_args()).run())
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
