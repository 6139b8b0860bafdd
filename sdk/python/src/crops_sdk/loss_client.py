"""LossClient: a Loss behind a gRPC channel (the loss plugin the runner
started, reached through the host's broker)."""

from __future__ import annotations

from typing import Any

import grpc

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


class LossClient(Loss):
    def __init__(self, channel: grpc.Channel, timeout: float | None = None) -> None:
        self._channel = channel
        self._stub: Any = pb_grpc.LossServiceStub(channel)
        self._timeout = timeout

    def describe(self) -> Info:
        try:
            return info_from_proto(self._stub.Describe(pb.DescribeRequest(), timeout=self._timeout))
        except grpc.RpcError as e:
            raise_status(e, "Describe")
            raise

    def compute(self, ctx: Context, inp: LossInput) -> LossOutput:
        req = pack_loss_request(inp)
        timeout = ctx.time_remaining() if ctx is not None else None
        try:
            resp = self._stub.Compute(req, timeout=timeout if timeout is not None else self._timeout)
        except grpc.RpcError as e:
            raise_status(e, "Compute")
            raise
        return unpack_loss_response(resp, int(req.b), int(req.n))

    def close(self) -> None:
        self._channel.close()
