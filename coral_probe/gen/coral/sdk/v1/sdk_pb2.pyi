from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProbeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROBE_KIND_UNSPECIFIED: _ClassVar[ProbeKind]
    PROBE_KIND_UPROBE: _ClassVar[ProbeKind]
    PROBE_KIND_URETPROBE: _ClassVar[ProbeKind]
    PROBE_KIND_KPROBE: _ClassVar[ProbeKind]
    PROBE_KIND_TRACEPOINT: _ClassVar[ProbeKind]
    PROBE_KIND_USDT: _ClassVar[ProbeKind]
PROBE_KIND_UNSPECIFIED: ProbeKind
PROBE_KIND_UPROBE: ProbeKind
PROBE_KIND_URETPROBE: ProbeKind
PROBE_KIND_KPROBE: ProbeKind
PROBE_KIND_TRACEPOINT: ProbeKind
PROBE_KIND_USDT: ProbeKind

class Request(_message.Message):
    __slots__ = ("id", "hello", "subscribe", "emit", "query", "get_percentile", "get_error_rate", "find_slow", "find_errors", "get_cpu", "get_memory", "list_functions", "get_function")
    ID_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    EMIT_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    GET_PERCENTILE_FIELD_NUMBER: _ClassVar[int]
    GET_ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    FIND_SLOW_FIELD_NUMBER: _ClassVar[int]
    FIND_ERRORS_FIELD_NUMBER: _ClassVar[int]
    GET_CPU_FIELD_NUMBER: _ClassVar[int]
    GET_MEMORY_FIELD_NUMBER: _ClassVar[int]
    LIST_FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    GET_FUNCTION_FIELD_NUMBER: _ClassVar[int]
    id: int
    hello: Hello
    subscribe: Subscribe
    emit: Emit
    query: Query
    get_percentile: GetPercentile
    get_error_rate: GetErrorRate
    find_slow: FindSpans
    find_errors: FindSpans
    get_cpu: GetCpu
    get_memory: GetMemory
    list_functions: ListFunctions
    get_function: GetFunction
    def __init__(self, id: _Optional[int] = ..., hello: _Optional[_Union[Hello, _Mapping]] = ..., subscribe: _Optional[_Union[Subscribe, _Mapping]] = ..., emit: _Optional[_Union[Emit, _Mapping]] = ..., query: _Optional[_Union[Query, _Mapping]] = ..., get_percentile: _Optional[_Union[GetPercentile, _Mapping]] = ..., get_error_rate: _Optional[_Union[GetErrorRate, _Mapping]] = ..., find_slow: _Optional[_Union[FindSpans, _Mapping]] = ..., find_errors: _Optional[_Union[FindSpans, _Mapping]] = ..., get_cpu: _Optional[_Union[GetCpu, _Mapping]] = ..., get_memory: _Optional[_Union[GetMemory, _Mapping]] = ..., list_functions: _Optional[_Union[ListFunctions, _Mapping]] = ..., get_function: _Optional[_Union[GetFunction, _Mapping]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("id", "error", "hello", "subscribe", "emit", "query", "percentile", "error_rate", "spans", "cpu", "memory", "functions", "function")
    ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    EMIT_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PERCENTILE_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    id: int
    error: Error
    hello: HelloReply
    subscribe: SubscribeReply
    emit: EmitReply
    query: QueryReply
    percentile: PercentileReply
    error_rate: ErrorRateReply
    spans: SpansReply
    cpu: CpuReply
    memory: MemoryReply
    functions: FunctionsReply
    function: FunctionReply
    def __init__(self, id: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., hello: _Optional[_Union[HelloReply, _Mapping]] = ..., subscribe: _Optional[_Union[SubscribeReply, _Mapping]] = ..., emit: _Optional[_Union[EmitReply, _Mapping]] = ..., query: _Optional[_Union[QueryReply, _Mapping]] = ..., percentile: _Optional[_Union[PercentileReply, _Mapping]] = ..., error_rate: _Optional[_Union[ErrorRateReply, _Mapping]] = ..., spans: _Optional[_Union[SpansReply, _Mapping]] = ..., cpu: _Optional[_Union[CpuReply, _Mapping]] = ..., memory: _Optional[_Union[MemoryReply, _Mapping]] = ..., functions: _Optional[_Union[FunctionsReply, _Mapping]] = ..., function: _Optional[_Union[FunctionReply, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("token", "sdk_version")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SDK_VERSION_FIELD_NUMBER: _ClassVar[int]
    token: str
    sdk_version: str
    def __init__(self, token: _Optional[str] = ..., sdk_version: _Optional[str] = ...) -> None: ...

class HelloReply(_message.Message):
    __slots__ = ("execution_id", "script_id", "agent_version", "params", "target")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    script_id: str
    agent_version: str
    params: _containers.ScalarMap[str, str]
    target: Target
    def __init__(self, execution_id: _Optional[str] = ..., script_id: _Optional[str] = ..., agent_version: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., target: _Optional[_Union[Target, _Mapping]] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("binary", "pid")
    BINARY_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    binary: str
    pid: int
    def __init__(self, binary: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class ProbeConfig(_message.Message):
    __slots__ = ("args", "no_return", "min_duration_ns", "sample_rate")
    ARGS_FIELD_NUMBER: _ClassVar[int]
    NO_RETURN_FIELD_NUMBER: _ClassVar[int]
    MIN_DURATION_NS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    args: int
    no_return: bool
    min_duration_ns: int
    sample_rate: int
    def __init__(self, args: _Optional[int] = ..., no_return: _Optional[bool] = ..., min_duration_ns: _Optional[int] = ..., sample_rate: _Optional[int] = ...) -> None: ...

class Subscribe(_message.Message):
    __slots__ = ("kind", "name", "binary", "pid", "config")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    kind: ProbeKind
    name: str
    binary: str
    pid: int
    config: ProbeConfig
    def __init__(self, kind: _Optional[_Union[ProbeKind, str]] = ..., name: _Optional[str] = ..., binary: _Optional[str] = ..., pid: _Optional[int] = ..., config: _Optional[_Union[ProbeConfig, _Mapping]] = ...) -> None: ...

class SubscribeReply(_message.Message):
    __slots__ = ("subscription_id", "function_names", "nargs", "has_return")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_NAMES_FIELD_NUMBER: _ClassVar[int]
    NARGS_FIELD_NUMBER: _ClassVar[int]
    HAS_RETURN_FIELD_NUMBER: _ClassVar[int]
    subscription_id: int
    function_names: _containers.RepeatedScalarFieldContainer[str]
    nargs: int
    has_return: bool
    def __init__(self, subscription_id: _Optional[int] = ..., function_names: _Optional[_Iterable[str]] = ..., nargs: _Optional[int] = ..., has_return: _Optional[bool] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("subscription_id", "timestamp_ns", "pid", "tid", "probe_index", "duration_ns", "has_return", "nargs", "args", "return_value", "comm_index", "comm_names", "lost", "end", "no_return_value")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TID_FIELD_NUMBER: _ClassVar[int]
    PROBE_INDEX_FIELD_NUMBER: _ClassVar[int]
    DURATION_NS_FIELD_NUMBER: _ClassVar[int]
    HAS_RETURN_FIELD_NUMBER: _ClassVar[int]
    NARGS_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    RETURN_VALUE_FIELD_NUMBER: _ClassVar[int]
    COMM_INDEX_FIELD_NUMBER: _ClassVar[int]
    COMM_NAMES_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    NO_RETURN_VALUE_FIELD_NUMBER: _ClassVar[int]
    subscription_id: int
    timestamp_ns: _containers.RepeatedScalarFieldContainer[int]
    pid: _containers.RepeatedScalarFieldContainer[int]
    tid: _containers.RepeatedScalarFieldContainer[int]
    probe_index: _containers.RepeatedScalarFieldContainer[int]
    duration_ns: _containers.RepeatedScalarFieldContainer[int]
    has_return: _containers.RepeatedScalarFieldContainer[bool]
    nargs: int
    args: _containers.RepeatedScalarFieldContainer[int]
    return_value: _containers.RepeatedScalarFieldContainer[int]
    comm_index: _containers.RepeatedScalarFieldContainer[int]
    comm_names: _containers.RepeatedScalarFieldContainer[str]
    lost: int
    end: bool
    no_return_value: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, subscription_id: _Optional[int] = ..., timestamp_ns: _Optional[_Iterable[int]] = ..., pid: _Optional[_Iterable[int]] = ..., tid: _Optional[_Iterable[int]] = ..., probe_index: _Optional[_Iterable[int]] = ..., duration_ns: _Optional[_Iterable[int]] = ..., has_return: _Optional[_Iterable[bool]] = ..., nargs: _Optional[int] = ..., args: _Optional[_Iterable[int]] = ..., return_value: _Optional[_Iterable[int]] = ..., comm_index: _Optional[_Iterable[int]] = ..., comm_names: _Optional[_Iterable[str]] = ..., lost: _Optional[int] = ..., end: _Optional[bool] = ..., no_return_value: _Optional[_Iterable[bool]] = ...) -> None: ...

class Emit(_message.Message):
    __slots__ = ("name", "data_json", "severity")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    data_json: str
    severity: str
    def __init__(self, name: _Optional[str] = ..., data_json: _Optional[str] = ..., severity: _Optional[str] = ...) -> None: ...

class EmitReply(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("sql", "timeout_ms")
    SQL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    sql: str
    timeout_ms: int
    def __init__(self, sql: _Optional[str] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class QueryReply(_message.Message):
    __slots__ = ("columns", "rows_json", "row_count", "truncated")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_JSON_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedScalarFieldContainer[str]
    rows_json: str
    row_count: int
    truncated: bool
    def __init__(self, columns: _Optional[_Iterable[str]] = ..., rows_json: _Optional[str] = ..., row_count: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class GetPercentile(_message.Message):
    __slots__ = ("service", "metric", "percentile", "window_ms")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    PERCENTILE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    service: str
    metric: str
    percentile: float
    window_ms: int
    def __init__(self, service: _Optional[str] = ..., metric: _Optional[str] = ..., percentile: _Optional[float] = ..., window_ms: _Optional[int] = ...) -> None: ...

class PercentileReply(_message.Message):
    __slots__ = ("value_ns", "count")
    VALUE_NS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    value_ns: float
    count: int
    def __init__(self, value_ns: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class GetErrorRate(_message.Message):
    __slots__ = ("service", "function", "window_ms")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    service: str
    function: str
    window_ms: int
    def __init__(self, service: _Optional[str] = ..., function: _Optional[str] = ..., window_ms: _Optional[int] = ...) -> None: ...

class ErrorRateReply(_message.Message):
    __slots__ = ("rate", "errors", "total")
    RATE_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    rate: float
    errors: int
    total: int
    def __init__(self, rate: _Optional[float] = ..., errors: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class FindSpans(_message.Message):
    __slots__ = ("service", "function", "min_duration_ns", "window_ms", "limit")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    MIN_DURATION_NS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    service: str
    function: str
    min_duration_ns: int
    window_ms: int
    limit: int
    def __init__(self, service: _Optional[str] = ..., function: _Optional[str] = ..., min_duration_ns: _Optional[int] = ..., window_ms: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class Span(_message.Message):
    __slots__ = ("function", "service", "pid", "tid", "timestamp_ns", "duration_ns", "return_value", "args")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    DURATION_NS_FIELD_NUMBER: _ClassVar[int]
    RETURN_VALUE_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    function: str
    service: str
    pid: int
    tid: int
    timestamp_ns: int
    duration_ns: int
    return_value: int
    args: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, function: _Optional[str] = ..., service: _Optional[str] = ..., pid: _Optional[int] = ..., tid: _Optional[int] = ..., timestamp_ns: _Optional[int] = ..., duration_ns: _Optional[int] = ..., return_value: _Optional[int] = ..., args: _Optional[_Iterable[int]] = ...) -> None: ...

class SpansReply(_message.Message):
    __slots__ = ("spans",)
    SPANS_FIELD_NUMBER: _ClassVar[int]
    spans: _containers.RepeatedCompositeFieldContainer[Span]
    def __init__(self, spans: _Optional[_Iterable[_Union[Span, _Mapping]]] = ...) -> None: ...

class GetCpu(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CpuReply(_message.Message):
    __slots__ = ("usage_percent", "cores", "load1", "load5", "load15", "sampled_at_ms")
    USAGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    LOAD1_FIELD_NUMBER: _ClassVar[int]
    LOAD5_FIELD_NUMBER: _ClassVar[int]
    LOAD15_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    usage_percent: float
    cores: int
    load1: float
    load5: float
    load15: float
    sampled_at_ms: int
    def __init__(self, usage_percent: _Optional[float] = ..., cores: _Optional[int] = ..., load1: _Optional[float] = ..., load5: _Optional[float] = ..., load15: _Optional[float] = ..., sampled_at_ms: _Optional[int] = ...) -> None: ...

class GetMemory(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MemoryReply(_message.Message):
    __slots__ = ("total_bytes", "available_bytes", "used_bytes", "usage_percent")
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_BYTES_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    USAGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    total_bytes: int
    available_bytes: int
    used_bytes: int
    usage_percent: float
    def __init__(self, total_bytes: _Optional[int] = ..., available_bytes: _Optional[int] = ..., used_bytes: _Optional[int] = ..., usage_percent: _Optional[float] = ...) -> None: ...

class ListFunctions(_message.Message):
    __slots__ = ("binary", "pattern", "limit")
    BINARY_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    binary: str
    pattern: str
    limit: int
    def __init__(self, binary: _Optional[str] = ..., pattern: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class FunctionInfo(_message.Message):
    __slots__ = ("name", "symbol", "address", "size", "binary")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    BINARY_FIELD_NUMBER: _ClassVar[int]
    name: str
    symbol: str
    address: int
    size: int
    binary: str
    def __init__(self, name: _Optional[str] = ..., symbol: _Optional[str] = ..., address: _Optional[int] = ..., size: _Optional[int] = ..., binary: _Optional[str] = ...) -> None: ...

class FunctionsReply(_message.Message):
    __slots__ = ("functions", "total")
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    functions: _containers.RepeatedCompositeFieldContainer[FunctionInfo]
    total: int
    def __init__(self, functions: _Optional[_Iterable[_Union[FunctionInfo, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetFunction(_message.Message):
    __slots__ = ("binary", "name")
    BINARY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    binary: str
    name: str
    def __init__(self, binary: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class FunctionReply(_message.Message):
    __slots__ = ("function",)
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    function: FunctionInfo
    def __init__(self, function: _Optional[_Union[FunctionInfo, _Mapping]] = ...) -> None: ...
