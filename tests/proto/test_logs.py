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
