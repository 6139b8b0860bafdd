"""Catalog, training labels and batches. Batches follow the Go two-tower
(plugins/retriever/twotower, epochBatches): rows of up to M labelled
candidates of one query, B rows a batch, every candidate a column of the
B x N score matrix (N = B * M, padding flagged invalid); for row b a column
carries the tier of (query_b, item) when labelled, else 0 (an in-batch
negative)."""

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
    rows: list[int]  #: query index into TrainingSet.queries, per row
    cols: list[int]  #: catalog index of each real column
    pos: list[int]  #: the column (0..N-1) of each real column
    tiers: np.ndarray  #: (R, N) int32
    valid: np.ndarray  #: (R, N) bool


Instance = tuple[int, list[tuple[int, int]], int]  # (query, own candidates, positive item or -1)


def _instances(ts: TrainingSet, rng: np.random.Generator, m: int, positive_min_tier: int | None) -> list[Instance]:
    """The rows of one epoch, before shuffling (the Go two-tower's
    epochBatches and perPositiveInstances, candidate_sampling "uniform")."""
    inst: list[Instance] = []
    for qi, cs in enumerate(ts.cands):
        if positive_min_tier is None:
            # Each query's candidates shuffled and cut into rows of up to M.
            sh = [cs[i] for i in rng.permutation(len(cs))]
            inst += [(qi, sh[lo: lo + m], -1) for lo in range(0, len(sh), m)]
            continue
        # One row per (query, positive): the positive, then up to M-1 of the
        # query's non-positive candidates, drawn anew for each row.
        pos = [c for c in cs if c[1] >= positive_min_tier]
        neg = [c for c in cs if c[1] < positive_min_tier]
        for p in pos:
            pick = neg
            if len(neg) > m - 1:
                pick = [neg[i] for i in sorted(rng.choice(len(neg), size=m - 1, replace=False).tolist())]
            inst.append((qi, [p, *pick], p[0]))
    return inst


def epoch_batches(ts: TrainingSet, epoch: int, seed: int, b: int, m: int,
                  positive_min_tier: int | None = None) -> list[Batch]:
    """The batches of one epoch: a function of (seed, epoch) only, so a run
    resumed at epoch e sees the batches the first run would have.

    As in the Go two-tower: row r owns columns [r*M, r*M+M) (unused ones
    are padding); for row r another row's column is an in-batch negative
    with tier 0, unless its item is labelled for r's query (then it carries
    that tier); a repeated item is valid once per row (its own column
    first). positive_min_tier set (a loss with per_positive_rows): one row
    per positive, the query's other positives masked out of it."""
    rng = np.random.default_rng([seed, epoch])
    inst = _instances(ts, rng, m, positive_min_tier)
    inst = [inst[i] for i in rng.permutation(len(inst))]
    out = []
    for start in range(0, len(inst), b):
        chunk = inst[start: start + b]
        n = len(chunk) * m
        col_item = [-1] * n
        for r, (_, own, _) in enumerate(chunk):
            for j, (item, _) in enumerate(own):
                col_item[r * m + j] = item
        tiers = np.zeros((len(chunk), n), np.int32)
        valid = np.zeros((len(chunk), n), np.bool_)
        for r, (qi, _, pos_item) in enumerate(chunk):
            labels = dict(ts.cands[qi])
            seen: set[int] = set()
            if pos_item >= 0:
                seen = {k for k, t in ts.cands[qi] if t >= (positive_min_tier or 0) and k != pos_item}
            own_cols = range(r * m, r * m + m)
            for col in [*own_cols, *(c for c in range(n) if c not in own_cols)]:
                it = col_item[col]
                if it < 0 or it in seen:
                    continue
                seen.add(it)
                valid[r, col] = True
                tiers[r, col] = labels.get(it, 0)
        real = [c for c in range(n) if col_item[c] >= 0]
        out.append(Batch(rows=[q for q, _, _ in chunk], cols=[col_item[c] for c in real], pos=real,
                         tiers=tiers, valid=valid))
    return out


def steps_per_epoch(ts: TrainingSet, b: int, m: int, positive_min_tier: int | None) -> int:
    if positive_min_tier is None:
        rows = sum((len(c) + m - 1) // m for c in ts.cands)
    else:
        rows = sum(1 for cs in ts.cands for _, t in cs if t >= positive_min_tier)
    return (rows + b - 1) // b


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
