"""Who may reach the Local service: socket mode and group, the loopback rule, and the token
(parsed by the agent's real configuration; the token checked by a real in-process server)."""

from __future__ import annotations

import asyncio
import grp
import os
import stat
import tempfile
from pathlib import Path

import grpc
import pytest

from ferry import transport
from ferry.agent import selfmetrics as m
from ferry.agent.config import AgentConfig
from ferry.agent.local import server as local_server
from ferry.agent.local.access import is_loopback
from ferry.agent.local.auth import MALFORMED, MISSING, WRONG, TokenCheck, digest, read_token, refusal
from ferry.agent.local.server import LocalService
from ferry.runtime.config import ConfigError, parse_command_line
from ferry.v1 import local_pb2, local_pb2_grpc


def load(tmp_path: Path, text: str = "", *flags: str) -> AgentConfig:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return parse_command_line(AgentConfig, ["--config", str(path), *flags], "ferry-agent", "").load()


def test_the_socket_is_0660_by_default_and_a_mode_is_octal(tmp_path):
    cfg = load(tmp_path)
    assert (cfg.local_socket_mode, cfg.local_socket_group, cfg.insecure, cfg.local_token_file) == (
        "0660",
        "",
        False,
        "",
    )
    for given, mode in (('"0600"', "0600"), ('"666"', "0666"), ('"0o640"', "0640"), ("0o660", "0660")):
        assert load(tmp_path, f"local_socket_mode = {given}\n").local_socket_mode == mode
    assert load(tmp_path, "", "--local-socket-mode", "0606").local_socket_mode == "0606"


@pytest.mark.parametrize(
    "value,message",
    [
        ('"0999"', "agent.toml:1: key 'local_socket_mode': '0999' is not an octal file mode such as '0660'"),
        ('"rw-rw----"', "'rw-rw----' is not an octal file mode"),
        ('"01777"', "mode '01777' is outside 0000..0777"),
        ("660", "mode 660 (octal 1224) is outside 0000..0777 (write it as a string, '0660', or as 0o660)"),
        ("true", "True is not a file mode"),
    ],
)
def test_a_bad_mode_is_refused_naming_it(tmp_path, value, message):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f"local_socket_mode = {value}\n")
    assert message in str(err.value)


def test_the_group_is_a_name_or_a_gid_and_an_unknown_name_is_refused(tmp_path):
    own = grp.getgrgid(os.getgid()).gr_name
    assert load(tmp_path, f'local_socket_group = "{own}"\n').local_socket_group == own
    assert load(tmp_path, "", "--local-socket-group", str(os.getgid())).local_socket_group == str(os.getgid())
    with pytest.raises(ConfigError, match=r"--local-socket-group: group 'no-such-group' does not exist"):
        load(tmp_path, "", "--local-socket-group", "no-such-group")
    with pytest.raises(ConfigError, match=r"agent.toml:1: key 'local_socket_group': \['a'\] is not a group"):
        load(tmp_path, 'local_socket_group = ["a"]\n')


@pytest.mark.parametrize(
    "address,loopback",
    [
        ("127.0.0.1:4771", True),
        ("127.3.2.1:4771", True),
        ("localhost:4771", True),
        ("[::1]:4771", True),
        ("[::ffff:127.0.0.1]:4771", True),
        ("0.0.0.0:4771", False),
        ("[::]:4771", False),
        ("192.168.1.20:4771", False),
        ("[fe80::1]:4771", False),
        ("myhost:4771", False),  # a name may resolve to anything: not loopback
    ],
)
def test_which_addresses_are_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_a_non_loopback_local_listen_needs_insecure(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, 'local_listen = "0.0.0.0:4771"\n')
    assert str(err.value) == (
        "local_listen '0.0.0.0:4771' is not a loopback address: any host that reaches it could send "
        "records as this agent (use 127.0.0.1, [::1] or the unix socket; set insecure = true, "
        "--insecure, to allow it)"
    )
    with pytest.raises(ConfigError, match=r"local_listen '\[::\]:4771' is not a loopback address"):
        load(tmp_path, "", "--local-listen", "[::]:4771")
    assert load(tmp_path, 'local_listen = "0.0.0.0:4771"\ninsecure = true\n').insecure is True
    assert load(tmp_path, "", "--local-listen", "10.1.2.3:4771", "--insecure").local_listen == "10.1.2.3:4771"
    assert load(tmp_path, "", "--local-listen", "").local_listen == ""  # off needs nothing


