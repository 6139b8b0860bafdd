"""testkit: test a Python plugin over the real protocol without Go.

PluginProcess starts a plugin program exactly as the crops host does
(docs/plugin-protocol.md): magic cookie, protocol version, a one-time P-256
client certificate, the handshake line, mutual TLS on the announced socket,
go-plugin's broker for the loss, and GRPCController/Shutdown to stop it.

    with PluginProcess([sys.executable, "my_plugin.py"], Kind.SOURCE, "dwell") as p:
        res = p.mine(MineRequest(...))
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ._gen.crops.v1 import plugin_pb2 as pb
from ._gen.crops.v1 import plugin_pb2_grpc as pb_grpc
from ._gen.goplugin import grpc_broker_pb2 as broker_pb
from ._gen.goplugin import grpc_broker_pb2_grpc as broker_grpc
from ._gen.goplugin import grpc_controller_pb2 as controller_pb
from ._gen.goplugin import grpc_controller_pb2_grpc as controller_grpc
from ._server import LossServicer
from ._tls import cert_from_handshake, generate_cert
from ._wire import GRPC_OPTIONS, info_from_proto
from .loss_client import LossClient, raise_status
from .types import (
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    PROTOCOL_VERSION,
    Info,
    Kind,
    LabelRequest,
    LabelResult,
    Loss,
    MineRequest,
    MineResult,
    Progress,
    ScoreRequest,
    SearchRequest,
    TrainRequest,
)


class HandshakeError(RuntimeError):
    pass


class PluginProcess:
    """A plugin child process and a mutual-TLS gRPC connection to it."""

    def __init__(self, argv: Sequence[str], kind: Kind, name: str, env: dict[str, str] | None = None,
                 start_timeout: float = 30.0, tls: bool = True) -> None:
        self.kind, self.name = kind, name
        self._tmp = tempfile.mkdtemp(prefix="crops-testkit-")
        self._stderr_path = os.path.join(self._tmp, "stderr")
        self.cert_pem, self.key_pem, _ = generate_cert()
        full_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "TMPDIR": tempfile.gettempdir(),
                    MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": str(PROTOCOL_VERSION),
                    **({"PLUGIN_CLIENT_CERT": self.cert_pem.decode()} if tls else {}), **(env or {})}
        with open(self._stderr_path, "wb") as err:
            self.proc = subprocess.Popen([*argv, "serve", kind.value, name], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err, env=full_env)
        self._handshake(start_timeout, tls)

    # ---- lifecycle ---------------------------------------------------------

    def _handshake(self, timeout: float, tls: bool) -> None:
        lines: queue.Queue[bytes] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=timeout).decode().strip()
        except queue.Empty:
            self.kill()
            raise HandshakeError(f"no handshake line within {timeout:g} s{self.stderr_suffix()}") from None
        parts = line.split("|")
        if len(parts) < 6:
            self.proc.wait(timeout=5)
            raise HandshakeError(f"unrecognized handshake line {line!r} (exit status {self.proc.returncode})"
                                 f"{self.stderr_suffix()}")
        core, app, network, address, protocol, cert = parts[:6]
        if core != "1" or app != str(PROTOCOL_VERSION) or protocol != "grpc":
            self.kill()
            raise HandshakeError(f"handshake {line!r}: expected core protocol 1, crops protocol "
                                 f"{PROTOCOL_VERSION}, grpc")
        self.handshake_line = line
        target = "unix:" + address if network == "unix" else address
        if tls:
            if not cert:
                self.kill()
                raise HandshakeError("the plugin returned no certificate in its handshake line")
            self.plugin_cert_pem = cert_from_handshake(cert)
            creds = grpc.ssl_channel_credentials(root_certificates=self.plugin_cert_pem, private_key=self.key_pem,
                                                 certificate_chain=self.cert_pem)
            self.channel = grpc.secure_channel(target, creds,
                                               options=[*GRPC_OPTIONS, ("grpc.ssl_target_name_override", "localhost")])
        else:
            self.channel = grpc.insecure_channel(target, options=GRPC_OPTIONS)
        grpc.channel_ready_future(self.channel).result(timeout=timeout)
        self._broker_out: queue.Queue[Any] = queue.Queue()
        self._broker_stream = broker_grpc.GRPCBrokerStub(self.channel).StartStream(self._broker_messages())
        self._next_id = 0
        self._servers: list[tuple[grpc.Server, str]] = []

    def _broker_messages(self) -> Iterator[Any]:
        while True:
            msg = self._broker_out.get()
            if msg is None:
                return
            yield msg

    def health(self) -> str:
        resp = health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(service="plugin"),
                                                              timeout=5)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))

    def shutdown(self, timeout: float = 5.0) -> float:
        """GRPCController/Shutdown, then wait for the process; returns the
        seconds it took to exit."""
        t0 = time.monotonic()
        try:
            controller_grpc.GRPCControllerStub(self.channel).Shutdown(controller_pb.Empty(), timeout=timeout)
        except grpc.RpcError:
            pass  # the process may exit before answering
        self.proc.wait(timeout=timeout)
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if hasattr(self, "_broker_out"):
            self._broker_out.put(None)  # ends the broker stream
        for server, sock_dir in getattr(self, "_servers", []):
            server.stop(0)
            shutil.rmtree(sock_dir, ignore_errors=True)
        if self.proc.poll() is None and hasattr(self, "channel"):
            try:
                self.shutdown()
            except subprocess.TimeoutExpired:
                self.kill()
        self.kill()
        if hasattr(self, "channel"):
            self.channel.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> PluginProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stderr_lines(self) -> list[str]:
        with open(self._stderr_path, "rb") as f:
            return f.read().decode(errors="replace").splitlines()

    def stderr_suffix(self, n: int = 20) -> str:
        lines = self.stderr_lines()[-n:]
        return "; last lines of its stderr:\n  " + "\n  ".join(lines) if lines else "; it wrote nothing to stderr"

    # ---- broker (host side) ------------------------------------------------

    def serve_loss(self, loss: Loss) -> int:
        """Serve loss to the plugin through go-plugin's broker, as the host
        serves the runner's loss; returns the broker id for TrainRequest."""
        self._next_id += 1
        sid = self._next_id
        sock_dir = tempfile.mkdtemp(prefix="crops-broker-")
        sock = os.path.join(sock_dir, "loss.sock")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=GRPC_OPTIONS)
        pb_grpc.add_LossServiceServicer_to_server(LossServicer(loss), server)
        creds = grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)], root_certificates=self.plugin_cert_pem,
                                            require_client_auth=True)
        server.add_secure_port("unix:" + sock, creds)
        server.start()
        self._servers.append((server, sock_dir))
        self._broker_out.put(broker_pb.ConnInfo(service_id=sid, network="unix", address=sock))
        return sid

    # ---- calls ---------------------------------------------------------------

    def _call(self, name: str, f: Any, req: Any, timeout: float | None) -> Any:
        try:
            return f(req, timeout=timeout)
        except grpc.RpcError as e:
            if self.proc.poll() is not None or e.code() == grpc.StatusCode.UNAVAILABLE:
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.kind.value} plugin {self.name!r} crashed during {name} "
                                       f"(exit status {self.proc.returncode}){self.stderr_suffix()}") from None
            raise_status(e, name)
            raise

    def _stub(self) -> Any:
        return {Kind.SOURCE: pb_grpc.SourceServiceStub, Kind.LABELER: pb_grpc.LabelerServiceStub,
                Kind.LOSS: pb_grpc.LossServiceStub, Kind.RETRIEVER: pb_grpc.RetrieverServiceStub}[self.kind](
                    self.channel)

    def describe(self, timeout: float | None = 30) -> Info:
        return info_from_proto(self._call("Describe", self._stub().Describe, pb.DescribeRequest(), timeout))

    def mine(self, req: MineRequest, timeout: float | None = None) -> MineResult:
        r = self._call("Mine", self._stub().Mine, pb.MineRequest(
            dataset_dir=req.dataset_dir, params=req.params, output_path=req.output_path,
            items_output_path=req.items_output_path, work_dir=req.work_dir, seed=req.seed), timeout)
        return MineResult(stats=dict(r.stats), report=json.loads(r.report) if r.report else None)

    def label(self, req: LabelRequest, timeout: float | None = None) -> LabelResult:
        r = self._call("Label", self._stub().Label, pb.LabelRequest(
            dataset_dir=req.dataset_dir, params=req.params, output_path=req.output_path, seed=req.seed,
            candidates=[pb.CandidateTable(source=c.source, path=c.path) for c in req.candidates]), timeout)
        return LabelResult(stats=dict(r.stats))

    def loss(self) -> LossClient:
        return LossClient(self.channel)

    def train(self, req: TrainRequest, timeout: float | None = None) -> list[Progress]:
        """Train; req.loss, when set, is served through the broker. Returns
        the progress events; raises PluginError when the plugin's train fails."""
        from .types import PluginError

        bid = self.serve_loss(req.loss) if req.loss is not None else 0
        stream = self._call("Train", self._stub().Train, pb.TrainRequest(
            train_table=req.train_table, items_paths=req.items_paths, dataset_dir=req.dataset_dir,
            params=req.params, model_dir=req.model_dir, seed=req.seed, loss_broker_id=bid,
            loss_params=req.loss_params), timeout)
        out: list[Progress] = []
        for ev in stream:
            if ev.HasField("progress"):
                p = ev.progress
                out.append(Progress(epoch=p.epoch, step=p.step, total_steps=p.total_steps, loss=p.loss,
                                    examples_per_sec=p.examples_per_sec, message=p.message))
            else:
                if not ev.done.ok:
                    raise PluginError(ev.done.error)
                return out
        raise RuntimeError("train: the plugin ended the progress stream without a final status")

    def search(self, req: SearchRequest, timeout: float | None = None) -> None:
        self._call("Search", self._stub().Search, pb.SearchRequest(
            model_dir=req.model_dir, items_paths=req.items_paths, queries_path=req.queries_path, k=req.k,
            output_path=req.output_path, params=req.params, include_synthetic=req.include_synthetic), timeout)

    def score(self, req: ScoreRequest, timeout: float | None = None) -> None:
        self._call("Score", self._stub().Score, pb.ScoreRequest(
            model_dir=req.model_dir, items_paths=req.items_paths, pairs_path=req.pairs_path,
            output_path=req.output_path, params=req.params), timeout)
