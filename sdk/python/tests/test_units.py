"""In-process units: params decoding, table checks, loss packing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crops_sdk import LossInput, LossOutput, ParamsError, decode_params, table
from crops_sdk._gen.crops.v1 import plugin_pb2 as pb
from crops_sdk._tls import cert_from_handshake, generate_cert, handshake_cert
from crops_sdk._wire import (
    compute_shm,
    pack_loss_request,
    pack_loss_response,
    unpack_loss_request,
    unpack_loss_response,
)


@dataclass
class P:
    n: int = 3
    ratio: float = 0.5
    name: str = "x"
    flag: bool = False
    tags: list[str] = field(default_factory=list)
    opt: int | None = None

    def validate(self) -> None:
        if self.n < 0:
            raise ValueError(f"n = {self.n}: expected >= 0")


@pytest.mark.parametrize(("raw", "want"), [
    (b"", P()),
    (b"null", P()),
    (b'{"n": 5, "ratio": 1}', P(n=5, ratio=1.0)),
    (b'{"n": 2.0}', P(n=2)),
    (b'{"tags": ["a", "b"], "opt": null}', P(tags=["a", "b"])),
    (b'{"opt": 4}', P(opt=4)),
])
def test_decode_params_ok(raw: bytes, want: P) -> None:
    assert decode_params(raw, P) == want


@pytest.mark.parametrize(("raw", "msg"), [
    (b'{"m": 1}', 'unknown field "m" (known: flag, n, name, opt, ratio, tags)'),
    (b'{"n": "3"}', 'field "n": expected int, got JSON "3"'),
    (b'{"n": true}', 'field "n": expected int, got JSON true'),
    (b'{"n": 1.5}', 'field "n": expected int, got JSON 1.5'),
    (b'{"flag": 1}', 'field "flag": expected bool, got JSON 1'),
    (b'{"tags": ["a", 2]}', 'field "tags[1]": expected str, got JSON 2'),
    (b'{"n": -1}', "n = -1: expected >= 0"),
    (b"[1]", "expected a JSON object"),
    (b"{", "not valid JSON"),
])
def test_decode_params_errors(raw: bytes, msg: str) -> None:
    with pytest.raises(ParamsError) as e:
        decode_params(raw, P)
    assert msg in str(e.value)


def test_table_write_checks_and_is_atomic(tmp_path: Path) -> None:
    good = pa.table({"query": ["q"], "item_id": ["i"], "rank": [1], "score": [0.5]})  # rank int64 -> int32
    path = tmp_path / "r.parquet"
    table.write_results(good, str(path))
    assert pq.read_table(path).schema.field("rank").type == pa.int32()
    assert [p.name for p in tmp_path.iterdir()] == ["r.parquet"]
    with pytest.raises(table.TableError, match=r"columns \['query', 'score'\], expected exactly"):
        table.write_scores(pa.table({"query": ["q"], "score": [1.0]}), str(path))
    with pytest.raises(table.TableError, match="column rank: type int64, expected int32"):
        table.write_results(pa.table({"query": ["q"], "item_id": ["i"], "rank": [2**40], "score": [0.5]}), str(path))
    with pytest.raises(table.TableError, match="column query: 1 null values"):
        table.write_results(pa.table({"query": pa.array([None], pa.string()), "item_id": ["i"], "rank": [1],
                                      "score": [0.5]}), str(path))
    # A failed write leaves the old file and no temp file behind.
    assert pq.read_table(path).num_rows == 1 and len(list(tmp_path.iterdir())) == 1


def test_train_search_and_missing_table(tmp_path: Path) -> None:
    pq.write_table(pa.table({"request_id": ["r1", "r2"], "query": ["a", "b"]}), tmp_path / "search.parquet")
    pq.write_table(pa.table({"request_id": ["r1", "r2"], "split": ["train", "test"]}), tmp_path / "split.parquet")
    assert table.train_search(str(tmp_path), ["query"])["query"].to_pylist() == ["a"]
    with pytest.raises(table.TableError, match=r"table items: .*items.parquet does not exist"):
        table.read_dataset(str(tmp_path), table.ITEMS)


def test_loss_packing_round_trip() -> None:
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((3, 5)).astype(np.float32)
    valid = rng.integers(0, 2, (3, 5)).astype(bool)
    for tiers in (rng.integers(0, 6, (3, 5)).astype(np.int32), np.full((3, 5), 500, np.int32)):
        req = pack_loss_request(LossInput(scores=scores, tiers=tiers, valid=valid, params=b"{}"))
        assert bool(req.tiers8) == (tiers.max() <= 127)
        back = unpack_loss_request(req)
        np.testing.assert_array_equal(back.scores, scores)
        np.testing.assert_array_equal(back.valid, valid)
        np.testing.assert_array_equal(back.tiers[valid], tiers[valid])
    grad = rng.standard_normal((3, 5)).astype(np.float32)
    resp = pack_loss_response(LossOutput(loss=1.25, grad=grad), 3, 5)
    out = unpack_loss_response(resp, 3, 5)
    assert out.loss == 1.25
    np.testing.assert_array_equal(out.grad, grad)
    with pytest.raises(ValueError, match=r"shape \(5, 3\), expected \(B, N\) = \(3, 5\)"):
        pack_loss_response(LossOutput(loss=0, grad=grad.T), 3, 5)


def test_loss_through_shared_memory(tmp_path: Path) -> None:
    """A ComputeRequest with shm_path: scores and tiers8 come from the segment
    (scores | grad | tiers8), the gradient goes back into it."""
    rng = np.random.default_rng(1)
    b, n = 3, 4
    scores = rng.standard_normal((b, n)).astype("<f4")
    t8 = rng.integers(-1, 5, (b, n)).astype(np.int8)
    seg = tmp_path / "loss.seg"
    seg.write_bytes(scores.tobytes() + bytes(4 * b * n) + t8.tobytes())
    seen: list[LossInput] = []

    def compute(inp: LossInput) -> LossOutput:
        seen.append(inp)
        return LossOutput(loss=2.5, grad=np.where(inp.valid, 2 * inp.scores, 0).astype(np.float32))

    resp = compute_shm(compute, pb.ComputeRequest(b=b, n=n, shm_path=str(seg), params=b"{}"))
    assert resp.grad_in_shm and resp.loss == 2.5 and not resp.grad
    np.testing.assert_array_equal(seen[0].scores, scores)
    np.testing.assert_array_equal(seen[0].valid, t8 >= 0)
    np.testing.assert_array_equal(seen[0].tiers, np.where(t8 >= 0, t8, 0))
    grad = np.frombuffer(seg.read_bytes(), dtype="<f4", count=b * n, offset=4 * b * n).reshape(b, n)
    np.testing.assert_array_equal(grad, np.where(t8 >= 0, 2 * scores, 0))
    with pytest.raises(ValueError, match="expected an absolute path"):
        compute_shm(compute, pb.ComputeRequest(b=b, n=n, shm_path="loss.seg"))
    with pytest.raises(ValueError, match="expected a regular file of at least 144"):
        compute_shm(compute, pb.ComputeRequest(b=4, n=4, shm_path=str(seg)))
    with pytest.raises(ValueError, match="send one or the other"):
        compute_shm(compute, pb.ComputeRequest(b=b, n=n, shm_path=str(seg), scores=scores.tobytes()))


def test_certificate_round_trip() -> None:
    cert, key, der = generate_cert()
    assert b"BEGIN PRIVATE KEY" in key
    text = handshake_cert(der)
    assert "=" not in text and "\n" not in text
    assert cert_from_handshake(text) == cert
