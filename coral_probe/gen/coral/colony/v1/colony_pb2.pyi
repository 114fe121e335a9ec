from coral.agent.v1 import agent_pb2 as _agent_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmittedEvent(_message.Message):
    __slots__ = ("id", "seq", "timestamp_us", "name", "data_json", "severity", "script_id", "execution_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    seq: int
    timestamp_us: int
    name: str
    data_json: str
    severity: str
    script_id: str
    execution_id: str
    def __init__(self, id: _Optional[str] = ..., seq: _Optional[int] = ..., timestamp_us: _Optional[int] = ..., name: _Optional[str] = ..., data_json: _Optional[str] = ..., severity: _Optional[str] = ..., script_id: _Optional[str] = ..., execution_id: _Optional[str] = ...) -> None: ...

class EmitBatch(_message.Message):
    __slots__ = ("agent_id", "events")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    events: _containers.RepeatedCompositeFieldContainer[EmittedEvent]
    def __init__(self, agent_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[EmittedEvent, _Mapping]]] = ...) -> None: ...

class EmitAck(_message.Message):
    __slots__ = ("through_seq", "stored")
    THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    through_seq: int
    stored: int
    def __init__(self, through_seq: _Optional[int] = ..., stored: _Optional[int] = ...) -> None: ...

class FleetRunRequest(_message.Message):
    __slots__ = ("run", "service")
    RUN_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    run: _agent_pb2.RunScriptRequest
    service: str
    def __init__(self, run: _Optional[_Union[_agent_pb2.RunScriptRequest, _Mapping]] = ..., service: _Optional[str] = ...) -> None: ...

class FleetRunOutput(_message.Message):
    __slots__ = ("agent_id", "output", "error")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    output: _agent_pb2.RunScriptOutput
    error: str
    def __init__(self, agent_id: _Optional[str] = ..., output: _Optional[_Union[_agent_pb2.RunScriptOutput, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...
