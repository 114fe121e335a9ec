import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MissingAgent(_message.Message):
    __slots__ = ("agent_id", "reason")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    reason: str
    def __init__(self, agent_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Service(_message.Message):
    __slots__ = ("name", "agent_id", "instance_count", "binaries", "events", "last_seen")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    BINARIES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    agent_id: str
    instance_count: int
    binaries: _containers.RepeatedScalarFieldContainer[str]
    events: int
    last_seen: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., agent_id: _Optional[str] = ..., instance_count: _Optional[int] = ..., binaries: _Optional[_Iterable[str]] = ..., events: _Optional[int] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListServicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services", "missing")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[Service]
    missing: _containers.RepeatedCompositeFieldContainer[MissingAgent]
    def __init__(self, services: _Optional[_Iterable[_Union[Service, _Mapping]]] = ..., missing: _Optional[_Iterable[_Union[MissingAgent, _Mapping]]] = ...) -> None: ...

class GetServiceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetServiceResponse(_message.Message):
    __slots__ = ("services", "instance_count", "functions", "missing")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[Service]
    instance_count: int
    functions: _containers.RepeatedScalarFieldContainer[str]
    missing: _containers.RepeatedCompositeFieldContainer[MissingAgent]
    def __init__(self, services: _Optional[_Iterable[_Union[Service, _Mapping]]] = ..., instance_count: _Optional[int] = ..., functions: _Optional[_Iterable[str]] = ..., missing: _Optional[_Iterable[_Union[MissingAgent, _Mapping]]] = ...) -> None: ...

class LatencySketch(_message.Message):
    __slots__ = ("relative_accuracy", "zero_count", "keys", "counts")
    RELATIVE_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ZERO_COUNT_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    relative_accuracy: float
    zero_count: int
    keys: _containers.RepeatedScalarFieldContainer[int]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, relative_accuracy: _Optional[float] = ..., zero_count: _Optional[int] = ..., keys: _Optional[_Iterable[int]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class GetPercentileRequest(_message.Message):
    __slots__ = ("service", "metric", "percentile", "time_range_ms")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    PERCENTILE_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_MS_FIELD_NUMBER: _ClassVar[int]
    service: str
    metric: str
    percentile: float
    time_range_ms: int
    def __init__(self, service: _Optional[str] = ..., metric: _Optional[str] = ..., percentile: _Optional[float] = ..., time_range_ms: _Optional[int] = ...) -> None: ...

class GetPercentileResponse(_message.Message):
    __slots__ = ("value", "unit", "count", "sketch", "missing")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SKETCH_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    value: float
    unit: str
    count: int
    sketch: LatencySketch
    missing: _containers.RepeatedCompositeFieldContainer[MissingAgent]
    def __init__(self, value: _Optional[float] = ..., unit: _Optional[str] = ..., count: _Optional[int] = ..., sketch: _Optional[_Union[LatencySketch, _Mapping]] = ..., missing: _Optional[_Iterable[_Union[MissingAgent, _Mapping]]] = ...) -> None: ...

class GetErrorRateRequest(_message.Message):
    __slots__ = ("service", "function", "time_range_ms")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_MS_FIELD_NUMBER: _ClassVar[int]
    service: str
    function: str
    time_range_ms: int
    def __init__(self, service: _Optional[str] = ..., function: _Optional[str] = ..., time_range_ms: _Optional[int] = ...) -> None: ...

class GetErrorRateResponse(_message.Message):
    __slots__ = ("rate", "error_count", "total_count", "missing")
    RATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    rate: float
    error_count: int
    total_count: int
    missing: _containers.RepeatedCompositeFieldContainer[MissingAgent]
    def __init__(self, rate: _Optional[float] = ..., error_count: _Optional[int] = ..., total_count: _Optional[int] = ..., missing: _Optional[_Iterable[_Union[MissingAgent, _Mapping]]] = ...) -> None: ...

class FindSlowTracesRequest(_message.Message):
    __slots__ = ("service", "function", "min_duration_ns", "time_range_ms", "limit")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    MIN_DURATION_NS_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    service: str
    function: str
    min_duration_ns: int
    time_range_ms: int
    limit: int
    def __init__(self, service: _Optional[str] = ..., function: _Optional[str] = ..., min_duration_ns: _Optional[int] = ..., time_range_ms: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class FindErrorTracesRequest(_message.Message):
    __slots__ = ("service", "function", "time_range_ms", "limit")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    service: str
    function: str
    time_range_ms: int
    limit: int
    def __init__(self, service: _Optional[str] = ..., function: _Optional[str] = ..., time_range_ms: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class Trace(_message.Message):
    __slots__ = ("trace_id", "agent_id", "service", "function", "pid", "tid", "timestamp_ns", "duration_ns", "return_value", "args")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    DURATION_NS_FIELD_NUMBER: _ClassVar[int]
    RETURN_VALUE_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    agent_id: str
    service: str
    function: str
    pid: int
    tid: int
    timestamp_ns: int
    duration_ns: int
    return_value: int
    args: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, trace_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., service: _Optional[str] = ..., function: _Optional[str] = ..., pid: _Optional[int] = ..., tid: _Optional[int] = ..., timestamp_ns: _Optional[int] = ..., duration_ns: _Optional[int] = ..., return_value: _Optional[int] = ..., args: _Optional[_Iterable[int]] = ...) -> None: ...

class FindTracesResponse(_message.Message):
    __slots__ = ("traces", "total_count", "missing")
    TRACES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    traces: _containers.RepeatedCompositeFieldContainer[Trace]
    total_count: int
    missing: _containers.RepeatedCompositeFieldContainer[MissingAgent]
    def __init__(self, traces: _Optional[_Iterable[_Union[Trace, _Mapping]]] = ..., total_count: _Optional[int] = ..., missing: _Optional[_Iterable[_Union[MissingAgent, _Mapping]]] = ...) -> None: ...

class GetSystemMetricsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SystemMetrics(_message.Message):
    __slots__ = ("agent_id", "cpu_usage_percent", "cores", "load1", "load5", "load15", "memory_total_bytes", "memory_available_bytes", "memory_used_bytes", "memory_usage_percent", "sampled_at_ms")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CPU_USAGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    LOAD1_FIELD_NUMBER: _ClassVar[int]
    LOAD5_FIELD_NUMBER: _ClassVar[int]
    LOAD15_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USAGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    cpu_usage_percent: float
    cores: int
    load1: float
    load5: float
    load15: float
    memory_total_bytes: int
    memory_available_bytes: int
    memory_used_bytes: int
    memory_usage_percent: float
    sampled_at_ms: int
    def __init__(self, agent_id: _Optional[str] = ..., cpu_usage_percent: _Optional[float] = ..., cores: _Optional[int] = ..., load1: _Optional[float] = ..., load5: _Optional[float] = ..., load15: _Optional[float] = ..., memory_total_bytes: _Optional[int] = ..., memory_available_bytes: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., memory_usage_percent: _Optional[float] = ..., sampled_at_ms: _Optional[int] = ...) -> None: ...

class GetSystemMetricsResponse(_message.Message):
    __slots__ = ("agents", "missing")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[SystemMetrics]
    missing: _containers.RepeatedCompositeFieldContainer[MissingAgent]
    def __init__(self, agents: _Optional[_Iterable[_Union[SystemMetrics, _Mapping]]] = ..., missing: _Optional[_Iterable[_Union[MissingAgent, _Mapping]]] = ...) -> None: ...

class ExecuteQueryRequest(_message.Message):
    __slots__ = ("sql", "max_rows", "timeout_ms")
    SQL_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    sql: str
    max_rows: int
    timeout_ms: int
    def __init__(self, sql: _Optional[str] = ..., max_rows: _Optional[int] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class ExecuteQueryResponse(_message.Message):
    __slots__ = ("columns", "column_types", "rows_json", "row_count", "truncated", "missing", "source")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    COLUMN_TYPES_FIELD_NUMBER: _ClassVar[int]
    ROWS_JSON_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedScalarFieldContainer[str]
    column_types: _containers.RepeatedScalarFieldContainer[str]
    rows_json: str
    row_count: int
    truncated: bool
    missing: _containers.RepeatedCompositeFieldContainer[MissingAgent]
    source: str
    def __init__(self, columns: _Optional[_Iterable[str]] = ..., column_types: _Optional[_Iterable[str]] = ..., rows_json: _Optional[str] = ..., row_count: _Optional[int] = ..., truncated: _Optional[bool] = ..., missing: _Optional[_Iterable[_Union[MissingAgent, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Agent(_message.Message):
    __slots__ = ("id", "address", "reachable", "last_seen", "version", "hostname", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    reachable: bool
    last_seen: _timestamp_pb2.Timestamp
    version: str
    hostname: str
    error: str
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., reachable: _Optional[bool] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[str] = ..., hostname: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[Agent]
    def __init__(self, agents: _Optional[_Iterable[_Union[Agent, _Mapping]]] = ...) -> None: ...
