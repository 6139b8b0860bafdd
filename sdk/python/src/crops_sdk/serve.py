"""serve(): the whole main of a Python crops plugin (the mirror of sdk.Serve).

    import crops_sdk

    class Dwell(crops_sdk.PositiveSource): ...

    if __name__ == "__main__":
        crops_sdk.serve(Dwell())

The program then understands, like a Go plugin:

    describe           print a JSON description of every plugin it serves
    serve KIND NAME    serve one plugin to a crops host (go-plugin handshake)
    (no arguments)     when it serves exactly one plugin, serve it

The protocol it speaks is docs/plugin-protocol.md."""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent import futures
from typing import Any, TextIO

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import _server
from ._gen.crops.v1 import plugin_pb2_grpc as pb_grpc
from ._gen.goplugin import grpc_broker_pb2_grpc as broker_grpc
from ._gen.goplugin import grpc_controller_pb2 as controller_pb
from ._gen.goplugin import grpc_controller_pb2_grpc as controller_grpc
from ._tls import generate_cert, handshake_cert
from ._wire import GRPC_OPTIONS, error_text
from .broker import Broker
from .log import logger
from .types import (
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    PROTOCOL_VERSION,
    SDK_VERSION,
    Describer,
    Kind,
    Labeler,
    Loss,
    PositiveSource,
    Retriever,
)

#: go-plugin's core protocol version, the first field of the handshake line.
CORE_PROTOCOL_VERSION = 1
#: The health service name go-plugin's client checks.
HEALTH_SERVICE = "plugin"

_INTERFACES: dict[Kind, type] = {
    Kind.SOURCE: PositiveSource,
    Kind.LABELER: Labeler,
    Kind.LOSS: Loss,
    Kind.RETRIEVER: Retriever,
}


class UsageError(Exception):
    pass


def _plugins(impls: Sequence[Describer]) -> dict[tuple[Kind, str], Describer]:
    out: dict[tuple[Kind, str], Describer] = {}
    for impl in impls:
        info = impl.describe()
        kind = Kind(info.kind)
        if not isinstance(impl, _INTERFACES[kind]):
            raise TypeError(f"{type(impl).__name__} describes itself as a {kind.value} plugin "
                            f"but does not subclass crops_sdk.{_INTERFACES[kind].__name__}")
        if (kind, info.name) in out:
            raise ValueError(f"two {kind.value} plugins named {info.name!r}")
        out[(kind, info.name)] = impl
    return out


def description(impls: Sequence[Describer]) -> dict[str, Any]:
    """What `describe` prints: {"protocol_version", "sdk_version", "plugins"}."""
    plugins = _plugins(impls)
    order = list(Kind)
    infos = [p.describe() for _, p in sorted(plugins.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1]))]
    return {"protocol_version": PROTOCOL_VERSION, "sdk_version": SDK_VERSION,
            "plugins": [i.to_json() for i in infos]}


def main(impls: Sequence[Describer], argv: Sequence[str], stdout: TextIO, stderr: TextIO) -> int:
    """Run the plugin command line on argv and return the exit status."""
    prog = os.path.basename(sys.argv[0]) if sys.argv else "plugin"
    try:
        plugins = _plugins(impls)
    except Exception as e:
        print(f"{prog}: {error_text(e)}", file=stderr)
        return 1
    args = list(argv)
    if args == ["describe"]:
        try:
            json.dump(description(impls), stdout, indent=2)
            stdout.write("\n")
        except Exception as e:
            print(f"describe: {error_text(e)}", file=stderr)
            return 1
        return 0
    if len(args) == 3 and args[0] == "serve":
        try:
            key = (Kind(args[1]), args[2])
        except ValueError:
            print(f"unknown plugin kind {args[1]!r}: expected one of source, labeler, loss, retriever", file=stderr)
            return 2
        if key not in plugins:
            have = ", ".join(f"{k.value} {n}" for k, n in plugins) or "none"
            print(f"this program serves no {args[1]} plugin named {args[2]!r} (it serves: {have})", file=stderr)
            return 1
        return _serve_checked(key[0], plugins[key], prog, stderr)
    if not args:
        if len(plugins) != 1:
            names = ", ".join(f"{k.value} {n}" for k, n in plugins)
            print(f"this program holds {len(plugins)} plugins ({names}): say which to serve\n"
                  f"usage: {prog} describe | serve KIND NAME", file=stderr)
            return 2
        ((kind, _), impl), = plugins.items()
        return _serve_checked(kind, impl, prog, stderr)
    print(f"unexpected arguments {args!r}\nusage: {prog} describe | serve KIND NAME", file=stderr)
    return 2


