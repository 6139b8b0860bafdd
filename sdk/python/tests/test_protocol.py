"""The SDK over the real protocol: plugin subprocesses started as the host
starts them (handshake, mutual TLS, health, broker, shutdown)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crops_sdk import (
    PROTOCOL_VERSION,
    CandidateTable,
    Context,
    Kind,
    LabelRequest,
    MineRequest,
    PluginError,
    ScoreRequest,
    SearchRequest,
    TrainRequest,
)
from crops_sdk.testkit import HandshakeError, PluginProcess
from crops_sdk.testplugins import SoftmaxLoss, loss_inputs, softmax_loss

from .conftest import TESTPLUGINS


def mine_req(tmp: Path, params: dict[str, Any]) -> MineRequest:
    return MineRequest(dataset_dir=str(tmp), params=json.dumps(params).encode(), output_path=str(tmp / "c.parquet"),
                       items_output_path="", work_dir=str(tmp), seed=1)


def test_handshake_line_and_health(start: Any) -> None:
    p = start(Kind.SOURCE, "pyrows")
    core, app, network, address, protocol, cert = p.handshake_line.split("|")
    assert (core, app, network, protocol) == ("1", str(PROTOCOL_VERSION), "unix", "grpc")
    assert os.path.exists(address) and len(cert) > 50
    assert b"BEGIN CERTIFICATE" in p.plugin_cert_pem
    assert p.health() == "SERVING"
    info = p.describe()
    assert (info.name, info.kind) == ("pyrows", Kind.SOURCE)


def test_shutdown_is_prompt_and_cleans_up(start: Any) -> None:
    p = start(Kind.SOURCE, "pyrows")
    address = p.handshake_line.split("|")[3]
    took = p.shutdown()
    # go-plugin kills a plugin that has not exited 2 s after Shutdown.
    assert took < 1.5, f"shutdown took {took:.2f} s"
    assert p.proc.returncode == 0
    assert not os.path.exists(address), "the socket directory was left behind"


def test_wrong_client_certificate_is_refused(start: Any) -> None:
    p = start(Kind.SOURCE, "pyrows")
    import grpc

    from crops_sdk._tls import generate_cert
    from crops_sdk._wire import GRPC_OPTIONS

    other_cert, other_key, _ = generate_cert()
    creds = grpc.ssl_channel_credentials(root_certificates=p.plugin_cert_pem, private_key=other_key,
                                         certificate_chain=other_cert)
    ch = grpc.secure_channel("unix:" + p.handshake_line.split("|")[3], creds,
                             options=[*GRPC_OPTIONS, ("grpc.ssl_target_name_override", "localhost")])
    with pytest.raises(grpc.FutureTimeoutError):
        grpc.channel_ready_future(ch).result(timeout=2)
    ch.close()


def test_mine_writes_candidates_and_env_is_only_what_host_gives(start: Any, tmp_path: Path) -> None:
    p = start(Kind.SOURCE, "pyrows")
    res = p.mine(mine_req(tmp_path, {"rows": 25, "report_env": True}))
    assert res.stats == {"rows": 25.0}
    t = pq.read_table(tmp_path / "c.parquet")
    assert t.num_rows == 25 and t.schema.field("tier_hint").type == pa.int32()
    names = {e.split("=", 1)[0] for e in res.report["env"]}
    assert "HOME" not in names and "CROPS_PLUGIN_MAGIC_COOKIE" in names


@pytest.mark.parametrize(("params", "want"), [
    ({"crash": "raise"}, "RuntimeError: pyrows: failing as asked (at testplugins.py:"),
    ({"crash": "wrong_schema"}, "TableError: write "),
    ({"rows": -1}, "ParamsError: params: rows = -1: expected >= 0"),
    ({"rowz": 1}, 'ParamsError: params: unknown field "rowz"'),
    ({"rows": "many"}, 'ParamsError: params: field "rows": expected int, got JSON "many"'),
])
def test_plugin_errors_name_type_message_and_last_frame(start: Any, tmp_path: Path, params: dict[str, Any],
                                                        want: str) -> None:
    p = start(Kind.SOURCE, "pyrows")
    with pytest.raises(PluginError) as e:
        p.mine(mine_req(tmp_path, params))
    assert want in str(e.value)
    # The plugin keeps serving after its own error.
    assert p.mine(mine_req(tmp_path, {"rows": 1})).stats == {"rows": 1.0}


def test_death_reports_exit_status_and_stderr(start: Any, tmp_path: Path) -> None:
    p = start(Kind.SOURCE, "pyrows")
    with pytest.raises(RuntimeError) as e:
        p.mine(mine_req(tmp_path, {"crash": "exit"}))
    msg = str(e.value)
    assert "crashed during Mine (exit status 3)" in msg
    assert "pyrows: exiting with status 3 as asked" in msg


def test_cancel_reaches_the_plugin(start: Any, tmp_path: Path) -> None:
    import grpc

    p = start(Kind.SOURCE, "pyrows")
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        p.mine(mine_req(tmp_path, {"sleep_ms": 5000}), timeout=0.3)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 3
    assert p.health() == "SERVING"


def test_labeler(start: Any, tmp_path: Path) -> None:
    for name, rows in (("a", [("q", "i1", 2), ("q", "i2", 1)]), ("b", [("q", "i1", 4)])):
        pq.write_table(pa.table({"query": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                                 "source": [name] * len(rows), "tier_hint": pa.array([r[2] for r in rows], pa.int32()),
                                 "confidence": [1.0] * len(rows), "evidence": ["{}"] * len(rows)}),
                       tmp_path / f"{name}.parquet")
    p = start(Kind.LABELER, "pyflat")
    res = p.label(LabelRequest(dataset_dir=str(tmp_path), params=b"{}", output_path=str(tmp_path / "l.parquet"),
                               seed=1, candidates=[CandidateTable("a", str(tmp_path / "a.parquet")),
                                                   CandidateTable("b", str(tmp_path / "b.parquet"))]))
    assert res.stats == {"labels": 2.0}
    got = pq.read_table(tmp_path / "l.parquet").to_pylist()
    assert got == [{"query": "q", "item_id": "i1", "tier": 4, "sources": "a,b"},
                   {"query": "q", "item_id": "i2", "tier": 1, "sources": "a"}]


def test_loss_over_the_wire_matches_in_process(start: Any) -> None:
    p = start(Kind.LOSS, "pysoftmax")
    client = p.loss()
    for inp in loss_inputs(7, 3, 5, 9):
        got = client.compute(Context(), inp)
        want = softmax_loss(inp)
        assert got.loss == pytest.approx(want.loss, abs=1e-12)
        np.testing.assert_array_equal(got.grad, want.grad)
        assert (got.grad[~inp.valid] == 0).all()


def test_loss_client_uses_shared_memory(start: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python loss client sends the matrices through a segment named after
    its process (results equal to in-process over shapes that grow and
    shrink), removes it on close, and stays inline with CROPS_LOSS_SHM=off."""
    if sys.platform != "linux":
        pytest.skip("shared memory is Linux only")
    p = start(Kind.LOSS, "pysoftmax")
    client = p.loss()
    paths = set()
    for inp in loss_inputs(11, 2, 5, 9) + loss_inputs(12, 1, 8, 16) + loss_inputs(14, 2, 2, 3):
        got = client.compute(Context(), inp)
        np.testing.assert_array_equal(got.grad, softmax_loss(inp).grad)
        assert client._seg is not None and client._shm_ok
        paths.add(client._seg.path)
    assert all(os.path.basename(x).startswith(f"crops-loss-{os.getpid()}-") for x in paths)
    last = client._seg.path
    assert os.stat(last).st_mode & 0o777 == 0o600

    class Channel:  # close() closes the client's channel: not the testkit's
        def close(self) -> None:
            pass

    client._channel = Channel()
    client.close()
    assert not os.path.exists(last)
    monkeypatch.setenv("CROPS_LOSS_SHM", "off")
    inline = p.loss()
    inp = loss_inputs(15, 1, 3, 4)[0]
    np.testing.assert_array_equal(inline.compute(Context(), inp).grad, softmax_loss(inp).grad)
    assert inline._seg is None and not inline._shm_ok


