"""ferry.client and the agent's local token: where the client finds it (token=, token_file=,
FERRY_LOCAL_TOKEN), and what happens without it, against the real Local service with its
token check (gRPC on a unix socket, in this process)."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from pathlib import Path

import pytest

from ferry.agent.local import server as local_server
from ferry.agent.local.auth import TokenCheck
from ferry.agent.local.server import LocalService
from ferry.client import AsyncTelemetry, Telemetry
from ferry.client.auth import ENV, LocalToken

TOKEN = "tok-0123456789abcdef"


class TokenAgent:
    """The real LocalService behind a TokenCheck, on its own event loop thread."""

    def __init__(self, token_file: Path):
        self.socket_path = Path(tempfile.mkdtemp(prefix="ferry-client-")) / "agent.sock"
        self.target = f"unix:{self.socket_path}"
        self.check = TokenCheck(str(token_file))
        self.gauges: list[float] = []
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        service = LocalService(lambda intake: self.gauges.extend(v for _, _, v in intake.points), lambda: 0)
        self.server = self._run(
            local_server.start(service, "", str(self.socket_path), interceptors=(self.check,))
        )

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self._run(local_server.stop(self.server, str(self.socket_path)))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.socket_path.parent.rmdir()


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "local.token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def agent(token_file):
    a = TokenAgent(token_file)
    yield a
    a.close()


def test_where_the_token_comes_from_first_given_wins(token_file):
    env = {ENV: "from-env"}
    assert LocalToken(environ={}).metadata is None
    assert LocalToken(environ={ENV: "  "}).metadata is None  # set but empty: no token
    assert LocalToken(environ=env).metadata == (("authorization", "Bearer from-env"),)
    assert LocalToken(token_file=str(token_file), environ=env).metadata == (
        ("authorization", f"Bearer {TOKEN}"),
    )
    assert LocalToken(token="given", environ=env).metadata == (("authorization", "Bearer given"),)
    with pytest.raises(ValueError, match="token= or token_file=, not both"):
        LocalToken(token="a", token_file=str(token_file))
    with pytest.raises(ValueError, match=r"token=: a token is visible ASCII without spaces") as err:
        LocalToken(token="se cret")
    assert "se cret" not in str(err.value)
    with pytest.raises(ValueError, match=f"{ENV}: the token is empty|{ENV}: a token"):
        LocalToken(environ={ENV: "a\tb"})
    with pytest.raises(FileNotFoundError):
        Telemetry("unix:/nowhere.sock", token_file="/no/such/token")


def test_without_the_token_records_wait_and_the_error_says_why(agent, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    client = Telemetry(agent.target, flush_interval=0.05)
    client.gauge("app.depth", 3.0)
    assert client.flush(timeout=0.5) is False
    stats = client.stats()
    assert stats.last_error.startswith("UNAUTHENTICATED: this agent's Local service needs a token")
    assert (stats.sent, stats.queued, stats.dropped) == (0, 1, 0)  # kept for a retry, not dropped
    client.close(timeout=0.2)
    assert agent.gauges == []


def test_a_wrong_token_is_refused_and_the_right_one_delivers(agent, token_file, monkeypatch):
    monkeypatch.setenv(ENV, "not-the-token")
    wrong = Telemetry(agent.target, flush_interval=0.05)
    wrong.gauge("app.depth", 1.0)
    assert wrong.flush(timeout=0.5) is False
    assert wrong.stats().last_error == "UNAUTHENTICATED: the token sent is not this agent's local token"
    wrong.close(timeout=0.2)

    monkeypatch.setenv(ENV, TOKEN)
    from_env = Telemetry(agent.target)
    from_env.gauge("app.depth", 2.0)
    assert from_env.flush(timeout=5) is True
    from_file = Telemetry(agent.target, token_file=str(token_file))
    from_file.gauge("app.depth", 3.0)
    assert from_file.flush(timeout=5) is True
    given = Telemetry(agent.target, token=TOKEN)
    given.gauge("app.depth", 4.0)
    assert given.flush(timeout=5) is True
    for c in (from_env, from_file, given):
        c.close()
    assert agent.gauges == [2.0, 3.0, 4.0]


def test_a_rotated_token_file_is_read_again_after_a_refusal(agent, token_file):
    client = Telemetry(agent.target, token_file=str(token_file), flush_interval=0.05)
    client.gauge("app.depth", 1.0)
    assert client.flush(timeout=5) is True
    token_file.write_text("tok-rotated")
    agent.check.load(str(token_file))  # what the agent does on SIGHUP
    client.gauge("app.depth", 2.0)
    assert client.flush(timeout=5) is True  # refused once, read the file again, sent again
    client.close()
    assert agent.gauges == [1.0, 2.0]


def test_the_async_client_sends_the_token(agent):
    async def run() -> tuple[bool, bool]:
        without = await AsyncTelemetry(agent.target, flush_interval=0.05).start()
        without.gauge("app.depth", 1.0)
        refused = await without.flush(timeout=0.5)
        assert without.stats().last_error.startswith("UNAUTHENTICATED")
        await without.close(timeout=0.2)
        async with AsyncTelemetry(agent.target, token=TOKEN) as client:
            client.gauge("app.depth", 5.0)
            return refused, await client.flush(timeout=5)

    assert asyncio.run(run()) == (False, True)
    assert agent.gauges == [5.0]