def test_the_token_file_is_read_and_checked_without_showing_the_token(tmp_path):
    path = tmp_path / "local.token"
    path.write_text("  s3cret-Token_1\n")
    assert read_token(str(path)) == b"s3cret-Token_1"
    assert load(tmp_path, f'local_token_file = "{path}"\n').local_token_file == str(path)
    for content, message in (
        ("\n", "holds no token (the file is empty)"),
        ("two words", "a token is visible ASCII without spaces"),
        ("x" * 5000, "holds 5000 bytes > 4096 allowed for a token"),
    ):
        path.write_text(content)
        with pytest.raises(ConfigError) as err:
            load(tmp_path, f'local_token_file = "{path}"\n')
        assert message in str(err.value) and "words" not in str(err.value)
    with pytest.raises(ConfigError, match=r"local_token_file: cannot read /no/such/file: No such file"):
        load(tmp_path, "", "--local-token-file", "/no/such/file")


def test_which_metadata_passes_the_token_check():
    expected = digest("tok")
    assert refusal([], None) is None  # no token file: open
    assert refusal([("authorization", "Bearer tok")], expected) is None
    assert refusal([("authorization", "bearer tok")], expected) is None  # the scheme is case-insensitive
    assert refusal([("user-agent", "x")], expected) == MISSING
    assert refusal(None, expected) == MISSING
    assert refusal([("authorization", "tok")], expected) == MALFORMED
    assert refusal([("authorization", "Basic dG9r")], expected) == MALFORMED
    assert refusal([("authorization", "Bearer ")], expected) == MALFORMED
    assert refusal([("authorization", "Bearer tok"), ("authorization", "Bearer tok")], expected) == MALFORMED
    assert refusal([("authorization", "Bearer tok2")], expected) == WRONG
    assert refusal([("authorization", "Bearer to")], expected) == WRONG


def _failures(reason: str) -> float:
    return m.LOCAL_AUTH_FAILURES.labels(reason)._value.get()


def test_a_server_with_a_token_refuses_calls_without_it_and_reads_it_again(tmp_path):
    token_file = tmp_path / "local.token"
    token_file.write_text("first-token\n")
    taken = []

    async def run() -> None:
        check = TokenCheck(str(token_file))
        service = LocalService(lambda intake: taken.append(len(intake)), lambda: 0)
        sock = Path(tempfile.mkdtemp(prefix="ferry-")) / "agent.sock"
        server = await local_server.start(service, "", str(sock), interceptors=(check,))
        assert stat.S_IMODE(sock.stat().st_mode) == 0o660  # the default, set before it served
        request = local_pb2.Records(metrics=[local_pb2.MetricRecord(name="a", kind=1, value=1.0)])
        try:
            async with transport.aio_channel(f"unix:{sock}") as channel:
                stub = local_pb2_grpc.LocalStub(channel)

                async def code(token: str | None, stream: bool = False) -> str:
                    md = (("authorization", f"Bearer {token}"),) if token else None
                    try:
                        if stream:
                            await stub.SendStream(iter([request, request]), metadata=md, timeout=5)
                        else:
                            await stub.Send(request, metadata=md, timeout=5)
                    except grpc.aio.AioRpcError as exc:
                        assert token is None or token not in (exc.details() or "")
                        return f"{exc.code().name}: {exc.details()}"
                    return "OK"

                before = {r: _failures(r) for r in (MISSING, WRONG)}
                assert (await code(None)).startswith(
                    "UNAUTHENTICATED: this agent's Local service needs a token: send the metadata "
                    "'authorization: Bearer <token>'"
                )
                assert await code("second-token") == (
                    "UNAUTHENTICATED: the token sent is not this agent's local token"
                )
                assert (await code(None, stream=True)).startswith("UNAUTHENTICATED")
                assert await code("first-token") == "OK"
                assert await code("first-token", stream=True) == "OK"
                assert taken == [1, 1, 1]  # nothing of a refused call reached the pipeline
                assert _failures(MISSING) - before[MISSING] == 2
                assert _failures(WRONG) - before[WRONG] == 1

                token_file.write_text("second-token")  # rotated, then read again (SIGHUP)
                check.load(str(token_file))
                assert await code("second-token") == "OK"
                assert (await code("first-token")).startswith("UNAUTHENTICATED")
                token_file.write_text("")
                with pytest.raises(ConfigError, match="holds no token"):
                    check.load(str(token_file))
                assert await code("second-token") == "OK"  # the token in use stays
                check.load("")  # the key emptied: open again
                assert await code(None) == "OK"
        finally:
            await local_server.stop(server, str(sock))
            sock.parent.rmdir()

    asyncio.run(run())


def test_a_reload_applies_a_new_token_file_and_the_listener_keys_wait_for_a_restart(tmp_path):
    from ferry.agent.reload import split

    token = tmp_path / "local.token"
    token.write_text("t")
    old = load(tmp_path)
    new = load(tmp_path, f'local_token_file = "{token}"\nlocal_socket_mode = "0600"\ninsecure = true\n')
    live, restart = split(old, new)
    assert live == ["local_token_file"]
    assert sorted(restart) == ["insecure", "local_socket_mode"]
