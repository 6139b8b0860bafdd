"""crops-torch-two-tower: a PyTorch retriever with Hugging Face transformers
towers, written with crops-sdk (docs/plugin-authoring.md, "Python").

It trains through whatever loss plugin the experiment names (reached through
the host's broker), searches the catalog exactly (top-K), scores pairs (so
it can be the relevance gate), runs on CUDA when torch sees a device and on
the CPU otherwise, and checkpoints and resumes like the Go two-tower. It
starts from a local checkpoint directory (model_path) or from a small
randomly initialised BERT with a WordPiece tokenizer trained on the
dataset's text; nothing is downloaded at run time."""

from __future__ import annotations

import os
from collections.abc import Callable

# Nothing is downloaded at run time, whatever the user's environment says.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import crops_sdk
from crops_sdk import Context, Info, Kind, Progress, Retriever, ScoreRequest, SearchRequest, TrainRequest

from .params import SCHEMA

NAME = "torch-two-tower"
VERSION = "0.2.0"  # bump with every change: crops caches stages by plugin version and launcher digest


class TorchTwoTower(Retriever):
    def describe(self) -> Info:
        return Info(name=NAME, kind=Kind.RETRIEVER, version=VERSION,
                    description="PyTorch two-tower retriever with Hugging Face transformers encoders (shared or "
                                "separate towers, mean or CLS pooling, learnable temperature); trains through the "
                                "YAML's loss plugin; exact top-K search; CUDA when present",
                    params_schema=SCHEMA, capabilities=["score"])

    def train(self, ctx: Context, req: TrainRequest, progress: Callable[[Progress], None]) -> None:
        from .train import Trainer

        Trainer(ctx, req, progress).run()

    def search(self, ctx: Context, req: SearchRequest) -> None:
        from .search import search

        search(ctx, req)

    def score(self, ctx: Context, req: ScoreRequest) -> None:
        from .search import score

        score(ctx, req)


def main() -> None:
    crops_sdk.serve(TorchTwoTower())
