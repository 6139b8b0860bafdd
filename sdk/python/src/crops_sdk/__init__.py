"""crops_sdk: write crops plugins in Python (docs/plugin-authoring.md).

The four plugin kinds mirror the Go SDK: subclass PositiveSource, Labeler,
Loss or Retriever, implement describe() and the kind's call, and hand an
instance to serve(). Tables are read and written with pyarrow
(crops_sdk.table); the wire protocol is docs/plugin-protocol.md."""

from .context import Cancelled, Context
from .log import logger
from .loss_client import LossClient
from .params import ParamsError, decode_params
from .serve import description, main, serve
from .types import (
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    PROTOCOL_VERSION,
    SDK_VERSION,
    SYNTHETIC_PREFIX,
    CandidateTable,
    Describer,
    Info,
    Kind,
    Labeler,
    LabelRequest,
    LabelResult,
    Loss,
    LossInput,
    LossOutput,
    MineRequest,
    MineResult,
    PluginError,
    PositiveSource,
    Progress,
    Retriever,
    ScoreRequest,
    SearchRequest,
    Stats,
    TrainRequest,
)

__all__ = [
    "MAGIC_COOKIE_KEY",
    "MAGIC_COOKIE_VALUE",
    "PROTOCOL_VERSION",
    "SDK_VERSION",
    "SYNTHETIC_PREFIX",
    "Cancelled",
    "CandidateTable",
    "Context",
    "Describer",
    "Info",
    "Kind",
    "LabelRequest",
    "LabelResult",
    "Labeler",
    "Loss",
    "LossClient",
    "LossInput",
    "LossOutput",
    "MineRequest",
    "MineResult",
    "ParamsError",
    "PluginError",
    "PositiveSource",
    "Progress",
    "Retriever",
    "ScoreRequest",
    "SearchRequest",
    "Stats",
    "TrainRequest",
    "decode_params",
    "description",
    "logger",
    "main",
    "serve",
]
