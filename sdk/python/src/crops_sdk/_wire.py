"""What crosses the wire: Info and loss matrices in their packed forms
(proto/crops/v1/plugin.proto), and plugin errors as gRPC status messages."""

from __future__ import annotations

import json
import mmap
import os
import stat
import traceback
from typing import Any

import numpy as np
import numpy.typing as npt

from ._gen.crops.v1 import plugin_pb2 as pb
from .types import Info, Kind, LossInput, LossOutput

#: One gRPC message may be this large: a loss call at B=1024, N=4096 moves
#: 16 MiB of scores (gRPC's default limit is 4 MiB).
MAX_MESSAGE_BYTES = 2**31 - 1

GRPC_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


def info_to_proto(info: Info) -> Any:
    return pb.Info(name=info.name, kind=info.kind.value, version=info.version, description=info.description,
                   params_schema=json.dumps(info.params_schema).encode(), capabilities=info.capabilities,
                   env=info.env)


def info_from_proto(p: Any) -> Info:
    schema = json.loads(p.params_schema) if p.params_schema else {}
    return Info(name=p.name, kind=Kind(p.kind), version=p.version, description=p.description,
                params_schema=schema, capabilities=list(p.capabilities), env=list(p.env))


def error_text(e: BaseException) -> str:
    """An exception as the host shows it: type, message and the traceback's
    last frame (file:line in function), so that an error names where it
    happened without the whole stack."""
    text = f"{type(e).__name__}: {e}"
    tb = traceback.extract_tb(e.__traceback__)
    # The last frame of the plugin's own code: frames inside gRPC, protobuf
    # and the SDK's plumbing say nothing about where the plugin failed.
    own = [f for f in tb if not _plumbing(f.filename)]
    if own or tb:
        f = (own or tb)[-1]
        text += f" (at {os.path.basename(f.filename)}:{f.lineno} in {f.name}"
        if f.line:
            text += f": {f.line.strip()}"
        text += ")"
    return text


_SDK_DIR = os.path.dirname(os.path.abspath(__file__))


def _plumbing(filename: str) -> bool:
    path = os.path.abspath(filename)
    if os.path.dirname(path) == _SDK_DIR:
        return os.path.basename(path) != "testplugins.py"
    parts = path.split(os.sep)
    return "grpc" in parts or ("google" in parts and "protobuf" in parts)


def pack_loss_request(inp: LossInput) -> Any:
    """A ComputeRequest from a LossInput: tiers8 (one int8 per entry, -1 for
    padding) when every valid tier is in [0, 127], else int32 tiers + mask."""
    scores = np.asarray(inp.scores)
    if scores.ndim != 2:
        raise ValueError(f"loss input: scores have shape {scores.shape}, expected (B, N)")
    b, n = scores.shape
    tiers = np.asarray(inp.tiers)
    valid = np.asarray(inp.valid, dtype=bool)
    if tiers.shape != (b, n) or valid.shape != (b, n):
        raise ValueError(f"loss input: scores {scores.shape}, tiers {tiers.shape}, valid {valid.shape}: "
                         "expected the same (B, N) shape")
    req = pb.ComputeRequest(b=b, n=n, scores=np.ascontiguousarray(scores, dtype="<f4").tobytes(),
                            params=inp.params)
    vt = tiers[valid]
    if vt.size == 0 or (vt.min() >= 0 and vt.max() <= 127):
        req.tiers8 = np.where(valid, tiers, -1).astype(np.int8).tobytes()
    else:
        req.tiers = np.ascontiguousarray(tiers, dtype="<i4").tobytes()
        req.valid = valid.astype(np.uint8).tobytes()
    return req


