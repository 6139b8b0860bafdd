"""LossClient: a Loss behind a gRPC channel (the loss plugin the runner
started, reached through the host's broker)."""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
import tempfile
import threading
from typing import Any

import grpc
import numpy as np

from ._gen.crops.v1 import plugin_pb2 as pb
from ._gen.crops.v1 import plugin_pb2_grpc as pb_grpc
from ._wire import info_from_proto, pack_loss_request, unpack_loss_response
from .context import Context
from .types import Info, Loss, LossInput, LossOutput, PluginError


def raise_status(e: grpc.RpcError, call: str) -> None:
    """Turn a gRPC error into PluginError (the plugin's own error) or re-raise."""
    code = e.code() if hasattr(e, "code") else None
    if code == grpc.StatusCode.UNKNOWN:
        raise PluginError(f"{call}: {e.details()}") from None
    raise e


class _Segment:
    """The client's shared-memory segment (docs/plugin-protocol.md section 6):
    a file under /dev/shm, mode 0600, named after this process like the Go
    client's (crops-loss-<pid>-<random>.seg, so that a Go client can remove
    it if this process dies without close), mapped for the client's life."""

    def __init__(self, size: int) -> None:
        d = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        fd, self.path = tempfile.mkstemp(prefix=f"crops-loss-{os.getpid()}-", suffix=".seg", dir=d)
        try:
            # Allocate now: a full /dev/shm fails here (the call goes inline),
            # not with SIGBUS on a later write.
            os.posix_fallocate(fd, 0, size)
            self.mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            os.unlink(self.path)
            raise
        os.close(fd)
        self.size = size

    def close(self) -> None:
        self.mm.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class LossClient(Loss):
    """The loss plugin behind a channel. Calls whose tiers fit tiers8 put the
    matrices in a shared-memory segment and send only the control message
    (ComputeRequest.shm_path), as the Go client does; CROPS_LOSS_SHM=off, a
    platform without /dev/shm semantics, or a server that rejects the first
    such call keeps them inline."""

    def __init__(self, channel: grpc.Channel, timeout: float | None = None) -> None:
        self._channel = channel
        self._stub: Any = pb_grpc.LossServiceStub(channel)
        self._timeout = timeout
        self._lock = threading.Lock()  # one call at a time uses the segment
        self._seg: _Segment | None = None
        self._shm_off = sys.platform != "linux" or os.environ.get("CROPS_LOSS_SHM", "") == "off"
        self._shm_ok = False  # a call through the segment succeeded
        self._probe_failed = False  # off because the first call failed

    def describe(self) -> Info:
        try:
            return info_from_proto(self._stub.Describe(pb.DescribeRequest(), timeout=self._timeout))
        except grpc.RpcError as e:
            raise_status(e, "Describe")
            raise

    def compute(self, ctx: Context, inp: LossInput) -> LossOutput:
        req = pack_loss_request(inp)
        timeout = ctx.time_remaining() if ctx is not None else None
        timeout = timeout if timeout is not None else self._timeout
        if not self._shm_off and req.tiers8 and self._lock.acquire(blocking=False):
            try:
                out = self._compute_shm(req, timeout)
            finally:
                self._lock.release()
            if out is not None:
                return out
        try:
            resp = self._stub.Compute(req, timeout=timeout)
        except grpc.RpcError as e:
            self._inline_done(failed=True)
            raise_status(e, "Compute")
            raise
        self._inline_done(failed=False)
        return unpack_loss_response(resp, int(req.b), int(req.n))

    def _compute_shm(self, req: Any, timeout: float | None) -> LossOutput | None:
        """The call through the segment, or None to send it inline."""
        if self._shm_off:
            return None
        b, n = int(req.b), int(req.n)
        count = b * n
        if self._seg is None or self._seg.size < 9 * count:
            if self._seg is not None:
                self._seg.close()
                self._seg = None
            try:
                self._seg = _Segment(9 * count)
            except OSError:
                self._shm_off = True
                return None
        mm = self._seg.mm
        mm[0:4 * count] = req.scores
        mm[8 * count:9 * count] = req.tiers8
        shm_req = pb.ComputeRequest(b=b, n=n, params=req.params, shm_path=self._seg.path)
        try:
            resp = self._stub.Compute(shm_req, timeout=timeout)
        except grpc.RpcError as e:
            if not self._shm_ok and e.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                # A server (or relay) from before shm_path: inline from now on,
                # unless the inline call fails too (then the loss failed).
                self._shm_off = self._probe_failed = True
                self._seg.close()
                self._seg = None
                return None
            raise_status(e, "Compute")
            raise
        self._shm_ok = True
        if resp.grad_in_shm:
            grad = np.frombuffer(mm, dtype="<f4", count=count, offset=4 * count).astype(np.float32).reshape(b, n)
            return LossOutput(loss=float(resp.loss), grad=grad)
        return unpack_loss_response(resp, b, n)

    def _inline_done(self, failed: bool) -> None:
        if self._probe_failed:
            with self._lock:
                if self._probe_failed:
                    self._probe_failed = False
                    if failed:
                        self._shm_off = False

    def close(self) -> None:
        with self._lock:
            if self._seg is not None:
                self._seg.close()
                self._seg = None
        self._channel.close()
