"""The agent's TLS and token keys: combinations checked, files read and named when bad."""

from __future__ import annotations

import pytest

from ferry.agent import credentials
from ferry.agent.credentials import CredentialsConfig
from ferry.collector.devcerts import DevCA
from ferry.runtime.config import ConfigError


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"tls_cert": "c"}, "tls_cert and tls_key go together"),
        ({"token_file": "t"}, "token_file needs TLS"),
        ({"tls_server_name": "x"}, "tls_server_name needs TLS"),
    ],
)
def test_combinations(keys, message):
    with pytest.raises(ConfigError, match=message):
        CredentialsConfig(**keys).check()


def test_load_reads_files_and_names_a_bad_one(tmp_path):
    ca = DevCA.create()
    ca.write_ca(tmp_path / "ca.pem")
    ca.issue("a", client=True).write(tmp_path / "a")
    (tmp_path / "tok").write_text("ferry_x\n")
    cfg = CredentialsConfig(
        tls_ca=str(tmp_path / "ca.pem"),
        tls_cert=str(tmp_path / "a.pem"),
        tls_key=str(tmp_path / "a.key"),
        token_file=str(tmp_path / "tok"),
    )
    got = credentials.load(cfg)
    assert got.token == "ferry_x" and got.tls.cert == (tmp_path / "a.pem").read_bytes()
    assert credentials.load(CredentialsConfig()) == credentials.Credentials()
    cfg.token_file = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match=f"token file {tmp_path}/nope"):
        credentials.load(cfg)
