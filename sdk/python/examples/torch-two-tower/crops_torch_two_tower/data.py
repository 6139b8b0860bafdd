"""Catalog, training labels and batches. Batches follow the Go two-tower:
B queries, up to M labelled candidates each (sampled uniformly when a query
has more), every candidate of the batch a column of the B x N score matrix
(N = B * M, padding flagged invalid); for row b a column carries the tier
of (query_b, item) when labelled, else 0 (an in-batch negative)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crops_sdk import SYNTHETIC_PREFIX


@dataclass
class Catalog:
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)


def item_text(title: str, caption: str, tags: str, ocr: str) -> str:
    """The text the item tower reads (the Go two-tower's itemText)."""
    return " \n ".join([title, caption, tags.replace(",", " "), ocr])


def load_catalog(paths: list[str], include_synthetic: bool) -> Catalog:
    """The union of the items tables; an id seen in an earlier table wins;
    rows by item_id within a table."""
    if not paths:
        raise ValueError("torch-two-tower: no items tables given (items_paths is empty); "
                         "pass the dataset's items.parquet")
    cat = Catalog()
    cols = ["item_id", "title", "caption", "tags", "ocr"]
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"torch-two-tower: items table {path} does not exist")
        try:
            t = pq.read_table(path, columns=cols)
        except (pa.ArrowInvalid, KeyError) as e:
            raise ValueError(f"torch-two-tower: read items table {path} (expected columns {', '.join(cols)}): {e}") \
                from None
        t = t.filter(pc.is_valid(t["item_id"])).sort_by("item_id")
        d = {c: [x if x is not None else "" for x in t[c].to_pylist()] for c in cols}
        for i, iid in enumerate(d["item_id"]):
            if iid in cat.index or (not include_synthetic and iid.startswith(SYNTHETIC_PREFIX)):
                continue
            cat.index[iid] = len(cat.ids)
            cat.ids.append(iid)
            cat.texts.append(item_text(d["title"][i], d["caption"][i], d["tags"][i], d["ocr"][i]))
    if not cat.ids:
        raise ValueError(f"torch-two-tower: the items tables {paths} hold no items")
    return cat


@dataclass
class TrainingSet:
    queries: list[str]
    #: per query: (catalog index, tier), sorted by tier desc then item_id
    cands: list[list[tuple[int, int]]]
    skipped: int  #: label rows whose item is in no items table


def load_labels(path: str, cat: Catalog) -> TrainingSet:
    try:
        t = pq.read_table(path, columns=["query", "item_id", "tier"])
    except (pa.ArrowInvalid, KeyError, FileNotFoundError, OSError) as e:
        raise ValueError(f"torch-two-tower: read label table {path} (expected columns query, item_id, tier): {e}") \
            from None
    by: dict[str, list[tuple[int, int, str]]] = {}
    skipped = 0
    for row, (q, iid, tier) in enumerate(zip(t["query"].to_pylist(), t["item_id"].to_pylist(),
                                             t["tier"].to_pylist(), strict=True)):
        if q is None or iid is None or tier is None:
            raise ValueError(f"torch-two-tower: label table {path} row {row + 1}: query, item_id and tier must not "
                             "be null")
        if tier < 0:
            raise ValueError(f"torch-two-tower: label table {path} row {row + 1}: tier {tier} < 0")
        k = cat.index.get(iid)
        if k is None:
            skipped += 1
            continue
        by.setdefault(q, []).append((k, int(tier), iid))
    queries = sorted(by)
    cands = [[(k, tier) for k, tier, _ in sorted(by[q], key=lambda c: (-c[1], c[2]))] for q in queries]
    return TrainingSet(queries=queries, cands=cands, skipped=skipped)


@dataclass
class Batch:
    rows: list[int]  #: query indices into TrainingSet.queries
    cols: list[int]  #: catalog index of each real column (len <= N)
    tiers: np.ndarray  #: (B, N) int32
    valid: np.ndarray  #: (B, N) bool


def epoch_batches(ts: TrainingSet, epoch: int, seed: int, b: int, m: int) -> list[Batch]:
    """The batches of one epoch: a function of (seed, epoch) only, so a run
    resumed at epoch e sees the batches the first run would have."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(ts.queries))
    out = []
    for lo in range(0, len(order), b):
        rows = [int(x) for x in order[lo: lo + b]]
        cols: list[int] = []
        for r in rows:
            c = ts.cands[r]
            if len(c) > m:
                pick = sorted(rng.choice(len(c), size=m, replace=False).tolist())
                c = [c[i] for i in pick]
            cols += [k for k, _ in c]
        n = len(rows) * m
        tiers = np.zeros((len(rows), n), np.int32)
        valid = np.zeros((len(rows), n), np.bool_)
        valid[:, : len(cols)] = True
        for i, r in enumerate(rows):
            lab = dict(ts.cands[r])
            for j, k in enumerate(cols):
                tiers[i, j] = lab.get(k, 0)
        out.append(Batch(rows=rows, cols=cols, tiers=tiers, valid=valid))
    return out


def read_queries(path: str) -> list[str]:
    """Distinct queries of a queries table, in first-appearance order."""
    try:
        col = pq.read_table(path, columns=["query"])["query"].to_pylist()
    except (pa.ArrowInvalid, KeyError, FileNotFoundError, OSError) as e:
        raise ValueError(f"torch-two-tower: read queries table {path} (expected a VARCHAR column query): {e}") from None
    seen: dict[str, None] = {}
    for i, q in enumerate(col):
        if q is None:
            raise ValueError(f"torch-two-tower: queries table {path} row {i + 1}: query is null")
        seen.setdefault(q, None)
    return list(seen)
