"""Serve an asyncio servicer whose requests are parsed by Ferry, not by grpc.

grpc answers a request it cannot deserialize with UNKNOWN (or ends a stream with an INTERNAL
"Internal error from Core"), which tells a client nothing. `add_servicer` registers every
method of a service with the request parsed inside the handler, so bytes that are not the
request message answer INVALID_ARGUMENT naming their size and the message expected. Used for the
agent's Local service; the collector's Ingest service does the same in its own `register`
(it answers a bad stream message from the handler body, after the acks before it).
Unary-unary and stream-unary methods, which is what Ferry's app-facing services have.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import symbol_database
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message


class _NotAMessage(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _parser(cls: type[Message]):
    def parse(data: bytes) -> Message:
        msg = cls()
        try:
            msg.ParseFromString(data)
        except DecodeError as exc:
            raise _NotAMessage(
                f"request of {len(data)} bytes is not a {cls.DESCRIPTOR.full_name}: {exc}"
            ) from None
        return msg

    return parse


def add_servicer(server: grpc.aio.Server, servicer: Any, service: ServiceDescriptor) -> None:
    """Register `servicer`'s methods of `service` on `server`, requests parsed as above."""
    db = symbol_database.Default()
    handlers = {}
    for method in service.methods:
        parse = _parser(db.GetSymbol(method.input_type.full_name))
        serialize = db.GetSymbol(method.output_type.full_name).SerializeToString
        impl = getattr(servicer, method.name)
        if method.client_streaming and not method.server_streaming:
            handlers[method.name] = grpc.stream_unary_rpc_method_handler(
                _stream_unary(impl, parse), response_serializer=serialize
            )
        elif not method.client_streaming and not method.server_streaming:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary_unary(impl, parse), response_serializer=serialize
            )
        else:
            raise ValueError(
                f"{service.full_name}/{method.name}: server-streaming methods are not handled here"
            )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def _unary_unary(impl, parse):
    async def handler(data: bytes, context: grpc.aio.ServicerContext):
        try:
            request = parse(data)
        except _NotAMessage as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        return await impl(request, context)

    return handler


def _stream_unary(impl, parse):
    async def handler(request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext):
        async def requests():
            async for data in request_iterator:
                yield parse(data)

        try:
            return await impl(requests(), context)
        except _NotAMessage as exc:
            # from the handler, not inside the iterator the servicer is reading
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)

    return handler
