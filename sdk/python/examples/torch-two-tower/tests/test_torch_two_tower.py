"""torch-two-tower through crops_sdk.testkit (the plugin runs as a real
subprocess with mutual TLS; the loss is served to it through the broker).
The gradient check against a PyTorch H-InfoNCE through the Go host is
cmd/crops/python_torch_test.go with gradcheck.py beside this file."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crops_sdk import Info, Kind, Loss, LossInput, LossOutput, PluginError, ScoreRequest, SearchRequest, TrainRequest
from crops_sdk.testkit import PluginProcess
from crops_sdk.testplugins import SoftmaxLoss

if os.environ.get("CROPS_PYTHON_REQUIRED") == "1":
    # CI (.ci/python.sh): a missing torch is a failure, not a skip.
    import torch
    import transformers  # noqa: F401
else:
    torch = pytest.importorskip("torch", reason="torch-two-tower needs torch: run .ci/python.sh (.venv-torch)")
    pytest.importorskip("transformers", reason="torch-two-tower needs transformers: run .ci/python.sh")


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gradcheck import h_infonce_reference  # noqa: E402

PLUGIN = [sys.executable, "-m", "crops_torch_two_tower"]
SMALL = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "vocab_size": 200,
         "batch_queries": 8, "max_candidates_per_query": 4, "progress_every": 1, "learning_rate": 3e-3}

TOPICS = {
    "cats": ["kitten", "whiskers", "purr", "feline", "tabby"],
    "dogs": ["puppy", "bark", "leash", "canine", "fetch"],
    "cars": ["engine", "wheel", "sedan", "brake", "motor"],
    "food": ["pasta", "recipe", "oven", "sauce", "bake"],
}


class HLoss(Loss):
    """H-InfoNCE served by the test (the reference in gradcheck.py)."""

    def describe(self) -> Info:
        return Info(name="test-h-infonce", kind=Kind.LOSS, version="0", description="test")

    def compute(self, ctx: Any, inp: LossInput) -> LossOutput:
        s = torch.tensor(inp.scores, dtype=torch.float64, requires_grad=True)
        loss = h_infonce_reference(s, torch.from_numpy(inp.tiers), torch.from_numpy(inp.valid))
        loss.backward()
        assert s.grad is not None
        return LossOutput(loss=float(loss), grad=s.grad.numpy().astype(np.float32))


@pytest.fixture
def world(tmp_path: Path) -> dict[str, str]:
    """40 items in 4 topics; 24 queries, each labelled with items of its topic."""
    rng = np.random.default_rng(7)
    ids, titles, tags = [], [], []
    for t, words in TOPICS.items():
        for i in range(10):
            ids.append(f"{t}-{i:02d}")
            titles.append(" ".join(rng.choice(words, 3)) + f" {t}")
            tags.append(",".join(rng.choice(words, 2)))
    n = len(ids)
    pq.write_table(pa.table({"item_id": ids, "title": titles, "caption": [""] * n, "tags": tags, "ocr": [""] * n}),
                   tmp_path / "items.parquet")
    qs, its, tiers = [], [], []
    for t, words in TOPICS.items():
        for j in range(6):
            q = f"{words[j % 5]} {t} {j}"
            for k in rng.choice(10, 3, replace=False):
                qs.append(q)
                its.append(f"{t}-{k:02d}")
                tiers.append(int(rng.integers(1, 6)))
    pq.write_table(pa.table({"query": qs, "item_id": its, "tier": pa.array(tiers, pa.int32()),
                             "sources": ["test"] * len(qs)}), tmp_path / "labels.parquet")
    pq.write_table(pa.table({"query": sorted(set(qs))}), tmp_path / "queries.parquet")
    return {"items": str(tmp_path / "items.parquet"), "labels": str(tmp_path / "labels.parquet"),
            "queries": str(tmp_path / "queries.parquet"), "dir": str(tmp_path)}


@pytest.fixture
def plugin() -> Iterator[PluginProcess]:
    p = PluginProcess(PLUGIN, Kind.RETRIEVER, "torch-two-tower", env={"HOME": os.environ.get("HOME", "/tmp")})
    yield p
    p.close()


def train(p: PluginProcess, w: dict[str, str], model: str, loss: Loss | None = None, **params: Any) -> list[Any]:
    return p.train(TrainRequest(train_table=w["labels"], items_paths=[w["items"]], dataset_dir="",
                                params=json.dumps({**SMALL, **params}).encode(), model_dir=model, seed=5,
                                loss=loss if loss is not None else HLoss()))


def test_train_search_score(plugin: PluginProcess, world: dict[str, str]) -> None:
    model = os.path.join(world["dir"], "m")
    ev = train(plugin, world, model, epochs=3)
    steps = [e.step for e in ev if not e.message]
    assert steps == list(range(1, 10)), steps  # 24 queries / B=8 = 3 steps x 3 epochs
    assert all(np.isfinite(e.loss) for e in ev)
    assert (Path(model) / "model.pt").is_file() and (Path(model) / "tokenizer.json").is_file()
    out = os.path.join(world["dir"], "r.parquet")
    plugin.search(SearchRequest(model_dir=model, items_paths=[world["items"]], queries_path=world["queries"], k=5,
                                output_path=out, params=b"{}"))
    r = pq.read_table(out).to_pydict()
    assert len(r["query"]) == 24 * 5
    assert r["rank"][:5] == [1, 2, 3, 4, 5] and r["score"][0] >= r["score"][4]
    # Score the search's own pairs: the same numbers (exact search).
    pairs = os.path.join(world["dir"], "pairs.parquet")
    pq.write_table(pa.table({"query": r["query"], "item_id": r["item_id"]}), pairs)
    sout = os.path.join(world["dir"], "s.parquet")
    plugin.score(ScoreRequest(model_dir=model, items_paths=[world["items"]], pairs_path=pairs, output_path=sout,
                              params=b"{}"))
    s = pq.read_table(sout).to_pydict()
    assert s["item_id"] == r["item_id"]
    assert np.allclose(s["score"], r["score"], atol=1e-5)
    # Training learnt the topics: most top-1 items share the query's topic.
    top1 = [(q, it) for q, it, k in zip(r["query"], r["item_id"], r["rank"], strict=True) if k == 1]
    same = sum(q.split()[1] == it.split("-")[0] for q, it in top1)
    assert same >= 16, top1
    # Asking again with the same settings does not train again.
    ev2 = train(plugin, world, model, epochs=3)
    assert len(ev2) == 1 and "already" in ev2[0].message


def test_resume_equals_a_straight_run(plugin: PluginProcess, world: dict[str, str]) -> None:
    a, b = os.path.join(world["dir"], "a"), os.path.join(world["dir"], "b")
    train(plugin, world, a, epochs=2)
    train(plugin, world, b, epochs=1)
    ev = train(plugin, world, b, epochs=2)
    assert any("resuming after epoch 1" in e.message for e in ev), [e.message for e in ev]
    assert [e.step for e in ev if not e.message] == [4, 5, 6]
    sa = torch.load(os.path.join(a, "model.pt"))["towers"]
    sb = torch.load(os.path.join(b, "model.pt"))["towers"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_loss_plugin_is_used(plugin: PluginProcess, world: dict[str, str]) -> None:
    """Another loss gives other weights: the plugin's answer drives the step."""
    a, b = os.path.join(world["dir"], "a"), os.path.join(world["dir"], "b")
    ea = train(plugin, world, a, epochs=1)
    eb = train(plugin, world, b, epochs=1, loss=SoftmaxLoss())
    assert [e.loss for e in ea] != [e.loss for e in eb]