def _serve_checked(kind: Kind, impl: Describer, prog: str, stderr: TextIO) -> int:
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        print(f"this is a crops plugin ({kind.value}); it is started by crops, not by hand. "
              f"Try `{prog} describe`", file=stderr)
        return 1
    serve_plugin(kind, impl)
    return 0


def serve(*impls: Describer) -> None:
    """The plugin program's main: run the command line and exit."""
    code = main(impls, sys.argv[1:], sys.stdout, sys.stderr)
    # Leave without the interpreter's teardown: with torch and transformers
    # loaded it spends seconds garbage-collecting their modules (4-9 s
    # measured on a loaded machine), past the host's 2 s grace after
    # Shutdown, and the host then kills the process and logs an error.
    # atexit handlers still run, and the streams are flushed.
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def serve_plugin(kind: Kind, impl: Describer) -> None:
    """Serve impl to the crops host that started this process, until the
    host shuts it down (GRPCController/Shutdown) or goes away."""
    log = logger()
    # Ctrl-C in a terminal reaches the whole process group: the host decides
    # when its plugins stop, as go-plugin's Serve does for Go plugins.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "").encode()
    tls: tuple[bytes, bytes, bytes] | None = None
    cert_field = ""
    if client_cert:
        cert_pem, key_pem, der = generate_cert()
        tls = (client_cert, cert_pem, key_pem)
        cert_field = handshake_cert(der)
        creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=client_cert,
                                            require_client_auth=True)
    else:
        log.warning("PLUGIN_CLIENT_CERT is not set: serving without TLS (the crops host always sets it)")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="crops-rpc"),
                         options=GRPC_OPTIONS)
    broker = Broker(tls)
    stop = threading.Event()

    class Controller(controller_grpc.GRPCControllerServicer):  # type: ignore[misc]
        def Shutdown(self, request: Any, context: Any) -> Any:
            stop.set()
            return controller_pb.Empty()

    health_servicer = health.HealthServicer()
    health_servicer.set(HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    controller_grpc.add_GRPCControllerServicer_to_server(Controller(), server)
    broker_grpc.add_GRPCBrokerServicer_to_server(broker, server)
    if kind is Kind.SOURCE:
        pb_grpc.add_SourceServiceServicer_to_server(_server.SourceServicer(impl), server)  # type: ignore[arg-type]
    elif kind is Kind.LABELER:
        pb_grpc.add_LabelerServiceServicer_to_server(_server.LabelerServicer(impl), server)  # type: ignore[arg-type]
    elif kind is Kind.LOSS:
        pb_grpc.add_LossServiceServicer_to_server(_server.LossServicer(impl), server)  # type: ignore[arg-type]
    else:
        pb_grpc.add_RetrieverServiceServicer_to_server(
            _server.RetrieverServicer(impl, broker), server)  # type: ignore[arg-type]

    sock_dir = tempfile.mkdtemp(prefix="crops-plugin-", dir=os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or None)
    sock = os.path.join(sock_dir, "plugin.sock")
    try:
        target = "unix:" + sock
        port = server.add_secure_port(target, creds) if tls else server.add_insecure_port(target)
        if port == 0:
            raise RuntimeError(f"cannot listen on {sock}")
        server.start()
        # The handshake line (docs/plugin-protocol.md); then stdout points at
        # stderr, so that a stray print() reaches the host's log instead of
        # a pipe nobody reads.
        versions = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "")
        if versions and str(PROTOCOL_VERSION) not in versions.split(","):
            log.error(f"the host speaks crops plugin protocol(s) {versions}; this SDK speaks {PROTOCOL_VERSION}")
        line = f"{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|unix|{sock}|grpc|{cert_field}\n"
        sys.stdout.write(line)
        sys.stdout.flush()
        os.dup2(2, 1)
        stop.wait()
        server.stop(grace=0.5).wait()
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
