"""The four plugin kinds, their requests and results: the Python mirror of the
Go SDK's sdk/sdk.go. Tables never travel over the wire: requests name Parquet
files on local disk (docs/dataset-format.md); crops_sdk.table reads and writes
them with pyarrow."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .context import Context

#: The crops plugin protocol this SDK speaks (core/version.ProtocolVersion):
#: a host speaking another version refuses the plugin, naming both.
PROTOCOL_VERSION = 2
#: The SDK's own version, reported by ``describe``.
SDK_VERSION = "0.1.0"

#: The go-plugin magic cookie: a UX guard (not security) that stops a plugin
#: started by hand from printing a handshake line at its user.
MAGIC_COOKIE_KEY = "CROPS_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "b4f3c2a1-crops-plugin-9d8e7f60"

#: Item ids of synthetic (LLM-written) items start with this.
SYNTHETIC_PREFIX = "llm:"


class Kind(str, enum.Enum):
    """A plugin kind."""

    SOURCE = "source"
    LABELER = "labeler"
    LOSS = "loss"
    RETRIEVER = "retriever"


@dataclass
class Info:
    """What Describe returns (sdk.Info)."""

    name: str
    kind: Kind
    version: str
    description: str
    #: JSON Schema of the params object, as a dict (sent as JSON bytes).
    params_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "additionalProperties": False})
    capabilities: list[str] = field(default_factory=list)
    #: Environment variables the plugin needs; it gets those the YAML allows.
    env: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind.value,
            "version": self.version,
            "description": self.description,
            "params_schema": self.params_schema,
        }
        if self.capabilities:
            out["capabilities"] = list(self.capabilities)
        if self.env:
            out["env"] = list(self.env)
        return out


#: A flat map of named counters or measurements a call reports.
Stats = dict[str, float]


class Describer(ABC):
    """Implemented by every plugin."""

    @abstractmethod
    def describe(self) -> Info: ...


# ---- positive source ---------------------------------------------------------


@dataclass
class MineRequest:
    dataset_dir: str  #: a CroPS log format directory
    params: bytes  #: the source's params object from the YAML (JSON); see decode_params
    output_path: str  #: candidate table to write (crops_sdk.table.CANDIDATES)
    items_output_path: str  #: where a source that creates synthetic items writes them
    work_dir: str  #: scratch and cache directory owned by this call
    seed: int


@dataclass
class MineResult:
    stats: Stats = field(default_factory=dict)
    report: Any = None  #: free-form JSON-serialisable mining report


class PositiveSource(Describer):
    """Mines candidate (query, item) pairs from logs."""

    @abstractmethod
    def mine(self, ctx: Context, req: MineRequest) -> MineResult: ...


# ---- labeler -----------------------------------------------------------------


@dataclass
class CandidateTable:
    source: str  #: source plugin instance name, e.g. "clicks"
    path: str


@dataclass
class LabelRequest:
    dataset_dir: str
    candidates: list[CandidateTable]
    params: bytes
    output_path: str  #: label table to write (crops_sdk.table.LABELS)
    seed: int


@dataclass
class LabelResult:
    stats: Stats = field(default_factory=dict)


class Labeler(Describer):
    """Assigns tiers to candidates."""

    @abstractmethod
    def label(self, ctx: Context, req: LabelRequest) -> LabelResult: ...


# ---- loss --------------------------------------------------------------------


@dataclass
class LossInput:
    """One training step's B x N score matrix."""

    scores: npt.NDArray[np.float32]  #: (B, N)
    tiers: npt.NDArray[np.int32]  #: (B, N); higher = more relevant; 0 = in-batch negative
    valid: npt.NDArray[np.bool_]  #: (B, N); False entries are padding and take no part
    params: bytes = b""

    @property
    def b(self) -> int:
        return int(self.scores.shape[0])

    @property
    def n(self) -> int:
        return int(self.scores.shape[1])


@dataclass
class LossOutput:
    loss: float
    grad: npt.NDArray[np.float32]  #: (B, N), dLoss/dScores; zero on padding


class Loss(Describer):
    """Computes a training loss and its gradient with respect to the scores."""

    @abstractmethod
    def compute(self, ctx: Context, inp: LossInput) -> LossOutput: ...


# ---- retriever ---------------------------------------------------------------


@dataclass
class TrainRequest:
    train_table: str  #: label table (crops_sdk.table.LABELS)
    items_paths: list[str]  #: items tables: the dataset's items plus synthetic ones
    dataset_dir: str
    params: bytes
    model_dir: str  #: where the model and its checkpoints live; resume from here
    seed: int
    #: The loss plugin the runner started (None for retrievers that do not
    #: train), reached through go-plugin's broker: call loss.compute(ctx, ...).
    loss: Loss | None = None
    loss_params: bytes = b""


@dataclass
class Progress:
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    loss: float = 0.0
    examples_per_sec: float = 0.0
    message: str = ""


@dataclass
class SearchRequest:
    model_dir: str
    items_paths: list[str]
    queries_path: str  #: Parquet with a VARCHAR column "query"
    k: int
    output_path: str  #: results table (crops_sdk.table.RESULTS)
    params: bytes
    #: keep synthetic items (ids starting "llm:") in the catalog
    include_synthetic: bool = False


@dataclass
class ScoreRequest:
    model_dir: str
    items_paths: list[str]
    pairs_path: str  #: Parquet with VARCHAR columns query, item_id
    output_path: str  #: scores table (crops_sdk.table.SCORES), same rows, same order
    params: bytes


class Retriever(Describer):
    """Trains a model and searches a catalog with it."""

    @abstractmethod
    def train(self, ctx: Context, req: TrainRequest, progress: Callable[[Progress], None]) -> None: ...

    @abstractmethod
    def search(self, ctx: Context, req: SearchRequest) -> None: ...

    @abstractmethod
    def score(self, ctx: Context, req: ScoreRequest) -> None: ...


class PluginError(Exception):
    """An error returned by a plugin's own code (as opposed to a transport
    failure such as a dead process). Clients raise it for an error status."""