@pytest.mark.parametrize("pooling,shared", [("cls", False), ("mean", False)])
def test_towers_variants(plugin: PluginProcess, world: dict[str, str], pooling: str, shared: bool) -> None:
    model = os.path.join(world["dir"], "m")
    train(plugin, world, model, epochs=1, pooling=pooling, shared_towers=shared)
    state = torch.load(os.path.join(model, "model.pt"))["towers"]
    assert any(k.startswith("item_encoder.") for k in state) == (not shared)


def test_model_path_checkpoint(plugin: PluginProcess, world: dict[str, str]) -> None:
    """A user's local BERT-family checkpoint (config, weights, tokenizer)."""
    from crops_torch_two_tower.model import train_tokenizer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    ck = Path(world["dir"]) / "bert"
    tok = train_tokenizer([t for t in TOPICS for _ in range(3)] + [w for ws in TOPICS.values() for w in ws], 100)
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]").save_pretrained(ck)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(ck)
    model = os.path.join(world["dir"], "m")
    ev = train(plugin, world, model, epochs=1, model_path=str(ck))
    assert ev and all(np.isfinite(e.loss) for e in ev)


def test_model_path_not_a_checkpoint_names_the_file(plugin: PluginProcess, world: dict[str, str]) -> None:
    ck = Path(world["dir"]) / "notbert"
    ck.mkdir()
    model = os.path.join(world["dir"], "m")
    with pytest.raises(PluginError, match=r"config\.json is missing"):
        train(plugin, world, model, model_path=str(ck))
    (ck / "config.json").write_text("{}")
    with pytest.raises(PluginError, match=r"weights are missing \(none of model\.safetensors, pytorch_model\.bin"):
        train(plugin, world, model, model_path=str(ck))
    with pytest.raises(PluginError, match="not a directory"):
        train(plugin, world, model, model_path=str(ck / "nope"))


def test_bad_input_errors_name_the_field_and_the_frame(plugin: PluginProcess, world: dict[str, str]) -> None:
    with pytest.raises(PluginError, match='unknown field "pooling_mode"'):
        train(plugin, world, os.path.join(world["dir"], "m"), pooling_mode="cls")
    with pytest.raises(PluginError, match='pooling = "max"'):
        train(plugin, world, os.path.join(world["dir"], "m"), pooling="max")
    # Search before Train: the error and the traceback's last frame in plugin code.
    with pytest.raises(PluginError, match=r"holds no trained model.*\(at .*train\.py:\d+ in load_model"):
        plugin.search(SearchRequest(model_dir=os.path.join(world["dir"], "none"), items_paths=[world["items"]],
                                    queries_path=world["queries"], k=3, output_path=os.path.join(world["dir"], "x"),
                                    params=b"{}"))


