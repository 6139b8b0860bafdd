"""The torch-two-tower retriever's parameters (the retriever's ``params`` in an
experiment YAML). Defaults follow the Go two-tower where the two share a knob
(batch_queries, max_candidates_per_query, init_tau, learn_tau, min_tau,
learning_rate, weight_decay, checkpoint_every, keep_checkpoints,
progress_every, score_mode), so a YAML can swap one for the other."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Params:
    # Encoder. model_path "" trains a small randomly initialised BERT whose
    # WordPiece tokenizer is trained on the dataset's text; otherwise it is a
    # local Hugging Face checkpoint directory (config.json, weights, tokenizer).
    model_path: str = ""
    shared_towers: bool = True  #: one encoder for queries and items, or two
    pooling: str = "mean"  #: "mean" (over non-padding tokens) or "cls"
    vocab_size: int = 8000  #: tokenizer vocabulary (random init only)
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 128
    max_query_tokens: int = 16
    max_item_tokens: int = 48
    # Temperature (the paper's learnable tau): score = cos / tau.
    init_tau: float = 0.05
    learn_tau: bool = True
    min_tau: float = 0.01
    # Training.
    epochs: int = 3
    batch_queries: int = 64  #: B
    max_candidates_per_query: int = 8  #: M; N = B * M columns
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    max_steps: int = 0  #: stop after this many optimizer steps in total (0 = no limit)
    progress_every: int = 10
    checkpoint_every: int = 1  #: epochs between checkpoints (0 = none; the final model is always saved)
    keep_checkpoints: int = 2
    # "plugin": the loss the YAML names, through the host's broker (a run).
    # "torch": H-InfoNCE computed here in PyTorch (the benchmark's reference).
    loss_backend: str = "plugin"
    # Runtime.
    device: str = "auto"  #: "auto" (CUDA when present, else CPU), "cpu" or "cuda"
    threads: int = 0  #: torch CPU threads (0 = torch's default)
    encode_batch: int = 256  #: texts per encoder call in Search and Score
    score_mode: str = "cosine"  #: Search/Score output: "cosine" or "logit" (cosine / tau)
    # Tests only: write the first step's batch, scores, loss gradient and
    # parameter gradients (before the optimizer moves) to this file.
    debug_dump: str = ""

    def validate(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.pooling in ("mean", "cls"), f'pooling = "{self.pooling}": expected "mean" or "cls"'),
            (16 <= self.vocab_size <= 1_000_000, f"vocab_size = {self.vocab_size}: expected 16..1000000"),
            (self.hidden_size >= 2, f"hidden_size = {self.hidden_size}: expected >= 2"),
            (self.num_layers >= 1, f"num_layers = {self.num_layers}: expected >= 1"),
            (self.num_heads >= 1 and self.hidden_size % self.num_heads == 0,
             f"num_heads = {self.num_heads}: expected >= 1 and dividing hidden_size ({self.hidden_size})"),
            (self.intermediate_size >= 1, f"intermediate_size = {self.intermediate_size}: expected >= 1"),
            (2 <= self.max_query_tokens <= 512, f"max_query_tokens = {self.max_query_tokens}: expected 2..512"),
            (2 <= self.max_item_tokens <= 512, f"max_item_tokens = {self.max_item_tokens}: expected 2..512"),
            (0 < self.init_tau <= 10, f"init_tau = {self.init_tau}: expected (0, 10]"),
            (0 < self.min_tau <= self.init_tau, f"min_tau = {self.min_tau}: expected (0, init_tau]"),
            (self.epochs >= 1, f"epochs = {self.epochs}: expected >= 1"),
            (self.batch_queries >= 1, f"batch_queries = {self.batch_queries}: expected >= 1"),
            (self.max_candidates_per_query >= 1,
             f"max_candidates_per_query = {self.max_candidates_per_query}: expected >= 1"),
            (self.learning_rate > 0, f"learning_rate = {self.learning_rate}: expected > 0"),
            (self.weight_decay >= 0, f"weight_decay = {self.weight_decay}: expected >= 0"),
            (self.max_steps >= 0, f"max_steps = {self.max_steps}: expected >= 0"),
            (self.progress_every >= 1, f"progress_every = {self.progress_every}: expected >= 1"),
            (self.checkpoint_every >= 0, f"checkpoint_every = {self.checkpoint_every}: expected >= 0"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints = {self.keep_checkpoints}: expected >= 1"),
            (self.loss_backend in ("plugin", "torch"),
             f'loss_backend = "{self.loss_backend}": expected "plugin" (the YAML\'s loss) or "torch"'),
            (self.device in ("auto", "cpu", "cuda"), f'device = "{self.device}": expected "auto", "cpu" or "cuda"'),
            (self.threads >= 0, f"threads = {self.threads}: expected >= 0 (0 = torch's default)"),
            (self.encode_batch >= 1, f"encode_batch = {self.encode_batch}: expected >= 1"),
            (self.score_mode in ("cosine", "logit"), f'score_mode = "{self.score_mode}": expected "cosine" or "logit"'),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    def arch(self) -> dict[str, Any]:
        """The fields that fix the model's shape and tokenizer: a checkpoint
        or a trained model is only reused for the same values."""
        keys = ["model_path", "shared_towers", "pooling", "max_query_tokens", "max_item_tokens"]
        if not self.model_path:
            keys += ["vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size"]
        d = asdict(self)
        return {k: d[k] for k in keys}

    def train_key(self, seed: int, loss_params: bytes) -> dict[str, Any]:
        """Everything a resumed run must share with the run that wrote the
        checkpoint (the runtime knobs are left out: they do not change the
        model, except through floating-point order)."""
        d = asdict(self)
        # epochs is left out too: a run asked for more epochs resumes from the
        # last checkpoint of a shorter one.
        for k in ("epochs", "max_steps", "progress_every", "checkpoint_every", "keep_checkpoints", "device", "threads",
                  "encode_batch", "score_mode", "debug_dump"):
            d.pop(k)
        d["seed"] = seed
        d["loss_params"] = loss_params.decode(errors="replace")
        return d


SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "model_path": {"type": "string", "description": "local Hugging Face checkpoint dir; '' = random init"},
        "shared_towers": {"type": "boolean"},
        "pooling": {"enum": ["mean", "cls"]},
        "vocab_size": {"type": "integer", "minimum": 16},
        "hidden_size": {"type": "integer", "minimum": 2},
        "num_layers": {"type": "integer", "minimum": 1},
        "num_heads": {"type": "integer", "minimum": 1},
        "intermediate_size": {"type": "integer", "minimum": 1},
        "max_query_tokens": {"type": "integer", "minimum": 2, "maximum": 512},
        "max_item_tokens": {"type": "integer", "minimum": 2, "maximum": 512},
        "init_tau": {"type": "number", "exclusiveMinimum": 0},
        "learn_tau": {"type": "boolean"},
        "min_tau": {"type": "number", "exclusiveMinimum": 0},
        "epochs": {"type": "integer", "minimum": 1},
        "batch_queries": {"type": "integer", "minimum": 1},
        "max_candidates_per_query": {"type": "integer", "minimum": 1},
        "learning_rate": {"type": "number", "exclusiveMinimum": 0},
        "weight_decay": {"type": "number", "minimum": 0},
        "max_steps": {"type": "integer", "minimum": 0},
        "progress_every": {"type": "integer", "minimum": 1},
        "checkpoint_every": {"type": "integer", "minimum": 0},
        "keep_checkpoints": {"type": "integer", "minimum": 1},
        "loss_backend": {"enum": ["plugin", "torch"]},
        "device": {"enum": ["auto", "cpu", "cuda"]},
        "threads": {"type": "integer", "minimum": 0},
        "encode_batch": {"type": "integer", "minimum": 1},
        "score_mode": {"enum": ["cosine", "logit"]},
        "debug_dump": {"type": "string"},
    },
}
