"""go-plugin's gRPC broker, plugin side (docs/plugin-protocol.md, "Broker").

The host opens plugin.GRPCBroker/StartStream on the plugin's server and
sends a ConnInfo {service_id, network, address} for every service it serves
to the plugin (for crops: the loss, once per Train call, with the id in
TrainRequest.loss_broker_id). The plugin dials that address with the same
mutual TLS as the main connection, the roles swapped: it presents its own
certificate as the client and trusts only the host's."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc

from ._gen.goplugin import grpc_broker_pb2_grpc as broker_grpc
from ._wire import GRPC_OPTIONS


class Broker(broker_grpc.GRPCBrokerServicer):  # type: ignore[misc]
    """Receives the host's ConnInfo messages and dials them by id."""

    def __init__(self, tls: tuple[bytes, bytes, bytes] | None) -> None:
        #: (host cert PEM, our cert PEM, our key PEM); None = plaintext.
        self._tls = tls
        self._cond = threading.Condition()
        self._conns: dict[int, Any] = {}

    def StartStream(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        for info in request_iterator:
            if info.HasField("knock"):
                continue  # multiplexed brokers only; crops' host does not use them
            with self._cond:
                self._conns[info.service_id] = info
                self._cond.notify_all()
        return
        yield  # a generator: the plugin never sends on this stream

    def dial(self, service_id: int, timeout: float = 5.0) -> grpc.Channel:
        """A channel to the service the host serves under service_id. Like
        go-plugin, waits up to timeout seconds for the ConnInfo."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while service_id not in self._conns:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"broker: no connection info for service id {service_id} "
                                       f"from the host within {timeout:g} s")
                self._cond.wait(left)
            info = self._conns.pop(service_id)
        if info.network == "unix":
            target = "unix:" + info.address
        elif info.network == "tcp":
            target = info.address
        else:
            raise ValueError(f"broker: service id {service_id}: unknown network {info.network!r}")
        options = [*GRPC_OPTIONS]
        if self._tls is None:
            return grpc.insecure_channel(target, options=options)
        host_cert, cert, key = self._tls
        creds = grpc.ssl_channel_credentials(root_certificates=host_cert, private_key=key, certificate_chain=cert)
        options.append(("grpc.ssl_target_name_override", "localhost"))
        return grpc.secure_channel(target, creds, options=options)
