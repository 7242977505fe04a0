from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AlertInstance(_message.Message):
    __slots__ = ("id", "rule", "labels", "state", "value", "has_value", "threshold", "severity", "annotations", "active_since_ms", "fired_at_ms", "resolved_at_ms", "acked_by", "acked_at_ms", "ack_note")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HAS_VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    FIRED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ACKED_BY_FIELD_NUMBER: _ClassVar[int]
    ACKED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ACK_NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    rule: str
    labels: _containers.ScalarMap[str, str]
    state: str
    value: float
    has_value: bool
    threshold: str
    severity: str
    annotations: _containers.ScalarMap[str, str]
    active_since_ms: int
    fired_at_ms: int
    resolved_at_ms: int
    acked_by: str
    acked_at_ms: int
    ack_note: str
    def __init__(self, id: _Optional[str] = ..., rule: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., state: _Optional[str] = ..., value: _Optional[float] = ..., has_value: _Optional[bool] = ..., threshold: _Optional[str] = ..., severity: _Optional[str] = ..., annotations: _Optional[_Mapping[str, str]] = ..., active_since_ms: _Optional[int] = ..., fired_at_ms: _Optional[int] = ..., resolved_at_ms: _Optional[int] = ..., acked_by: _Optional[str] = ..., acked_at_ms: _Optional[int] = ..., ack_note: _Optional[str] = ...) -> None: ...

class RuleStatus(_message.Message):
    __slots__ = ("name", "health", "message", "last_eval_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_EVAL_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    health: str
    message: str
    last_eval_ms: int
    def __init__(self, name: _Optional[str] = ..., health: _Optional[str] = ..., message: _Optional[str] = ..., last_eval_ms: _Optional[int] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts", "rules")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[AlertInstance]
    rules: _containers.RepeatedCompositeFieldContainer[RuleStatus]
    def __init__(self, alerts: _Optional[_Iterable[_Union[AlertInstance, _Mapping]]] = ..., rules: _Optional[_Iterable[_Union[RuleStatus, _Mapping]]] = ...) -> None: ...

class AckRequest(_message.Message):
    __slots__ = ("id", "note")
    ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    note: str
    def __init__(self, id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class AckResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: AlertInstance
    def __init__(self, alert: _Optional[_Union[AlertInstance, _Mapping]] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("since_ms", "limit", "state")
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    since_ms: int
    limit: int
    state: str
    def __init__(self, since_ms: _Optional[int] = ..., limit: _Optional[int] = ..., state: _Optional[str] = ...) -> None: ...

class AlertTransition(_message.Message):
    __slots__ = ("time_ms", "rule", "id", "labels", "state", "previous", "value", "has_value", "threshold", "severity", "annotations")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HAS_VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    rule: str
    id: str
    labels: _containers.ScalarMap[str, str]
    state: str
    previous: str
    value: float
    has_value: bool
    threshold: str
    severity: str
    annotations: _containers.ScalarMap[str, str]
    def __init__(self, time_ms: _Optional[int] = ..., rule: _Optional[str] = ..., id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., state: _Optional[str] = ..., previous: _Optional[str] = ..., value: _Optional[float] = ..., has_value: _Optional[bool] = ..., threshold: _Optional[str] = ..., severity: _Optional[str] = ..., annotations: _Optional[_Mapping[str, str]] = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ("transitions",)
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    transitions: _containers.RepeatedCompositeFieldContainer[AlertTransition]
    def __init__(self, transitions: _Optional[_Iterable[_Union[AlertTransition, _Mapping]]] = ...) -> None: ...

class Silence(_message.Message):
    __slots__ = ("id", "matchers", "starts_ms", "ends_ms", "comment", "created_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    STARTS_MS_FIELD_NUMBER: _ClassVar[int]
    ENDS_MS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    matchers: str
    starts_ms: int
    ends_ms: int
    comment: str
    created_by: str
    def __init__(self, id: _Optional[str] = ..., matchers: _Optional[str] = ..., starts_ms: _Optional[int] = ..., ends_ms: _Optional[int] = ..., comment: _Optional[str] = ..., created_by: _Optional[str] = ...) -> None: ...

class AddSilenceRequest(_message.Message):
    __slots__ = ("matchers", "duration_ms", "comment", "starts_ms")
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    STARTS_MS_FIELD_NUMBER: _ClassVar[int]
    matchers: str
    duration_ms: int
    comment: str
    starts_ms: int
    def __init__(self, matchers: _Optional[str] = ..., duration_ms: _Optional[int] = ..., comment: _Optional[str] = ..., starts_ms: _Optional[int] = ...) -> None: ...

class AddSilenceResponse(_message.Message):
    __slots__ = ("silence",)
    SILENCE_FIELD_NUMBER: _ClassVar[int]
    silence: Silence
    def __init__(self, silence: _Optional[_Union[Silence, _Mapping]] = ...) -> None: ...

class ListSilencesRequest(_message.Message):
    __slots__ = ("include_expired",)
    INCLUDE_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    include_expired: bool
    def __init__(self, include_expired: _Optional[bool] = ...) -> None: ...

class ListSilencesResponse(_message.Message):
    __slots__ = ("silences",)
    SILENCES_FIELD_NUMBER: _ClassVar[int]
    silences: _containers.RepeatedCompositeFieldContainer[Silence]
    def __init__(self, silences: _Optional[_Iterable[_Union[Silence, _Mapping]]] = ...) -> None: ...

class ExpireSilenceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ExpireSilenceResponse(_message.Message):
    __slots__ = ("silence",)
    SILENCE_FIELD_NUMBER: _ClassVar[int]
    silence: Silence
    def __init__(self, silence: _Optional[_Union[Silence, _Mapping]] = ...) -> None: ...
