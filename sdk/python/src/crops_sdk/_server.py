"""gRPC servicers: generated services -> the plugin's Python object, for each
kind (the Python side of the Go SDK's sdk/grpc.go)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from ._gen.crops.v1 import plugin_pb2 as pb
from ._gen.crops.v1 import plugin_pb2_grpc as pb_grpc
from ._wire import compute_shm, error_text, info_to_proto, pack_loss_response, unpack_loss_request
from .broker import Broker
from .context import Cancelled, Context
from .log import logger
from .loss_client import LossClient
from .types import (
    CandidateTable,
    Describer,
    Labeler,
    LabelRequest,
    Loss,
    MineRequest,
    PositiveSource,
    Progress,
    Retriever,
    ScoreRequest,
    SearchRequest,
    TrainRequest,
)

T = TypeVar("T")


def _run(call: str, context: Any, f: Callable[[Context], T]) -> T:
    """Run plugin code; turn an exception into the status the host expects:
    UNKNOWN with "Type: message (at file:line in func: code)" for the
    plugin's own errors (the host reports them as the plugin's error, like a
    Go plugin's), CANCELLED when the caller went away."""
    ctx = Context(context)
    try:
        return f(ctx)
    except Exception as e:
        if isinstance(e, Cancelled) or not context.is_active():
            context.abort(grpc.StatusCode.CANCELLED, f"{call}: {error_text(e)}")
        text = error_text(e)
        logger().error(f"{call} failed: {text}", exc_info=e)
        context.abort(grpc.StatusCode.UNKNOWN, text)
        raise  # unreachable: abort raises


def _describe(impl: Describer, context: Any) -> Any:
    return _run("Describe", context, lambda ctx: info_to_proto(impl.describe()))


def _stats(stats: dict[str, float] | None) -> dict[str, float]:
    return {str(k): float(v) for k, v in (stats or {}).items()}


class SourceServicer(pb_grpc.SourceServiceServicer):  # type: ignore[misc]
    def __init__(self, impl: PositiveSource) -> None:
        self.impl = impl

    def Describe(self, request: Any, context: Any) -> Any:
        return _describe(self.impl, context)

    def Mine(self, req: Any, context: Any) -> Any:
        def call(ctx: Context) -> Any:
            res = self.impl.mine(ctx, MineRequest(dataset_dir=req.dataset_dir, params=bytes(req.params),
                                                  output_path=req.output_path, items_output_path=req.items_output_path,
                                                  work_dir=req.work_dir, seed=req.seed))
            report = b"" if res.report is None else json.dumps(res.report).encode()
            return pb.MineResponse(stats=_stats(res.stats), report=report)
        return _run("Mine", context, call)


class LabelerServicer(pb_grpc.LabelerServiceServicer):  # type: ignore[misc]
    def __init__(self, impl: Labeler) -> None:
        self.impl = impl

    def Describe(self, request: Any, context: Any) -> Any:
        return _describe(self.impl, context)

    def Label(self, req: Any, context: Any) -> Any:
        def call(ctx: Context) -> Any:
            cands = [CandidateTable(source=c.source, path=c.path) for c in req.candidates]
            res = self.impl.label(ctx, LabelRequest(dataset_dir=req.dataset_dir, candidates=cands,
                                                    params=bytes(req.params), output_path=req.output_path,
                                                    seed=req.seed))
            return pb.LabelResponse(stats=_stats(res.stats))
        return _run("Label", context, call)


class LossServicer(pb_grpc.LossServiceServicer):  # type: ignore[misc]
    def __init__(self, impl: Loss) -> None:
        self.impl = impl

    def Describe(self, request: Any, context: Any) -> Any:
        return _describe(self.impl, context)

    def Compute(self, req: Any, context: Any) -> Any:
        def call(ctx: Context) -> Any:
            if req.shm_path:
                return compute_shm(lambda inp: self.impl.compute(ctx, inp), req)
            inp = unpack_loss_request(req)
            return pack_loss_response(self.impl.compute(ctx, inp), inp.b, inp.n)
        return _run("Compute", context, call)


class RetrieverServicer(pb_grpc.RetrieverServiceServicer):  # type: ignore[misc]
    def __init__(self, impl: Retriever, broker: Broker | None) -> None:
        self.impl = impl
        self.broker = broker

    def Describe(self, request: Any, context: Any) -> Any:
        return _describe(self.impl, context)

    def Train(self, req: Any, context: Any) -> Iterator[Any]:
        """Streams Progress events from a worker thread and ends with exactly
        one TrainDone; an error of the plugin's train ends it with ok=false
        and the error text (as the Go SDK does)."""
        ctx = Context(context)
        loss: LossClient | None = None
        if req.loss_broker_id:
            if self.broker is None:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "train: a loss was passed but no broker runs")
            try:
                loss = LossClient(self.broker.dial(req.loss_broker_id))  # type: ignore[union-attr]
            except Exception as e:
                context.abort(grpc.StatusCode.UNAVAILABLE,
                              f"train: dial the host's loss service (broker id {req.loss_broker_id}): {e}")
        tr = TrainRequest(train_table=req.train_table, items_paths=list(req.items_paths), dataset_dir=req.dataset_dir,
                          params=bytes(req.params), model_dir=req.model_dir, seed=req.seed, loss=loss,
                          loss_params=bytes(req.loss_params))
        events: queue.Queue[Any] = queue.Queue()

        def progress(p: Progress) -> None:
            events.put(pb.TrainEvent(progress=pb.Progress(
                epoch=int(p.epoch), step=int(p.step), total_steps=int(p.total_steps), loss=float(p.loss),
                examples_per_sec=float(p.examples_per_sec), message=p.message)))

        def work() -> None:
            try:
                self.impl.train(ctx, tr, progress)
                events.put(pb.TrainEvent(done=pb.TrainDone(ok=True)))
            except Exception as e:
                text = error_text(e)
                logger().error(f"Train failed: {text}", exc_info=e)
                events.put(pb.TrainEvent(done=pb.TrainDone(ok=False, error=text)))

        t = threading.Thread(target=work, name="crops-train", daemon=True)
        t.start()
        try:
            while True:
                try:
                    ev = events.get(timeout=0.5)
                except queue.Empty:
                    if not context.is_active():
                        return  # the host went away; train sees ctx.cancelled()
                    continue
                yield ev
                if ev.HasField("done"):
                    break
        finally:
            if loss is not None:
                loss.close()

    def Search(self, req: Any, context: Any) -> Any:
        def call(ctx: Context) -> Any:
            self.impl.search(ctx, SearchRequest(model_dir=req.model_dir, items_paths=list(req.items_paths),
                                                queries_path=req.queries_path, k=req.k, output_path=req.output_path,
                                                params=bytes(req.params), include_synthetic=req.include_synthetic))
            return pb.SearchResponse()
        return _run("Search", context, call)

    def Score(self, req: Any, context: Any) -> Any:
        def call(ctx: Context) -> Any:
            self.impl.score(ctx, ScoreRequest(model_dir=req.model_dir, items_paths=list(req.items_paths),
                                              pairs_path=req.pairs_path, output_path=req.output_path,
                                              params=bytes(req.params)))
            return pb.ScoreResponse()
        return _run("Score", context, call)
