"""`ferry send NAME VALUE`: one metric record to a local agent's Local service."""

from __future__ import annotations

import argparse
import os

from ferry import transport
from ferry.client.auth import LocalToken
from ferry.series import KINDS_BY_NAME
from ferry.v1 import local_pb2, local_pb2_grpc

DEFAULT_AGENT = os.environ.get("FERRY_AGENT", "127.0.0.1:4771")
SEND_KINDS = ("gauge", "counter", "delta")


def add_parser(sub) -> None:
    s = sub.add_parser("send", help="push one metric record to a local agent")
    s.add_argument("name", metavar="NAME")
    s.add_argument("value", metavar="VALUE", type=float)
    s.add_argument("--kind", choices=SEND_KINDS, default="gauge")
    s.add_argument("--label", action="append", default=[], metavar="K=V", help="repeatable")
    s.add_argument("--unit", default="")
    s.add_argument(
        "--agent",
        default=DEFAULT_AGENT,
        metavar="TARGET",
        help=f"HOST:PORT or unix:/path (default {DEFAULT_AGENT}; env FERRY_AGENT)",
    )
    s.add_argument("--timeout", type=float, default=10.0)
    s.add_argument(
        "--local-token-file",
        default=None,
        metavar="FILE",
        help="the agent's local token (its local_token_file), else env FERRY_LOCAL_TOKEN",
    )


class LabelError(ValueError):
    """A usage error of `ferry send`: a --label that is not K=V, a local token that cannot be read."""


def labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LabelError(f"--label {pair!r} is not K=V")
        out[key] = value
    return out


def run_send(args: argparse.Namespace) -> str:
    record = local_pb2.MetricRecord(
        name=args.name,
        kind=KINDS_BY_NAME[args.kind],
        value=args.value,
        labels=labels(args.label),
        unit=args.unit,
    )
    try:
        token = LocalToken(token_file=args.local_token_file)
    except (OSError, ValueError) as exc:
        raise LabelError(f"local token: {exc}") from None
    with transport.channel(args.agent) as channel:
        resp = local_pb2_grpc.LocalStub(channel).Send(
            local_pb2.Records(metrics=[record]), timeout=args.timeout, metadata=token.metadata
        )
    return f"accepted {resp.accepted}\n"