class WrongShape(Loss):
    def describe(self) -> Info:
        return Info(name="wrong-shape", kind=Kind.LOSS, version="0", description="test")

    def compute(self, ctx: Any, inp: LossInput) -> LossOutput:
        return LossOutput(loss=0.0, grad=np.zeros((inp.b, inp.n - 1), np.float32))


def test_loss_with_wrong_shape_is_a_clear_error(plugin: PluginProcess, world: dict[str, str]) -> None:
    with pytest.raises(PluginError, match=r"grad"):
        train(plugin, world, os.path.join(world["dir"], "m"), loss=WrongShape())


def test_gradcheck_can_fail(plugin: PluginProcess, world: dict[str, str]) -> None:
    """gradcheck.py (the Go test's judge) passes for a step taken with
    H-InfoNCE and fails for a step taken with another loss."""
    from gradcheck import check

    ok_dump, bad_dump = os.path.join(world["dir"], "ok.pt"), os.path.join(world["dir"], "bad.pt")
    train(plugin, world, os.path.join(world["dir"], "a"), max_steps=1, debug_dump=ok_dump)
    train(plugin, world, os.path.join(world["dir"], "b"), max_steps=1, debug_dump=bad_dump, loss=SoftmaxLoss())
    good = check(ok_dump)
    assert good["ok"] and good["max_abs_diff_param_grads"] <= 1e-5, good
    bad = check(bad_dump)
    assert not bad["ok"] and bad["max_abs_diff_param_grads"] > 1e-3, bad


def test_batches_follow_the_go_two_tower() -> None:
    from crops_torch_two_tower.data import TrainingSet, epoch_batches, steps_per_epoch

    # q0: items 0..5 (tiers 5,5,3,2,1,1); q1: items 4..6 (4 shared with q0).
    ts = TrainingSet(queries=["q0", "q1"], cands=[[(0, 5), (1, 5), (2, 3), (3, 2), (4, 1), (5, 1)],
                                                  [(4, 4), (6, 2), (7, 1)]], skipped=0)
    bts = epoch_batches(ts, 0, 1, b=8, m=4)
    assert steps_per_epoch(ts, 8, 4, None) == 1 and len(bts) == 1
    bt = bts[0]
    assert sorted(bt.rows) == [0, 0, 1] and bt.tiers.shape == (3, 12)
    labels = [dict(c) for c in ts.cands]
    for r, q in enumerate(bt.rows):
        items = [bt.cols[bt.pos.index(c)] for c in range(12) if bt.valid[r, c]]
        assert len(items) == len(set(items)), "an item is valid once per row"
        for c in range(12):
            if bt.valid[r, c]:
                assert bt.tiers[r, c] == labels[q].get(bt.cols[bt.pos.index(c)], 0)
        own = [c for c in range(r * 4, r * 4 + 4) if c in bt.pos]
        assert all(bt.valid[r, c] for c in own), "a row's own columns come first"
    # per_positive_rows (positive_min_tier 4): one row per positive, which is
    # the row's only valid entry at tier >= 4.
    pp = epoch_batches(ts, 0, 1, b=8, m=4, positive_min_tier=4)[0]
    assert sorted(pp.rows) == [0, 0, 1] and steps_per_epoch(ts, 8, 4, 4) == 1
    for r, q in enumerate(pp.rows):
        pos = [c for c in range(pp.tiers.shape[1]) if pp.valid[r, c] and pp.tiers[r, c] >= 4]
        assert len(pos) == 1 and pos[0] == r * 4, (r, q, pos)
    # Same seed and epoch, same batches; another epoch, another order.
    again = epoch_batches(ts, 0, 1, b=8, m=4)[0]
    assert again.rows == bt.rows and again.cols == bt.cols and (again.tiers == bt.tiers).all()


class PerPositiveHLoss(HLoss):
    def describe(self) -> Info:
        return Info(name="test-per-positive", kind=Kind.LOSS, version="0", description="test",
                    capabilities=["per_positive_rows"])


def test_per_positive_rows_through_the_broker(plugin: PluginProcess, world: dict[str, str]) -> None:
    """A loss declaring per_positive_rows gets one row per positive: 72 label
    rows, those with tier >= 4 (positive_min_tier's default) make the epoch's rows."""
    tiers = pq.read_table(world["labels"])["tier"].to_pylist()
    rows = sum(t >= 4 for t in tiers)
    ev = train(plugin, world, os.path.join(world["dir"], "m"), loss=PerPositiveHLoss(), epochs=1)
    assert [e.step for e in ev if not e.message][-1] == (rows + 7) // 8