def test_loss_wrong_shape_is_a_clear_error(start: Any) -> None:
    p = start(Kind.LOSS, "pysoftmax")
    inp = loss_inputs(1, 1, 2, 4)[0]
    inp.params = b'{"bad_shape": true}'
    with pytest.raises(PluginError, match=r"gradient of shape \(2, 3\), expected \(B, N\) = \(2, 4\)"):
        p.loss().compute(Context(), inp)


def test_wide_tiers_use_int32_form(start: Any) -> None:
    p = start(Kind.LOSS, "pysoftmax")
    inp = loss_inputs(2, 1, 3, 4)[0]
    inp.tiers[0, 0] = 300  # does not fit tiers8
    inp.valid[0, 0] = True
    got = p.loss().compute(Context(), inp)
    np.testing.assert_array_equal(got.grad, softmax_loss(inp).grad)


def test_retriever_trains_through_the_broker(start: Any, tmp_path: Path) -> None:
    p = start(Kind.RETRIEVER, "pyloop")
    events = p.train(TrainRequest(train_table="", items_paths=[], dataset_dir="", params=b'{"steps": 4}',
                                  model_dir=str(tmp_path / "m"), seed=3, loss=SoftmaxLoss()))
    assert [e.step for e in events] == [1, 2, 3, 4]
    rec = json.loads((tmp_path / "m" / "model.json").read_text())
    assert rec["remote_loss"] == pytest.approx(rec["local_loss"], abs=1e-12)
    assert max(rec["max_grad_diff"]) == 0
    # Without a loss, the plugin's own error ends the stream.
    with pytest.raises(PluginError, match="needs a loss"):
        p.train(TrainRequest(train_table="", items_paths=[], dataset_dir="", params=b"{}",
                             model_dir=str(tmp_path / "m2"), seed=3))


