import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScriptStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCRIPT_STATUS_UNSPECIFIED: _ClassVar[ScriptStatus]
    SCRIPT_STATUS_PENDING: _ClassVar[ScriptStatus]
    SCRIPT_STATUS_RUNNING: _ClassVar[ScriptStatus]
    SCRIPT_STATUS_STOPPED: _ClassVar[ScriptStatus]
    SCRIPT_STATUS_FAILED: _ClassVar[ScriptStatus]
    SCRIPT_STATUS_COMPLETED: _ClassVar[ScriptStatus]
    SCRIPT_STATUS_INTERRUPTED: _ClassVar[ScriptStatus]

class ScriptMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCRIPT_MODE_UNSPECIFIED: _ClassVar[ScriptMode]
    SCRIPT_MODE_AD_HOC: _ClassVar[ScriptMode]
    SCRIPT_MODE_DAEMON: _ClassVar[ScriptMode]
SCRIPT_STATUS_UNSPECIFIED: ScriptStatus
SCRIPT_STATUS_PENDING: ScriptStatus
SCRIPT_STATUS_RUNNING: ScriptStatus
SCRIPT_STATUS_STOPPED: ScriptStatus
SCRIPT_STATUS_FAILED: ScriptStatus
SCRIPT_STATUS_COMPLETED: ScriptStatus
SCRIPT_STATUS_INTERRUPTED: ScriptStatus
SCRIPT_MODE_UNSPECIFIED: ScriptMode
SCRIPT_MODE_AD_HOC: ScriptMode
SCRIPT_MODE_DAEMON: ScriptMode

