"""Every record kind Ferry carries besides metrics (today events and logs), each declared once.

A kind is one protobuf message per record (payload.proto), a repeated field named after the kind
in `Payload` and in `Records`, a table named after it, and a SearchX RPC (query.proto:
`Search<Kind>Request`, `Search<Kind>Response` with the repeated field `<kind>` of
`Stored<Noun>`, whose field `<noun>` holds the record). Its declaration here says how big each
field may be, which fields a search may filter on or look for text in, and how the `ferry` CLI
shows it; everything else iterates over KINDS: the client (ferry.client.buffer) and the agent
(ferry.agent.local.records, intake, batcher) check and carry records by it, and the collector
validates (collector.validate), builds rows (collector.records_rows), creates the table
(collector.storage.tables, keyed by the kind's name: `ts`, `host`, `agent_id`, then one column
per message field under the field's name), searches (collector.query.search) and prints
(collector.cli.records) by it.

Adding a kind (say `spans`): its declaration here; its message in payload.proto, a `spans` field
in `Payload` and in `Records` (local.proto), and SearchSpans with its messages in query.proto
(`make proto`); its table in collector/storage/tables.py; a migration creating that table in
collector/storage/migrate.py; its retention (`spans_ttl_days`: collector/config.py, SchemaOptions
in collector/storage/schema.py, passed on in collector/main.py); tests. A recording call in
ferry.client (Buffer) only if apps should send it through the client library.

Numpy-free: this module ships in ferry-client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from google.protobuf.message import Message

from ferry.limits import RecordLimits, ValidationError, check_attributes, check_text, check_time
from ferry.v1 import payload_pb2


@dataclass(frozen=True, eq=False)
class RecordKind:
    name: str  # "events": the Payload and Records field, the table, the CLI command
    noun: str  # "event": errors name "event 3"; the record's field in Stored<Noun>
    what: str  # "events", "log records": the plural in messages and help
    message: type[Message]  # payload_pb2.Event; `time_unix_ns` is its time, in ns
    required: str  # a field that may not be empty
    short: tuple[str, ...]  # text of at most max_field_bytes
    attributes: str  # the map field: at most max_attributes pairs; `equals` may name `<it>.KEY`
    equals: tuple[str, ...]  # columns a search's `equals` may name, in the order errors list them
    contains: tuple[str, ...]  # fields a search's `contains` looks in (the map field: its values)
    contains_help: str
    shortcuts: dict[str, str]  # `ferry <kind>` flag → equals key
    table_columns: tuple[str, ...]  # what `ferry <kind>` prints after TIME (the last unpadded)
    long: tuple[str, ...] = ()  # text of at most max_message_bytes
    ids: tuple[str, ...] = ()  # at most max_id_len chars
    # doubles with a `has_<field>` flag: finite when set, stored NULL when not
    optional_numbers: tuple[str, ...] = ()

    @property
    def rpc(self) -> str:
        """The Query method that searches this kind ("SearchEvents")."""
        return "Search" + self.name.capitalize()

    @property
    def stored(self) -> str:
        """The query.proto message of one stored record ("StoredEvent")."""
        return "Stored" + self.noun.capitalize()

    def check(self, record: Message, now_ns: int, limits: RecordLimits, where: str) -> None:
        """`record` (its time set) against the limits; raises ValidationError naming the field."""
        if not getattr(record, self.required):
            raise ValidationError(f"{where}: {self.required} is empty")
        for name in self.short:
            check_text(getattr(record, name), name, limits.max_field_bytes, where)
        for name in self.optional_numbers:
            value = getattr(record, name)
            if getattr(record, f"has_{name}") and not math.isfinite(value):
                raise ValidationError(f"{where}: {name} {value} is not finite")
        for name in self.long:
            check_text(getattr(record, name), name, limits.max_message_bytes, where)
        for name in self.ids:
            size = len(getattr(record, name))
            if size > limits.max_id_len:
                raise ValidationError(f"{where}: {name} is {size} chars > {limits.max_id_len} allowed")
        check_attributes(getattr(record, self.attributes), self.attributes, limits, where)
        t = record.time_unix_ns
        check_time(t, now_ns, limits.max_past_ns, limits.max_future_ns, "ns", where)


EVENTS = RecordKind(
    name="events",
    noun="event",
    what="events",
    message=payload_pb2.Event,
    required="type",
    short=("type", "category", "action", "label", "user_id", "session_id", "service"),
    optional_numbers=("value",),
    attributes="properties",
    equals=("type", "category", "action", "label", "user_id", "session_id", "service", "host", "agent_id"),
    contains=("label", "action", "properties"),
    contains_help="case-insensitive substring of the label, the action or any property value",
    shortcuts={"type": "type", "category": "category", "service": "service", "user": "user_id"},
    table_columns=(
        "host",
        "service",
        "type",
        "category",
        "action",
        "label",
        "value",
        "user_id",
        "properties",
    ),
)

LOGS = RecordKind(
    name="logs",
    noun="log",
    what="log records",
    message=payload_pb2.LogRecord,
    required="level",
    short=("level", "service"),
    long=("message",),
    ids=("trace_id", "span_id"),
    attributes="attributes",
    equals=("level", "service", "host", "agent_id", "trace_id", "span_id"),
    contains=("message",),
    contains_help="case-insensitive substring of the message",
    shortcuts={"level": "level", "service": "service", "trace": "trace_id"},
    table_columns=("host", "service", "level", "message", "attributes"),
)

KINDS = (EVENTS, LOGS)
BY_NAME = {k.name: k for k in KINDS}


def count(message: Message) -> int:
    """Records of every kind in a `Payload` or `Records` message."""
    return sum(len(getattr(message, k.name)) for k in KINDS)