def test_search_and_score(start: Any, tmp_path: Path) -> None:
    pq.write_table(pa.table({"item_id": ["b", "a", "llm:x"]}), tmp_path / "items.parquet")
    pq.write_table(pa.table({"query": ["q1", "q2"]}), tmp_path / "queries.parquet")
    pq.write_table(pa.table({"query": ["q1"], "item_id": ["a"]}), tmp_path / "pairs.parquet")
    p = start(Kind.RETRIEVER, "pyloop")
    p.search(SearchRequest(model_dir="", items_paths=[str(tmp_path / "items.parquet")],
                           queries_path=str(tmp_path / "queries.parquet"), k=5,
                           output_path=str(tmp_path / "r.parquet"), params=b"{}"))
    r = pq.read_table(tmp_path / "r.parquet")
    assert r.num_rows == 4 and r["item_id"].to_pylist()[:2] == ["a", "b"]
    p.score(ScoreRequest(model_dir="", items_paths=[], pairs_path=str(tmp_path / "pairs.parquet"),
                         output_path=str(tmp_path / "s.parquet"), params=b"{}"))
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 1


def test_started_by_hand_refuses() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CROPS_PLUGIN_MAGIC_COOKIE"}
    r = subprocess.run([*TESTPLUGINS, "serve", "source", "pyrows"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 1 and "started by crops, not by hand" in r.stderr and r.stdout == ""


def test_unknown_plugin_and_usage() -> None:
    r = subprocess.run([*TESTPLUGINS, "serve", "source", "nope"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "serves no source plugin named 'nope'" in r.stderr
    r = subprocess.run([*TESTPLUGINS], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "holds 4 plugins" in r.stderr


def test_import_error_before_handshake_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import crops_sdk\nraise SystemExit('bad plugin: cannot start')\n")
    with pytest.raises(HandshakeError, match="bad plugin: cannot start"):
        PluginProcess([sys.executable, str(bad)], Kind.SOURCE, "x", start_timeout=30)
