"""Small but real plugins of every kind, the Python mirror of the Go SDK's
sdk/sdktest: crops' own tests start them through the real host (from Go) and
through crops_sdk.testkit (from Python) to exercise the plugin boundary:
crashing, raising, returning a wrong shape, calling the loss through the
broker. They are not examples of good plugins; sdk/python/examples are.

    python -m crops_sdk.testplugins describe | serve KIND NAME
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import table
from .context import Context
from .params import decode_params
from .serve import serve
from .types import (
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
    PositiveSource,
    Progress,
    Retriever,
    ScoreRequest,
    SearchRequest,
    TrainRequest,
)

SOURCE_NAME = "pyrows"
LABELER_NAME = "pyflat"
LOSS_NAME = "pysoftmax"
RETRIEVER_NAME = "pyloop"


@dataclass
class RowsParams:
    rows: int = 10
    crash: str = ""  # "", "exit", "raise", "wrong_schema"
    sleep_ms: int = 0
    report_env: bool = False

    def validate(self) -> None:
        if self.crash not in ("", "exit", "raise", "wrong_schema"):
            raise ValueError(f'crash = "{self.crash}": expected one of "", exit, raise, wrong_schema')
        if self.rows < 0:
            raise ValueError(f"rows = {self.rows}: expected >= 0")


class RowsSource(PositiveSource):
    def describe(self) -> Info:
        return Info(name=SOURCE_NAME, kind=Kind.SOURCE, version="0.0.1",
                    description="test source: writes N synthetic candidate rows; can exit, raise or write a bad table",
                    params_schema={"type": "object", "additionalProperties": False, "properties": {
                        "rows": {"type": "integer", "minimum": 0}, "sleep_ms": {"type": "integer"},
                        "crash": {"enum": ["", "exit", "raise", "wrong_schema"]},
                        "report_env": {"type": "boolean"}}},
                    env=["CROPS_TEST_TOKEN"])

    def mine(self, ctx: Context, req: MineRequest) -> MineResult:
        p = decode_params(req.params, RowsParams)
        if p.crash == "exit":
            print("pyrows: exiting with status 3 as asked", file=sys.stderr, flush=True)
            os._exit(3)
        if p.crash == "raise":
            raise RuntimeError("pyrows: failing as asked")
        deadline = time.monotonic() + p.sleep_ms / 1000
        while time.monotonic() < deadline:
            ctx.raise_if_cancelled()
            time.sleep(0.01)
        i = np.arange(p.rows)
        t = pa.table({
            "query": [f"q{k % 1000}" for k in i],
            "item_id": [f"item{k}" for k in i],
            "source": ["pyrows"] * p.rows,
            "tier_hint": pa.array([4] * p.rows, pa.int32()),
            "confidence": pa.array([1.0] * p.rows, pa.float64()),
            "evidence": ["{}"] * p.rows,
        })
        if p.crash == "wrong_schema":
            t = t.drop_columns(["confidence"])
        table.write_candidates(t, req.output_path)
        report = {"env": sorted(f"{k}={v}" for k, v in os.environ.items())} if p.report_env else None
        return MineResult(stats={"rows": float(p.rows)}, report=report)


@dataclass
class NoParams:
    pass


class FlatLabeler(Labeler):
    def describe(self) -> Info:
        return Info(name=LABELER_NAME, kind=Kind.LABELER, version="0.0.1",
                    description="test labeler: tier = the highest tier_hint of a (query, item) over all tables")

    def label(self, ctx: Context, req: LabelRequest) -> LabelResult:
        decode_params(req.params, NoParams)
        if not req.candidates:
            raise ValueError("label: no candidate tables given")
        parts = [pq.read_table(c.path, columns=["query", "item_id", "source", "tier_hint"]) for c in req.candidates]
        t = pa.concat_tables(parts)
        g = t.group_by(["query", "item_id"]).aggregate([("tier_hint", "max"), ("source", "distinct")])
        sources = [",".join(sorted(s)) for s in g["source_distinct"].to_pylist()]
        out = pa.table({"query": g["query"], "item_id": g["item_id"],
                        "tier": pc.cast(g["tier_hint_max"], pa.int32()), "sources": sources})
        out = out.sort_by([("query", "ascending"), ("item_id", "ascending")])
        table.write_labels(out, req.output_path)
        return LabelResult(stats={"labels": float(out.num_rows)})


def softmax_loss(inp: LossInput) -> LossOutput:
    """Listwise softmax cross-entropy towards the top tier (> 0) of each row,
    over valid entries; rows without a positive are skipped. The same
    formula as sdk/sdktest.SoftmaxLoss (Go)."""
    s = inp.scores.astype(np.float64)
    grad = np.zeros_like(s)
    loss, rows = 0.0, 0
    for b in range(inp.b):
        v = inp.valid[b]
        if not v.any():
            continue
        top = int(inp.tiers[b][v].max())
        if top <= 0:
            continue
        e = np.where(v, np.exp(s[b] - s[b][v].max()), 0.0)
        p = e / e.sum()
        pos = v & (inp.tiers[b] == top)
        target = np.where(pos, 1.0 / pos.sum(), 0.0)
        loss -= float((target[pos] * np.log(p[pos])).sum())
        grad[b] = np.where(v, p - target, 0.0)
        rows += 1
    if rows:
        loss /= rows
        grad /= rows
    return LossOutput(loss=loss, grad=grad.astype(np.float32))


@dataclass
class SoftmaxParams:
    bad_shape: bool = False


class SoftmaxLoss(Loss):
    def describe(self) -> Info:
        return Info(name=LOSS_NAME, kind=Kind.LOSS, version="0.0.1",
                    description="test loss: softmax cross-entropy towards the top tier of each row",
                    params_schema={"type": "object", "additionalProperties": False,
                                   "properties": {"bad_shape": {"type": "boolean"}}})

    def compute(self, ctx: Context, inp: LossInput) -> LossOutput:
        p = decode_params(inp.params, SoftmaxParams)
        out = softmax_loss(inp)
        if p.bad_shape:
            out.grad = out.grad[:, :-1]
        return out


@dataclass
class LoopParams:
    steps: int = 3
    b: int = 4
    n: int = 8


def loss_inputs(seed: int, steps: int, b: int, n: int) -> list[LossInput]:
    """Seeded random loss inputs (every row has one positive)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        scores = rng.standard_normal((b, n)).astype(np.float32)
        valid = rng.integers(0, 10, (b, n)) != 0
        tiers = np.zeros((b, n), np.int32)
        for row in range(b):
            tiers[row, row % n] = rng.integers(1, 5)
            valid[row, row % n] = True
        out.append(LossInput(scores=scores, tiers=tiers, valid=valid))
    return out


