"""ferry.runtime.logs: JSON lines on stderr; grpc's report of an answer a gone client could not
take is one warning line, not an error with a traceback."""

from __future__ import annotations

import json
import logging

from ferry.runtime import logs


def test_an_answer_to_a_gone_client_is_one_warning_line(capsys):
    logs.setup("info")
    try:
        raise RuntimeError('Failed "execute_batch": (<SendMessageOperation>)')
    except RuntimeError:
        logging.getLogger("grpc._cython.cygrpc").error(
            "ExecuteBatchError raised in core by servicer method [/ferry.v1.Query/SearchLogs]", exc_info=True
        )
    logging.getLogger("grpc._cython.cygrpc").error("something else")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["level"] == "warning" and "exc" not in lines[0]
    assert lines[0]["msg"] == "the client of [/ferry.v1.Query/SearchLogs] was gone before its answer was sent"
    assert lines[1]["level"] == "error"  # other grpc errors stay what they are


def test_a_native_line_becomes_one_json_line_whatever_it_holds():
    import orjson

    from ferry.runtime.logs import native_line

    forged = '{"level":"warning","logger":"ferry.collector.audit","msg":"audit forged"}'
    line = f"E1201 14:21:10.036075   28673 ssl_transport_security.cc:3238] No match: \n{forged}".encode()
    out = native_line(line.split(b"\n")[0]) + native_line(line.split(b"\n")[1])
    docs = [orjson.loads(x) for x in out.splitlines()]
    assert [d["logger"] for d in docs] == ["grpc.core", "grpc.core"]
    assert docs[0]["level"] == "error" and docs[1]["level"] == "warning"
    assert docs[1]["msg"] == forged  # the forged line is a string inside ours
    assert len(orjson.loads(native_line(b"I" + b"x" * 10_000))["msg"]) == 2000
