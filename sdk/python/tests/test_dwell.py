"""The dwell example through the test kit, as crops runs it."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crops_sdk import Kind, MineRequest, PluginError
from crops_sdk.testkit import PluginProcess

DWELL = Path(__file__).resolve().parents[1] / "examples" / "dwell" / "crops_dwell.py"


def write_dataset(d: Path) -> None:
    rows = [  # request, user, query, item, stage, watch_ms, split
        ("r1", "u1", "cats", "a", "exposed", 20000, "train"),
        ("r2", "u2", "cats", "a", "exposed", 1000, "train"),
        ("r3", "u3", "cats", "b", "exposed", 30000, "train"),
        ("r6", "u3", "cats", "b", "exposed", 16000, "train"),
        ("r4", "u1", "cats", "c", "exposed", 50000, "test"),
        ("r5", "u1", "dogs", "d", "ranked_unexposed", 40000, "train"),
    ]
    pq.write_table(pa.table({"request_id": [r[0] for r in rows], "user_id": [r[1] for r in rows],
                             "query": [r[2] for r in rows], "item_id": [r[3] for r in rows],
                             "stage": [r[4] for r in rows], "watch_ms": [r[5] for r in rows]}), d / "search.parquet")
    pq.write_table(pa.table({"request_id": [r[0] for r in rows], "split": [r[6] for r in rows]}), d / "split.parquet")


def test_dwell_mines_long_dwells_of_the_train_split(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    out = tmp_path / "c.parquet"
    with PluginProcess([sys.executable, str(DWELL)], Kind.SOURCE, "dwell") as p:
        info = p.describe()
        assert info.params_schema["properties"]["min_dwell_ms"]["default"] == 15000
        req = MineRequest(dataset_dir=str(tmp_path), params=b'{"min_dwell_ms": 15000}', output_path=str(out),
                          items_output_path="", work_dir=str(tmp_path), seed=1)
        res = p.mine(req)
        got = pq.read_table(out).to_pylist()
        assert [(r["query"], r["item_id"], r["tier_hint"], r["confidence"]) for r in got] == [
            ("cats", "a", 4, 0.5), ("cats", "b", 4, 1.0)]
        assert got[1]["evidence"] == '{"engaged_users": 1, "max_dwell_ms": 30000}'
        assert res.stats == {"candidates": 2.0, "exposures": 4.0, "long_dwells": 3.0}
        req.params = b'{"min_users": 2}'
        p.mine(req)
        assert pq.read_table(out).num_rows == 0
        req.params = b'{"min_dwell_ms": 0}'
        with pytest.raises(PluginError, match="min_dwell_ms = 0: expected a positive number"):
            p.mine(req)
