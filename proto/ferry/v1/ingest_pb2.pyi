from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NONE: _ClassVar[Encoding]
    LZ4_FRAME: _ClassVar[Encoding]
    STREAM_ZSTD: _ClassVar[Encoding]

class AckStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACK_STATUS_UNSPECIFIED: _ClassVar[AckStatus]
    OK: _ClassVar[AckStatus]
    DUPLICATE: _ClassVar[AckStatus]
    REJECTED: _ClassVar[AckStatus]
NONE: Encoding
LZ4_FRAME: Encoding
STREAM_ZSTD: Encoding
ACK_STATUS_UNSPECIFIED: AckStatus
OK: AckStatus
DUPLICATE: AckStatus
REJECTED: AckStatus

class Frame(_message.Message):
    __slots__ = ("agent_id", "epoch", "seq", "encoding", "raw_size", "payload", "point_count")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    RAW_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    epoch: int
    seq: int
    encoding: Encoding
    raw_size: int
    payload: bytes
    point_count: int
    def __init__(self, agent_id: _Optional[str] = ..., epoch: _Optional[int] = ..., seq: _Optional[int] = ..., encoding: _Optional[_Union[Encoding, str]] = ..., raw_size: _Optional[int] = ..., payload: _Optional[bytes] = ..., point_count: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("seq", "status", "message", "retry_after_ms", "epoch", "code")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    status: AckStatus
    message: str
    retry_after_ms: int
    epoch: int
    code: int
    def __init__(self, seq: _Optional[int] = ..., status: _Optional[_Union[AckStatus, str]] = ..., message: _Optional[str] = ..., retry_after_ms: _Optional[int] = ..., epoch: _Optional[int] = ..., code: _Optional[int] = ...) -> None: ...
