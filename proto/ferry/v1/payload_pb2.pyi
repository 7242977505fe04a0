from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MetricKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_KIND_UNSPECIFIED: _ClassVar[MetricKind]
    GAUGE: _ClassVar[MetricKind]
    COUNTER: _ClassVar[MetricKind]
    DELTA: _ClassVar[MetricKind]
    HISTOGRAM: _ClassVar[MetricKind]
METRIC_KIND_UNSPECIFIED: MetricKind
GAUGE: MetricKind
COUNTER: MetricKind
DELTA: MetricKind
HISTOGRAM: MetricKind

class Resource(_message.Message):
    __slots__ = ("host", "agent_id", "labels", "agent_version")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HOST_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    host: str
    agent_id: str
    labels: _containers.ScalarMap[str, str]
    agent_version: str
    def __init__(self, host: _Optional[str] = ..., agent_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., agent_version: _Optional[str] = ...) -> None: ...

class Series(_message.Message):
    __slots__ = ("name", "kind", "unit", "label_keys", "label_values", "bounds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    LABEL_KEYS_FIELD_NUMBER: _ClassVar[int]
    LABEL_VALUES_FIELD_NUMBER: _ClassVar[int]
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: MetricKind
    unit: str
    label_keys: _containers.RepeatedScalarFieldContainer[str]
    label_values: _containers.RepeatedScalarFieldContainer[str]
    bounds: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[MetricKind, str]] = ..., unit: _Optional[str] = ..., label_keys: _Optional[_Iterable[str]] = ..., label_values: _Optional[_Iterable[str]] = ..., bounds: _Optional[_Iterable[float]] = ...) -> None: ...

class MetricColumns(_message.Message):
    __slots__ = ("series", "point_count", "series_ref", "time_ms", "value", "bucket_counts", "series_ref_delta")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SERIES_REF_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNTS_FIELD_NUMBER: _ClassVar[int]
    SERIES_REF_DELTA_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[Series]
    point_count: int
    series_ref: bytes
    time_ms: bytes
    value: bytes
    bucket_counts: bytes
    series_ref_delta: bytes
    def __init__(self, series: _Optional[_Iterable[_Union[Series, _Mapping]]] = ..., point_count: _Optional[int] = ..., series_ref: _Optional[bytes] = ..., time_ms: _Optional[bytes] = ..., value: _Optional[bytes] = ..., bucket_counts: _Optional[bytes] = ..., series_ref_delta: _Optional[bytes] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("time_unix_ns", "type", "category", "action", "label", "value", "has_value", "user_id", "session_id", "properties", "service")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HAS_VALUE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    time_unix_ns: int
    type: str
    category: str
    action: str
    label: str
    value: float
    has_value: bool
    user_id: str
    session_id: str
    properties: _containers.ScalarMap[str, str]
    service: str
    def __init__(self, time_unix_ns: _Optional[int] = ..., type: _Optional[str] = ..., category: _Optional[str] = ..., action: _Optional[str] = ..., label: _Optional[str] = ..., value: _Optional[float] = ..., has_value: _Optional[bool] = ..., user_id: _Optional[str] = ..., session_id: _Optional[str] = ..., properties: _Optional[_Mapping[str, str]] = ..., service: _Optional[str] = ...) -> None: ...

class LogRecord(_message.Message):
    __slots__ = ("time_unix_ns", "level", "message", "service", "attributes", "trace_id", "span_id")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TIME_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    time_unix_ns: int
    level: str
    message: str
    service: str
    attributes: _containers.ScalarMap[str, str]
    trace_id: str
    span_id: str
    def __init__(self, time_unix_ns: _Optional[int] = ..., level: _Optional[str] = ..., message: _Optional[str] = ..., service: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ...) -> None: ...

class Payload(_message.Message):
    __slots__ = ("resource", "metrics", "events", "logs")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    resource: Resource
    metrics: MetricColumns
    events: _containers.RepeatedCompositeFieldContainer[Event]
    logs: _containers.RepeatedCompositeFieldContainer[LogRecord]
    def __init__(self, resource: _Optional[_Union[Resource, _Mapping]] = ..., metrics: _Optional[_Union[MetricColumns, _Mapping]] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., logs: _Optional[_Iterable[_Union[LogRecord, _Mapping]]] = ...) -> None: ...

class StreamPayload(_message.Message):
    __slots__ = ("resource", "reset", "first_id", "series", "point_count", "id_delta", "time_delta", "value_mode", "value_delta", "value_bits", "bucket_counts", "events", "logs")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    FIRST_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    ID_DELTA_FIELD_NUMBER: _ClassVar[int]
    TIME_DELTA_FIELD_NUMBER: _ClassVar[int]
    VALUE_MODE_FIELD_NUMBER: _ClassVar[int]
    VALUE_DELTA_FIELD_NUMBER: _ClassVar[int]
    VALUE_BITS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNTS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    resource: Resource
    reset: bool
    first_id: int
    series: _containers.RepeatedCompositeFieldContainer[Series]
    point_count: int
    id_delta: bytes
    time_delta: bytes
    value_mode: bytes
    value_delta: bytes
    value_bits: bytes
    bucket_counts: bytes
    events: _containers.RepeatedCompositeFieldContainer[Event]
    logs: _containers.RepeatedCompositeFieldContainer[LogRecord]
    def __init__(self, resource: _Optional[_Union[Resource, _Mapping]] = ..., reset: _Optional[bool] = ..., first_id: _Optional[int] = ..., series: _Optional[_Iterable[_Union[Series, _Mapping]]] = ..., point_count: _Optional[int] = ..., id_delta: _Optional[bytes] = ..., time_delta: _Optional[bytes] = ..., value_mode: _Optional[bytes] = ..., value_delta: _Optional[bytes] = ..., value_bits: _Optional[bytes] = ..., bucket_counts: _Optional[bytes] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., logs: _Optional[_Iterable[_Union[LogRecord, _Mapping]]] = ...) -> None: ...
