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
    __slots__ = ("metric", "matchers", "start_ms", "end_ms", "step_ms", "agg", "group_by", "resolution", "expr", "topk", "bottomk", "align_ms")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    STEP_MS_FIELD_NUMBER: _ClassVar[int]
    AGG_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    EXPR_FIELD_NUMBER: _ClassVar[int]
    TOPK_FIELD_NUMBER: _ClassVar[int]
    BOTTOMK_FIELD_NUMBER: _ClassVar[int]
    ALIGN_MS_FIELD_NUMBER: _ClassVar[int]
    metric: str
    matchers: _containers.RepeatedCompositeFieldContainer[Matcher]
    start_ms: int
    end_ms: int
    step_ms: int
    agg: str
    group_by: _containers.RepeatedScalarFieldContainer[str]
    resolution: str
    expr: str
    topk: int
    bottomk: int
    align_ms: int
    def __init__(self, metric: _Optional[str] = ..., matchers: _Optional[_Iterable[_Union[Matcher, _Mapping]]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., step_ms: _Optional[int] = ..., agg: _Optional[str] = ..., group_by: _Optional[_Iterable[str]] = ..., resolution: _Optional[str] = ..., expr: _Optional[str] = ..., topk: _Optional[int] = ..., bottomk: _Optional[int] = ..., align_ms: _Optional[int] = ...) -> None: ...

class SeriesPoints(_message.Message):
    __slots__ = ("metric", "labels", "time_ms", "value", "unit")
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
    UNIT_FIELD_NUMBER: _ClassVar[int]
    metric: str
    labels: _containers.ScalarMap[str, str]
    time_ms: _containers.RepeatedScalarFieldContainer[int]
    value: _containers.RepeatedScalarFieldContainer[float]
    unit: str
    def __init__(self, metric: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., time_ms: _Optional[_Iterable[int]] = ..., value: _Optional[_Iterable[float]] = ..., unit: _Optional[str] = ...) -> None: ...

class QueryRangeResponse(_message.Message):
    __slots__ = ("series", "resolution")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[SeriesPoints]
    resolution: str
    def __init__(self, series: _Optional[_Iterable[_Union[SeriesPoints, _Mapping]]] = ..., resolution: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("start_unix_ns", "end_unix_ns", "equals", "contains", "limit", "count_only", "page_token")
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
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    start_unix_ns: int
    end_unix_ns: int
    equals: _containers.ScalarMap[str, str]
    contains: str
    limit: int
    count_only: bool
    page_token: str
    def __init__(self, start_unix_ns: _Optional[int] = ..., end_unix_ns: _Optional[int] = ..., equals: _Optional[_Mapping[str, str]] = ..., contains: _Optional[str] = ..., limit: _Optional[int] = ..., count_only: _Optional[bool] = ..., page_token: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("events", "truncated", "total", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[StoredEvent]
    truncated: bool
    total: int
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[StoredEvent, _Mapping]]] = ..., truncated: _Optional[bool] = ..., total: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SearchLogsRequest(_message.Message):
    __slots__ = ("start_unix_ns", "end_unix_ns", "equals", "contains", "limit", "count_only", "page_token")
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
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    start_unix_ns: int
    end_unix_ns: int
    equals: _containers.ScalarMap[str, str]
    contains: str
    limit: int
    count_only: bool
    page_token: str
    def __init__(self, start_unix_ns: _Optional[int] = ..., end_unix_ns: _Optional[int] = ..., equals: _Optional[_Mapping[str, str]] = ..., contains: _Optional[str] = ..., limit: _Optional[int] = ..., count_only: _Optional[bool] = ..., page_token: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("logs", "truncated", "total", "next_page_token")
    LOGS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    logs: _containers.RepeatedCompositeFieldContainer[StoredLog]
    truncated: bool
    total: int
    next_page_token: str
    def __init__(self, logs: _Optional[_Iterable[_Union[StoredLog, _Mapping]]] = ..., truncated: _Optional[bool] = ..., total: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListLabelValuesRequest(_message.Message):
    __slots__ = ("metric", "matchers", "label", "limit", "start_ms", "end_ms")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    metric: str
    matchers: _containers.RepeatedCompositeFieldContainer[Matcher]
    label: str
    limit: int
    start_ms: int
    end_ms: int
    def __init__(self, metric: _Optional[str] = ..., matchers: _Optional[_Iterable[_Union[Matcher, _Mapping]]] = ..., label: _Optional[str] = ..., limit: _Optional[int] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ...) -> None: ...

class ListLabelValuesResponse(_message.Message):
    __slots__ = ("values", "truncated")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    truncated: bool
    def __init__(self, values: _Optional[_Iterable[str]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentInfo(_message.Message):
    __slots__ = ("agent_id", "host", "version", "address", "last_seen_ms", "lag_ms")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_MS_FIELD_NUMBER: _ClassVar[int]
    LAG_MS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    host: str
    version: str
    address: str
    last_seen_ms: int
    lag_ms: int
    def __init__(self, agent_id: _Optional[str] = ..., host: _Optional[str] = ..., version: _Optional[str] = ..., address: _Optional[str] = ..., last_seen_ms: _Optional[int] = ..., lag_ms: _Optional[int] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentInfo]
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentInfo, _Mapping]]] = ...) -> None: ...

class TopProcessesRequest(_message.Message):
    __slots__ = ("metric", "limit", "matchers", "window_ms")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    metric: str
    limit: int
    matchers: _containers.RepeatedCompositeFieldContainer[Matcher]
    window_ms: int
    def __init__(self, metric: _Optional[str] = ..., limit: _Optional[int] = ..., matchers: _Optional[_Iterable[_Union[Matcher, _Mapping]]] = ..., window_ms: _Optional[int] = ...) -> None: ...

class ProcessRow(_message.Message):
    __slots__ = ("host", "name", "pid", "group", "value", "time_ms", "unit")
    HOST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    host: str
    name: str
    pid: str
    group: str
    value: float
    time_ms: int
    unit: str
    def __init__(self, host: _Optional[str] = ..., name: _Optional[str] = ..., pid: _Optional[str] = ..., group: _Optional[str] = ..., value: _Optional[float] = ..., time_ms: _Optional[int] = ..., unit: _Optional[str] = ...) -> None: ...

class TopProcessesResponse(_message.Message):
    __slots__ = ("processes",)
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessRow]
    def __init__(self, processes: _Optional[_Iterable[_Union[ProcessRow, _Mapping]]] = ...) -> None: ...