def unpack_loss_request(req: Any) -> LossInput:
    b, n = int(req.b), int(req.n)
    if b < 0 or n < 0:
        raise ValueError(f"loss input: negative shape B={b} N={n}")
    if len(req.scores) != 4 * b * n:
        raise ValueError(f"scores: {len(req.scores)} bytes, expected {4 * b * n} (= 4 x {b * n} float32)")
    scores = np.frombuffer(req.scores, dtype="<f4").astype(np.float32).reshape(b, n)
    tiers: npt.NDArray[np.int32]
    if req.tiers8 or (b * n == 0 and not req.tiers):
        if len(req.tiers8) != b * n:
            raise ValueError(f"tiers8: {len(req.tiers8)} bytes, expected {b * n} (one per score)")
        t8 = np.frombuffer(req.tiers8, dtype=np.int8).reshape(b, n)
        if (t8 < -1).any():
            raise ValueError("tiers8: values below -1: expected a tier in [0, 127] or -1 for padding")
        valid = t8 >= 0
        tiers = np.where(valid, t8, 0).astype(np.int32)
    else:
        if len(req.tiers) != 4 * b * n or len(req.valid) != b * n:
            raise ValueError(f"tiers: {len(req.tiers)} bytes and valid: {len(req.valid)} bytes, "
                             f"expected {4 * b * n} and {b * n}")
        tiers = np.frombuffer(req.tiers, dtype="<i4").astype(np.int32).reshape(b, n)
        valid = np.frombuffer(req.valid, dtype=np.uint8).reshape(b, n) != 0
    return LossInput(scores=scores, tiers=tiers, valid=valid, params=bytes(req.params))


def pack_loss_response(out: LossOutput, b: int, n: int) -> Any:
    grad = np.asarray(out.grad)
    if grad.shape != (b, n):
        raise ValueError(f"the loss returned a gradient of shape {grad.shape}, expected (B, N) = ({b}, {n})")
    loss = float(out.loss)
    return pb.ComputeResponse(loss=loss, grad=np.ascontiguousarray(grad, dtype="<f4").tobytes())


def unpack_loss_response(resp: Any, b: int, n: int) -> LossOutput:
    if len(resp.grad) != 4 * b * n:
        raise ValueError(f"loss gradient: {len(resp.grad)} bytes, expected {4 * b * n}")
    grad = np.frombuffer(resp.grad, dtype="<f4").astype(np.float32).reshape(b, n)
    return LossOutput(loss=float(resp.loss), grad=grad)


def compute_shm(compute: Any, req: Any) -> Any:
    """Serves a ComputeRequest whose matrices are in a shared-memory segment
    (req.shm_path, written by the caller): scores (B*N float32 LE) at offset 0,
    the gradient's room at 4*B*N, tiers8 at 8*B*N. compute maps a LossInput to
    a LossOutput; the gradient goes back into the segment (grad_in_shm)."""
    b, n = int(req.b), int(req.n)
    count = b * n
    if b < 0 or n < 0 or count == 0:
        raise ValueError(f"shm_path {req.shm_path}: shape B={b} N={n}: send empty or negative shapes inline")
    if req.scores or req.tiers8 or req.tiers or req.valid:
        raise ValueError(
            f"loss input: shm_path {req.shm_path} and inline matrices in one request: send one or the other")
    if not os.path.isabs(req.shm_path):
        raise ValueError(f"shm_path {req.shm_path!r}: expected an absolute path")
    fd = os.open(req.shm_path, os.O_RDWR | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size < 9 * count:
            raise ValueError(f"shm_path {req.shm_path}: {st.st_size} bytes, expected a regular file of at least "
                             f"{9 * count} (9 x B*N)")
        mm = mmap.mmap(fd, 9 * count, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    try:
        # Copies, so that no view of the mapping outlives it.
        scores = np.frombuffer(mm, dtype="<f4", count=count).astype(np.float32).reshape(b, n)
        t8 = np.frombuffer(mm, dtype=np.int8, count=count, offset=8 * count).copy().reshape(b, n)
        if (t8 < -1).any():
            raise ValueError("tiers8: values below -1: expected a tier in [0, 127] or -1 for padding")
        valid = t8 >= 0
        tiers = np.where(valid, t8, 0).astype(np.int32)
        out = compute(LossInput(scores=scores, tiers=tiers, valid=valid, params=bytes(req.params)))
        grad = np.asarray(out.grad)
        if grad.shape != (b, n):
            raise ValueError(f"the loss returned a gradient of shape {grad.shape}, expected (B, N) = ({b}, {n})")
        mm[4 * count:8 * count] = np.ascontiguousarray(grad, dtype="<f4").tobytes()
        return pb.ComputeResponse(loss=float(out.loss), grad_in_shm=True)
    finally:
        mm.close()
