"""Context: what a plugin call knows about its caller (the Python side of Go's
ctx). crops cancels a call on Ctrl-C and on the per-call timeout; long calls
should check ``ctx.cancelled()`` or call ``ctx.raise_if_cancelled()`` between
units of work."""

from __future__ import annotations

import time
from typing import Any


class Cancelled(Exception):
    """Raised by Context.raise_if_cancelled when the caller went away."""


class Context:
    """A call's context. ``Context()`` is a context that is never cancelled
    (for tests and in-process use); the server builds one per gRPC call."""

    def __init__(self, grpc_context: Any = None, deadline: float | None = None) -> None:
        self._grpc = grpc_context
        self._deadline = deadline

    def cancelled(self) -> bool:
        if self._grpc is not None and not self._grpc.is_active():
            return True
        return self._deadline is not None and time.monotonic() >= self._deadline

    def time_remaining(self) -> float | None:
        """Seconds left before the caller's deadline, or None for no deadline."""
        if self._grpc is not None:
            left = self._grpc.time_remaining()
            # grpcio reports a call without a deadline as 0 (or as a far
            # future); an expired deadline makes the call inactive instead.
            if left is not None and 0 < left < 1e8:
                return float(left)
        if self._deadline is not None:
            return max(0.0, self._deadline - time.monotonic())
        return None

    def raise_if_cancelled(self) -> None:
        if self.cancelled():
            raise Cancelled("the caller cancelled the call or its deadline passed")
