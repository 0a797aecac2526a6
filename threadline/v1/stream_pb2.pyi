from threadline.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SubscribeRequest(_message.Message):
    __slots__ = ("project_key", "session_id", "since_sequence")
    PROJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    project_key: str
    session_id: str
    since_sequence: int
    def __init__(self, project_key: _Optional[str] = ..., session_id: _Optional[str] = ..., since_sequence: _Optional[int] = ...) -> None: ...

class GetStreamStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamStatus(_message.Message):
    __slots__ = ("head_sequence", "grpc_subscribers", "websocket_clients", "slow_disconnects", "store_error")
    HEAD_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    GRPC_SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    WEBSOCKET_CLIENTS_FIELD_NUMBER: _ClassVar[int]
    SLOW_DISCONNECTS_FIELD_NUMBER: _ClassVar[int]
    STORE_ERROR_FIELD_NUMBER: _ClassVar[int]
    head_sequence: int
    grpc_subscribers: int
    websocket_clients: int
    slow_disconnects: int
    store_error: str
    def __init__(self, head_sequence: _Optional[int] = ..., grpc_subscribers: _Optional[int] = ..., websocket_clients: _Optional[int] = ..., slow_disconnects: _Optional[int] = ..., store_error: _Optional[str] = ...) -> None: ...