class LoopRetriever(Retriever):
    def describe(self) -> Info:
        return Info(name=RETRIEVER_NAME, kind=Kind.RETRIEVER, version="0.0.1",
                    description="test retriever: Train calls the loss on seeded random matrices and records "
                                "its answers beside the SDK's own softmax; Search ranks items by id",
                    params_schema={"type": "object", "additionalProperties": False, "properties": {
                        "steps": {"type": "integer"}, "b": {"type": "integer"}, "n": {"type": "integer"}}})

    def train(self, ctx: Context, req: TrainRequest, progress: Callable[[Progress], None]) -> None:
        p = decode_params(req.params, LoopParams)
        if req.loss is None:
            raise ValueError("train: the loop retriever needs a loss")
        record: dict[str, list[float]] = {"remote_loss": [], "local_loss": [], "max_grad_diff": []}
        for step, inp in enumerate(loss_inputs(req.seed, p.steps, p.b, p.n)):
            inp.params = req.loss_params
            got = req.loss.compute(ctx, inp)
            want = softmax_loss(inp)
            record["remote_loss"].append(got.loss)
            record["local_loss"].append(want.loss)
            record["max_grad_diff"].append(float(np.abs(got.grad - want.grad).max()))
            progress(Progress(step=step + 1, total_steps=p.steps, loss=got.loss))
        os.makedirs(req.model_dir, exist_ok=True)
        tmp = os.path.join(req.model_dir, "model.json.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, os.path.join(req.model_dir, "model.json"))

    def search(self, ctx: Context, req: SearchRequest) -> None:
        if not req.items_paths:
            raise ValueError("search: no items tables given")
        items = sorted(set(pa.concat_tables([pq.read_table(p, columns=["item_id"])
                                             for p in req.items_paths])["item_id"].to_pylist()))
        if not req.include_synthetic:
            items = [i for i in items if not i.startswith("llm:")]
        queries = sorted(set(pq.read_table(req.queries_path, columns=["query"])["query"].to_pylist()))
        top = items[: req.k]
        rows = [(q, it, r + 1, 1.0 / (r + 1)) for q in queries for r, it in enumerate(top)]
        t = pa.table({"query": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                      "rank": pa.array([r[2] for r in rows], pa.int32()), "score": [r[3] for r in rows]})
        table.write_results(t, req.output_path)

    def score(self, ctx: Context, req: ScoreRequest) -> None:
        pairs = pq.read_table(req.pairs_path, columns=["query", "item_id"])
        t = pairs.append_column("score", pa.array([0.0] * pairs.num_rows, pa.float64()))
        table.write_scores(t, req.output_path)


def main() -> None:
    serve(RowsSource(), FlatLabeler(), SoftmaxLoss(), LoopRetriever())


if __name__ == "__main__":
    main()
