from ferry.v1 import payload_pb2 as _payload_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MatchOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EQ: _ClassVar[MatchOp]
    NEQ: _ClassVar[MatchOp]
    RE: _ClassVar[MatchOp]
    NRE: _ClassVar[MatchOp]
EQ: MatchOp
NEQ: MatchOp
RE: MatchOp
NRE: MatchOp

class Matcher(_message.Message):
    __slots__ = ("label", "op", "value")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    label: str
    op: MatchOp
    value: str
    def __init__(self, label: _Optional[str] = ..., op: _Optional[_Union[MatchOp, str]] = ..., value: _Optional[str] = ...) -> None: ...

class QueryRangeRequest(_message.Message):
    __slots__ = ("metric", "matchers", "start_ms", "end_ms", "step_ms", "agg", "group_by")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    STEP_MS_FIELD_NUMBER: _ClassVar[int]
    AGG_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    metric: str
    matchers: _containers.RepeatedCompositeFieldContainer[Matcher]
    start_ms: int
    end_ms: int
    step_ms: int
    agg: str
    group_by: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, metric: _Optional[str] = ..., matchers: _Optional[_Iterable[_Union[Matcher, _Mapping]]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., step_ms: _Optional[int] = ..., agg: _Optional[str] = ..., group_by: _Optional[_Iterable[str]] = ...) -> None: ...

class SeriesPoints(_message.Message):
    __slots__ = ("metric", "labels", "time_ms", "value")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    metric: str
    labels: _containers.ScalarMap[str, str]
    time_ms: _containers.RepeatedScalarFieldContainer[int]
    value: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, metric: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., time_ms: _Optional[_Iterable[int]] = ..., value: _Optional[_Iterable[float]] = ...) -> None: ...

class QueryRangeResponse(_message.Message):
    __slots__ = ("series",)
    SERIES_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[SeriesPoints]
    def __init__(self, series: _Optional[_Iterable[_Union[SeriesPoints, _Mapping]]] = ...) -> None: ...

class ListSeriesRequest(_message.Message):
    __slots__ = ("metric", "matchers", "limit")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    metric: str
    matchers: _containers.RepeatedCompositeFieldContainer[Matcher]
    limit: int
    def __init__(self, metric: _Optional[str] = ..., matchers: _Optional[_Iterable[_Union[Matcher, _Mapping]]] = ..., limit: _Optional[int] = ...) -> None: ...

class SeriesInfo(_message.Message):
    __slots__ = ("metric", "labels", "kind", "unit", "first_seen_ms", "last_seen_ms")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_MS_FIELD_NUMBER: _ClassVar[int]
    metric: str
    labels: _containers.ScalarMap[str, str]
    kind: _payload_pb2.MetricKind
    unit: str
    first_seen_ms: int
    last_seen_ms: int
    def __init__(self, metric: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., kind: _Optional[_Union[_payload_pb2.MetricKind, str]] = ..., unit: _Optional[str] = ..., first_seen_ms: _Optional[int] = ..., last_seen_ms: _Optional[int] = ...) -> None: ...

class ListSeriesResponse(_message.Message):
    __slots__ = ("series", "truncated")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[SeriesInfo]
    truncated: bool
    def __init__(self, series: _Optional[_Iterable[_Union[SeriesInfo, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class SearchEventsRequest(_message.Message):
    __slots__ = ("start_unix_ns", "end_unix_ns", "equals", "contains", "limit", "count_only")
    class EqualsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    START_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    END_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    CONTAINS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    COUNT_ONLY_FIELD_NUMBER: _ClassVar[int]
    start_unix_ns: int
    end_unix_ns: int
    equals: _containers.ScalarMap[str, str]
    contains: str
    limit: int
    count_only: bool
    def __init__(self, start_unix_ns: _Optional[int] = ..., end_unix_ns: _Optional[int] = ..., equals: _Optional[_Mapping[str, str]] = ..., contains: _Optional[str] = ..., limit: _Optional[int] = ..., count_only: _Optional[bool] = ...) -> None: ...

class StoredEvent(_message.Message):
    __slots__ = ("event", "host", "agent_id")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    event: _payload_pb2.Event
    host: str
    agent_id: str
    def __init__(self, event: _Optional[_Union[_payload_pb2.Event, _Mapping]] = ..., host: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class SearchEventsResponse(_message.Message):
    __slots__ = ("events", "truncated", "total")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[StoredEvent]
    truncated: bool
    total: int
    def __init__(self, events: _Optional[_Iterable[_Union[StoredEvent, _Mapping]]] = ..., truncated: _Optional[bool] = ..., total: _Optional[int] = ...) -> None: ...

class SearchLogsRequest(_message.Message):
    __slots__ = ("start_unix_ns", "end_unix_ns", "equals", "contains", "limit", "count_only")
    class EqualsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    START_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    END_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    CONTAINS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    COUNT_ONLY_FIELD_NUMBER: _ClassVar[int]
    start_unix_ns: int
    end_unix_ns: int
    equals: _containers.ScalarMap[str, str]
    contains: str
    limit: int
    count_only: bool
    def __init__(self, start_unix_ns: _Optional[int] = ..., end_unix_ns: _Optional[int] = ..., equals: _Optional[_Mapping[str, str]] = ..., contains: _Optional[str] = ..., limit: _Optional[int] = ..., count_only: _Optional[bool] = ...) -> None: ...

class StoredLog(_message.Message):
    __slots__ = ("log", "host", "agent_id")
    LOG_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    log: _payload_pb2.LogRecord
    host: str
    agent_id: str
    def __init__(self, log: _Optional[_Union[_payload_pb2.LogRecord, _Mapping]] = ..., host: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class SearchLogsResponse(_message.Message):
    __slots__ = ("logs", "truncated", "total")
    LOGS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    logs: _containers.RepeatedCompositeFieldContainer[StoredLog]
    truncated: bool
    total: int
    def __init__(self, logs: _Optional[_Iterable[_Union[StoredLog, _Mapping]]] = ..., truncated: _Optional[bool] = ..., total: _Optional[int] = ...) -> None: ...
