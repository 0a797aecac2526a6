from threadline.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetIngestStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrackedFile(_message.Message):
    __slots__ = ("source", "size", "read_offset", "durable_offset")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    READ_OFFSET_FIELD_NUMBER: _ClassVar[int]
    DURABLE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    source: _common_pb2.Source
    size: int
    read_offset: int
    durable_offset: int
    def __init__(self, source: _Optional[_Union[_common_pb2.Source, _Mapping]] = ..., size: _Optional[int] = ..., read_offset: _Optional[int] = ..., durable_offset: _Optional[int] = ...) -> None: ...

class IngestStatus(_message.Message):
    __slots__ = ("roots", "files", "lines_read", "batches_in_flight", "idle")
    ROOTS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    LINES_READ_FIELD_NUMBER: _ClassVar[int]
    BATCHES_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    IDLE_FIELD_NUMBER: _ClassVar[int]
    roots: _containers.RepeatedScalarFieldContainer[str]
    files: _containers.RepeatedCompositeFieldContainer[TrackedFile]
    lines_read: int
    batches_in_flight: int
    idle: bool
    def __init__(self, roots: _Optional[_Iterable[str]] = ..., files: _Optional[_Iterable[_Union[TrackedFile, _Mapping]]] = ..., lines_read: _Optional[int] = ..., batches_in_flight: _Optional[int] = ..., idle: _Optional[bool] = ...) -> None: ...
