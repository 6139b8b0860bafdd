from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Info(_message.Message):
    __slots__ = ("name", "kind", "version", "description", "params_schema", "capabilities", "env")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    version: str
    description: str
    params_schema: bytes
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., params_schema: _Optional[bytes] = ..., capabilities: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[str]] = ...) -> None: ...

class MineRequest(_message.Message):
    __slots__ = ("dataset_dir", "params", "output_path", "items_output_path", "work_dir", "seed")
    DATASET_DIR_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    ITEMS_OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    WORK_DIR_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    dataset_dir: str
    params: bytes
    output_path: str
    items_output_path: str
    work_dir: str
    seed: int
    def __init__(self, dataset_dir: _Optional[str] = ..., params: _Optional[bytes] = ..., output_path: _Optional[str] = ..., items_output_path: _Optional[str] = ..., work_dir: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class MineResponse(_message.Message):
    __slots__ = ("stats", "report")
    class StatsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STATS_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.ScalarMap[str, float]
    report: bytes
    def __init__(self, stats: _Optional[_Mapping[str, float]] = ..., report: _Optional[bytes] = ...) -> None: ...

class CandidateTable(_message.Message):
    __slots__ = ("source", "path")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    source: str
    path: str
    def __init__(self, source: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class LabelRequest(_message.Message):
    __slots__ = ("dataset_dir", "candidates", "params", "output_path", "seed")
    DATASET_DIR_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    dataset_dir: str
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateTable]
    params: bytes
    output_path: str
    seed: int
    def __init__(self, dataset_dir: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[CandidateTable, _Mapping]]] = ..., params: _Optional[bytes] = ..., output_path: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class LabelResponse(_message.Message):
    __slots__ = ("stats",)
    class StatsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.ScalarMap[str, float]
    def __init__(self, stats: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ComputeRequest(_message.Message):
    __slots__ = ("b", "n", "scores", "tiers", "valid", "params", "tiers8", "shm_path", "doorbell_req", "doorbell_resp")
    B_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    TIERS8_FIELD_NUMBER: _ClassVar[int]
    SHM_PATH_FIELD_NUMBER: _ClassVar[int]
    DOORBELL_REQ_FIELD_NUMBER: _ClassVar[int]
    DOORBELL_RESP_FIELD_NUMBER: _ClassVar[int]
    b: int
    n: int
    scores: bytes
    tiers: bytes
    valid: bytes
    params: bytes
    tiers8: bytes
    shm_path: str
    doorbell_req: str
    doorbell_resp: str
    def __init__(self, b: _Optional[int] = ..., n: _Optional[int] = ..., scores: _Optional[bytes] = ..., tiers: _Optional[bytes] = ..., valid: _Optional[bytes] = ..., params: _Optional[bytes] = ..., tiers8: _Optional[bytes] = ..., shm_path: _Optional[str] = ..., doorbell_req: _Optional[str] = ..., doorbell_resp: _Optional[str] = ...) -> None: ...

class ComputeResponse(_message.Message):
    __slots__ = ("loss", "grad", "grad_in_shm", "doorbell", "loss_plugin")
    LOSS_FIELD_NUMBER: _ClassVar[int]
    GRAD_FIELD_NUMBER: _ClassVar[int]
    GRAD_IN_SHM_FIELD_NUMBER: _ClassVar[int]
    DOORBELL_FIELD_NUMBER: _ClassVar[int]
    LOSS_PLUGIN_FIELD_NUMBER: _ClassVar[int]
    loss: float
    grad: bytes
    grad_in_shm: bool
    doorbell: bool
    loss_plugin: str
    def __init__(self, loss: _Optional[float] = ..., grad: _Optional[bytes] = ..., grad_in_shm: _Optional[bool] = ..., doorbell: _Optional[bool] = ..., loss_plugin: _Optional[str] = ...) -> None: ...

class TrainRequest(_message.Message):
    __slots__ = ("train_table", "items_paths", "dataset_dir", "params", "model_dir", "seed", "loss_broker_id", "loss_params")
    TRAIN_TABLE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_PATHS_FIELD_NUMBER: _ClassVar[int]
    DATASET_DIR_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIR_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LOSS_BROKER_ID_FIELD_NUMBER: _ClassVar[int]
    LOSS_PARAMS_FIELD_NUMBER: _ClassVar[int]
    train_table: str
    items_paths: _containers.RepeatedScalarFieldContainer[str]
    dataset_dir: str
    params: bytes
    model_dir: str
    seed: int
    loss_broker_id: int
    loss_params: bytes
    def __init__(self, train_table: _Optional[str] = ..., items_paths: _Optional[_Iterable[str]] = ..., dataset_dir: _Optional[str] = ..., params: _Optional[bytes] = ..., model_dir: _Optional[str] = ..., seed: _Optional[int] = ..., loss_broker_id: _Optional[int] = ..., loss_params: _Optional[bytes] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("epoch", "step", "total_steps", "loss", "examples_per_sec", "message")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    step: int
    total_steps: int
    loss: float
    examples_per_sec: float
    message: str
    def __init__(self, epoch: _Optional[int] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss: _Optional[float] = ..., examples_per_sec: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class TrainDone(_message.Message):
    __slots__ = ("ok", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class TrainEvent(_message.Message):
    __slots__ = ("progress", "done")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    progress: Progress
    done: TrainDone
    def __init__(self, progress: _Optional[_Union[Progress, _Mapping]] = ..., done: _Optional[_Union[TrainDone, _Mapping]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("model_dir", "items_paths", "queries_path", "k", "output_path", "params", "include_synthetic")
    MODEL_DIR_FIELD_NUMBER: _ClassVar[int]
    ITEMS_PATHS_FIELD_NUMBER: _ClassVar[int]
    QUERIES_PATH_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SYNTHETIC_FIELD_NUMBER: _ClassVar[int]
    model_dir: str
    items_paths: _containers.RepeatedScalarFieldContainer[str]
    queries_path: str
    k: int
    output_path: str
    params: bytes
    include_synthetic: bool
    def __init__(self, model_dir: _Optional[str] = ..., items_paths: _Optional[_Iterable[str]] = ..., queries_path: _Optional[str] = ..., k: _Optional[int] = ..., output_path: _Optional[str] = ..., params: _Optional[bytes] = ..., include_synthetic: _Optional[bool] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("model_dir", "items_paths", "pairs_path", "output_path", "params")
    MODEL_DIR_FIELD_NUMBER: _ClassVar[int]
    ITEMS_PATHS_FIELD_NUMBER: _ClassVar[int]
    PAIRS_PATH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    model_dir: str
    items_paths: _containers.RepeatedScalarFieldContainer[str]
    pairs_path: str
    output_path: str
    params: bytes
    def __init__(self, model_dir: _Optional[str] = ..., items_paths: _Optional[_Iterable[str]] = ..., pairs_path: _Optional[str] = ..., output_path: _Optional[str] = ..., params: _Optional[bytes] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
