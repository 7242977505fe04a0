from ferry.v1 import payload_pb2 as _payload_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MetricRecord(_message.Message):
    __slots__ = ("name", "kind", "value", "labels", "time_unix_ms", "unit")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: _payload_pb2.MetricKind
    value: float
    labels: _containers.ScalarMap[str, str]
    time_unix_ms: int
    unit: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[_payload_pb2.MetricKind, str]] = ..., value: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., time_unix_ms: _Optional[int] = ..., unit: _Optional[str] = ...) -> None: ...

class HistogramRecord(_message.Message):
    __slots__ = ("name", "labels", "bounds", "counts", "sum", "time_unix_ms", "unit")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    bounds: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    sum: float
    time_unix_ms: int
    unit: str
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., bounds: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ..., sum: _Optional[float] = ..., time_unix_ms: _Optional[int] = ..., unit: _Optional[str] = ...) -> None: ...

class Records(_message.Message):
    __slots__ = ("metrics", "histograms", "events", "logs")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAMS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricRecord]
    histograms: _containers.RepeatedCompositeFieldContainer[HistogramRecord]
    events: _containers.RepeatedCompositeFieldContainer[_payload_pb2.Event]
    logs: _containers.RepeatedCompositeFieldContainer[_payload_pb2.LogRecord]
    def __init__(self, metrics: _Optional[_Iterable[_Union[MetricRecord, _Mapping]]] = ..., histograms: _Optional[_Iterable[_Union[HistogramRecord, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[_payload_pb2.Event, _Mapping]]] = ..., logs: _Optional[_Iterable[_Union[_payload_pb2.LogRecord, _Mapping]]] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    def __init__(self, accepted: _Optional[int] = ...) -> None: ...
