"""TLS files and tokens on the transport seam: checked when read, refused when unsafe."""

from __future__ import annotations

import pytest

from ferry import transport
from ferry.collector.devcerts import DevCA


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    ca = DevCA.create()
    ca.write_ca(root / "ca.pem")
    ca.issue("srv", ["localhost"]).write(root / "srv")
    ca.issue("cli", client=True).write(root / "cli")
    (root / "junk.pem").write_text("hello")
    return root


def test_client_tls_from_files(files):
    tls = transport.ClientTLS.from_files(
        str(files / "ca.pem"), str(files / "cli.pem"), str(files / "cli.key"), "localhost"
    )
    assert tls.ca.startswith(b"-----BEGIN CERTIFICATE") and tls.key and tls.server_name == "localhost"
    ep = transport.Endpoint("127.0.0.1:1", tls=tls, token="t")
    assert ("grpc.ssl_target_name_override", "localhost") in ep.grpc_options()
    assert ep.credentials() is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.pem",), "CA file {d}/missing.pem: No such file or directory"),
        (("junk.pem",), "CA file {d}/junk.pem: not a PEM file (no -----BEGIN line)"),
        (("ca.pem", "cli.pem", ""), "a client certificate needs its key"),
        (
            ("ca.pem", "cli.pem", "srv.key"),
            "certificate {d}/cli.pem and key {d}/srv.key cannot be used together",
        ),
    ],
)
def test_bad_files_are_named(files, args, message):
    with pytest.raises(transport.CredentialsError) as exc:
        transport.ClientTLS.from_files(*(str(files / a) if a else "" for a in args))
    assert message.format(d=files) in str(exc.value)


def test_a_token_never_travels_in_plaintext():
    with pytest.raises(ValueError, match="a token is only sent over TLS"):
        transport.channel(transport.Endpoint("127.0.0.1:1", token="secret"))


def test_token_files(tmp_path):
    (tmp_path / "t").write_text("  ferry_abc  \n")
    assert transport.read_token(str(tmp_path / "t")) == "ferry_abc"
    (tmp_path / "e").write_text("\n")
    with pytest.raises(transport.CredentialsError, match="empty"):
        transport.read_token(str(tmp_path / "e"))
    (tmp_path / "s").write_text("two words\n")
    with pytest.raises(transport.CredentialsError, match=r"visible ASCII only .* found ' '"):
        transport.read_token(str(tmp_path / "s"))
    (tmp_path / "l").write_text("one\ntwo\n")
    with pytest.raises(transport.CredentialsError, match="expected one line"):
        transport.read_token(str(tmp_path / "l"))
    (tmp_path / "u").write_text("tökén\n")
    with pytest.raises(transport.CredentialsError, match="visible ASCII only"):
        transport.read_token(str(tmp_path / "u"))
    with pytest.raises(transport.CredentialsError, match="4097 characters > 4096 allowed"):
        transport.check_token("x" * 4097, "FERRY_TOKEN")


def test_a_reload_cannot_switch_client_certificates_on_or_off(files):
    tls = transport.ServerTLS.from_files(str(files / "srv.pem"), str(files / "srv.key"))
    creds = transport.ServerCredentials(tls)
    creds.reload(tls)  # same mode: taken by the next handshake
    mtls = transport.ServerTLS.from_files(
        str(files / "srv.pem"), str(files / "srv.key"), str(files / "ca.pem")
    )
    with pytest.raises(transport.CredentialsError, match="cannot turn client certificates on or off"):
        creds.reload(mtls)
    assert creds._fetch() is not None and creds._fetch() is None  # once, then the same again