class ManualTrigger(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ScheduleTrigger(_message.Message):
    __slots__ = ("cron",)
    CRON_FIELD_NUMBER: _ClassVar[int]
    cron: str
    def __init__(self, cron: _Optional[str] = ...) -> None: ...

class EventTrigger(_message.Message):
    __slots__ = ("condition", "check_interval_seconds")
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    CHECK_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    condition: str
    check_interval_seconds: int
    def __init__(self, condition: _Optional[str] = ..., check_interval_seconds: _Optional[int] = ...) -> None: ...

class ScriptTrigger(_message.Message):
    __slots__ = ("manual", "schedule", "event")
    MANUAL_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    manual: ManualTrigger
    schedule: ScheduleTrigger
    event: EventTrigger
    def __init__(self, manual: _Optional[_Union[ManualTrigger, _Mapping]] = ..., schedule: _Optional[_Union[ScheduleTrigger, _Mapping]] = ..., event: _Optional[_Union[EventTrigger, _Mapping]] = ...) -> None: ...

class Script(_message.Message):
    __slots__ = ("id", "name", "code", "version", "targets", "trigger", "created_at", "created_by", "params", "mode", "timeout_seconds", "status")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    code: str
    version: int
    targets: _containers.RepeatedScalarFieldContainer[str]
    trigger: ScriptTrigger
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    params: _containers.ScalarMap[str, str]
    mode: ScriptMode
    timeout_seconds: int
    status: ScriptStatus
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., code: _Optional[str] = ..., version: _Optional[int] = ..., targets: _Optional[_Iterable[str]] = ..., trigger: _Optional[_Union[ScriptTrigger, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., mode: _Optional[_Union[ScriptMode, str]] = ..., timeout_seconds: _Optional[int] = ..., status: _Optional[_Union[ScriptStatus, str]] = ...) -> None: ...

class ScriptEvent(_message.Message):
    __slots__ = ("name", "data", "timestamp")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    name: str
    data: str
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., data: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ScriptExecution(_message.Message):
    __slots__ = ("execution_id", "script_id", "agent_id", "status", "started_at", "completed_at", "exit_code", "stdout", "stderr", "events", "end_reason", "has_exit_code")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    HAS_EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    script_id: str
    agent_id: str
    status: ScriptStatus
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    exit_code: int
    stdout: str
    stderr: str
    events: _containers.RepeatedCompositeFieldContainer[ScriptEvent]
    end_reason: str
    has_exit_code: bool
    def __init__(self, execution_id: _Optional[str] = ..., script_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., status: _Optional[_Union[ScriptStatus, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., events: _Optional[_Iterable[_Union[ScriptEvent, _Mapping]]] = ..., end_reason: _Optional[str] = ..., has_exit_code: _Optional[bool] = ...) -> None: ...

class ScriptLogEntry(_message.Message):
    __slots__ = ("timestamp", "stream", "line", "execution_id", "lost")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    timestamp: _timestamp_pb2.Timestamp
    stream: str
    line: str
    execution_id: str
    lost: int
    def __init__(self, timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stream: _Optional[str] = ..., line: _Optional[str] = ..., execution_id: _Optional[str] = ..., lost: _Optional[int] = ...) -> None: ...

class ScriptLogBatch(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ScriptLogEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[ScriptLogEntry, _Mapping]]] = ...) -> None: ...

class DeployScriptRequest(_message.Message):
    __slots__ = ("script",)
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    script: Script
    def __init__(self, script: _Optional[_Union[Script, _Mapping]] = ...) -> None: ...

class DeployScriptResponse(_message.Message):
    __slots__ = ("script_id", "version", "deployed_to", "status", "replaced_script_id")
    SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEPLOYED_TO_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REPLACED_SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    script_id: str
    version: int
    deployed_to: _containers.RepeatedScalarFieldContainer[str]
    status: ScriptStatus
    replaced_script_id: str
    def __init__(self, script_id: _Optional[str] = ..., version: _Optional[int] = ..., deployed_to: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[ScriptStatus, str]] = ..., replaced_script_id: _Optional[str] = ...) -> None: ...

class StopScriptRequest(_message.Message):
    __slots__ = ("script_id", "ref")
    SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    script_id: str
    ref: str
    def __init__(self, script_id: _Optional[str] = ..., ref: _Optional[str] = ...) -> None: ...

class StopScriptResponse(_message.Message):
    __slots__ = ("success", "script_id", "status")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    success: bool
    script_id: str
    status: ScriptStatus
    def __init__(self, success: _Optional[bool] = ..., script_id: _Optional[str] = ..., status: _Optional[_Union[ScriptStatus, str]] = ...) -> None: ...

class DeleteScriptRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class DeleteScriptResponse(_message.Message):
    __slots__ = ("success", "script_ids")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_IDS_FIELD_NUMBER: _ClassVar[int]
    success: bool
    script_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, success: _Optional[bool] = ..., script_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListScriptsRequest(_message.Message):
    __slots__ = ("status", "all_versions")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ALL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    status: ScriptStatus
    all_versions: bool
    def __init__(self, status: _Optional[_Union[ScriptStatus, str]] = ..., all_versions: _Optional[bool] = ...) -> None: ...

class ListScriptsResponse(_message.Message):
    __slots__ = ("scripts",)
    SCRIPTS_FIELD_NUMBER: _ClassVar[int]
    scripts: _containers.RepeatedCompositeFieldContainer[Script]
    def __init__(self, scripts: _Optional[_Iterable[_Union[Script, _Mapping]]] = ...) -> None: ...

class GetScriptStatusRequest(_message.Message):
    __slots__ = ("script_id", "ref", "tail")
    SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    script_id: str
    ref: str
    tail: int
    def __init__(self, script_id: _Optional[str] = ..., ref: _Optional[str] = ..., tail: _Optional[int] = ...) -> None: ...

class GetScriptStatusResponse(_message.Message):
    __slots__ = ("script_id", "status", "executions", "script")
    SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    script_id: str
    status: ScriptStatus
    executions: _containers.RepeatedCompositeFieldContainer[ScriptExecution]
    script: Script
    def __init__(self, script_id: _Optional[str] = ..., status: _Optional[_Union[ScriptStatus, str]] = ..., executions: _Optional[_Iterable[_Union[ScriptExecution, _Mapping]]] = ..., script: _Optional[_Union[Script, _Mapping]] = ...) -> None: ...

class StreamScriptLogsRequest(_message.Message):
    __slots__ = ("script_id", "follow", "ref", "tail", "execution_id")
    SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    script_id: str
    follow: bool
    ref: str
    tail: int
    execution_id: str
    def __init__(self, script_id: _Optional[str] = ..., follow: _Optional[bool] = ..., ref: _Optional[str] = ..., tail: _Optional[int] = ..., execution_id: _Optional[str] = ...) -> None: ...

class RunScriptRequest(_message.Message):
    __slots__ = ("code", "params", "mode", "timeout_seconds", "pid", "binary", "name", "created_by")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    code: str
    params: _containers.ScalarMap[str, str]
    mode: ScriptMode
    timeout_seconds: int
    pid: int
    binary: str
    name: str
    created_by: str
    def __init__(self, code: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., mode: _Optional[_Union[ScriptMode, str]] = ..., timeout_seconds: _Optional[int] = ..., pid: _Optional[int] = ..., binary: _Optional[str] = ..., name: _Optional[str] = ..., created_by: _Optional[str] = ...) -> None: ...

class RunScriptEnd(_message.Message):
    __slots__ = ("status", "exit_code", "has_exit_code", "reason")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    HAS_EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    status: str
    exit_code: int
    has_exit_code: bool
    reason: str
    def __init__(self, status: _Optional[str] = ..., exit_code: _Optional[int] = ..., has_exit_code: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class RunScriptOutput(_message.Message):
    __slots__ = ("execution_id", "log", "emit", "end")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    EMIT_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    log: ScriptLogEntry
    emit: ScriptEvent
    end: RunScriptEnd
    def __init__(self, execution_id: _Optional[str] = ..., log: _Optional[_Union[ScriptLogEntry, _Mapping]] = ..., emit: _Optional[_Union[ScriptEvent, _Mapping]] = ..., end: _Optional[_Union[RunScriptEnd, _Mapping]] = ...) -> None: ...

class ListFunctionsRequest(_message.Message):
    __slots__ = ("binary", "pid", "pattern", "limit")
    BINARY_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    binary: str
    pid: int
    pattern: str
    limit: int
    def __init__(self, binary: _Optional[str] = ..., pid: _Optional[int] = ..., pattern: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class FunctionInfo(_message.Message):
    __slots__ = ("name", "file", "address", "size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    file: str
    address: int
    size: int
    def __init__(self, name: _Optional[str] = ..., file: _Optional[str] = ..., address: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class ListFunctionsResponse(_message.Message):
    __slots__ = ("functions", "truncated")
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    functions: _containers.RepeatedCompositeFieldContainer[FunctionInfo]
    truncated: bool
    def __init__(self, functions: _Optional[_Iterable[_Union[FunctionInfo, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class BeginProbeSessionRequest(_message.Message):
    __slots__ = ("probe_type", "target", "pid", "functions", "nargs", "options_json", "service", "binary")
    PROBE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    NARGS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    probe_type: str
    target: str
    pid: int
    functions: _containers.RepeatedScalarFieldContainer[str]
    nargs: int
    options_json: str
    service: str
    binary: str
    def __init__(self, probe_type: _Optional[str] = ..., target: _Optional[str] = ..., pid: _Optional[int] = ..., functions: _Optional[_Iterable[str]] = ..., nargs: _Optional[int] = ..., options_json: _Optional[str] = ..., service: _Optional[str] = ..., binary: _Optional[str] = ...) -> None: ...

class BeginProbeSessionResponse(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class EventColumn(_message.Message):
    __slots__ = ("dtype", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ProbeEventBatch(_message.Message):
    __slots__ = ("session_id", "rows", "columns", "comm_names")
    class ColumnsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: EventColumn
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[EventColumn, _Mapping]] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    COMM_NAMES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    rows: int
    columns: _containers.MessageMap[str, EventColumn]
    comm_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., rows: _Optional[int] = ..., columns: _Optional[_Mapping[str, EventColumn]] = ..., comm_names: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordProbeEventsResponse(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    def __init__(self, rows: _Optional[int] = ...) -> None: ...

class EndProbeSessionRequest(_message.Message):
    __slots__ = ("session_id", "hits", "delivered", "lost", "filtered", "unpaired", "too_deep", "in_flight_at_stop", "in_flight_at_attach", "stop_reason")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    FILTERED_FIELD_NUMBER: _ClassVar[int]
    UNPAIRED_FIELD_NUMBER: _ClassVar[int]
    TOO_DEEP_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_AT_STOP_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_AT_ATTACH_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    hits: int
    delivered: int
    lost: int
    filtered: int
    unpaired: int
    too_deep: int
    in_flight_at_stop: int
    in_flight_at_attach: int
    stop_reason: str
    def __init__(self, session_id: _Optional[str] = ..., hits: _Optional[int] = ..., delivered: _Optional[int] = ..., lost: _Optional[int] = ..., filtered: _Optional[int] = ..., unpaired: _Optional[int] = ..., too_deep: _Optional[int] = ..., in_flight_at_stop: _Optional[int] = ..., in_flight_at_attach: _Optional[int] = ..., stop_reason: _Optional[str] = ...) -> None: ...

class EndProbeSessionResponse(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    def __init__(self, rows: _Optional[int] = ...) -> None: ...
