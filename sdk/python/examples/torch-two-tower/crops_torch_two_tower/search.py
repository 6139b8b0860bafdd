"""Search (exact top-K by inner product of normalised embeddings) and Score
(one score per (query, item) pair, so the retriever can serve as the
relevance gate)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from crops_sdk import Context, ScoreRequest, SearchRequest, decode_params, table

from . import data
from .model import Encoded, Towers
from .params import Params
from .train import load_model


@torch.no_grad()
def encode(ctx: Context, towers: Towers, enc: Encoded, items: bool, batch: int, device: torch.device) -> torch.Tensor:
    out = []
    n = enc.ids.shape[0]
    for lo in range(0, n, batch):
        ctx.raise_if_cancelled()
        ids, mask = enc.take(torch.arange(lo, min(lo + batch, n)))
        f = towers.encode_items if items else towers.encode_queries
        out.append(f(ids.to(device), mask.to(device)))
    if not out:
        return torch.zeros((0, 1), device=device)
    return torch.cat(out)


def _runtime(raw: bytes) -> tuple[Params, torch.device]:
    from .model import pick_device

    p = decode_params(raw, Params)
    if p.threads:
        torch.set_num_threads(p.threads)
    return p, pick_device(p.device)


def _scale(towers: Towers, mode: str) -> float:
    return 1.0 / float(towers.tau().item()) if mode == "logit" else 1.0


def search(ctx: Context, req: SearchRequest) -> None:
    if req.k < 1:
        raise ValueError(f"torch-two-tower search: k = {req.k}: expected >= 1")
    rp, device = _runtime(req.params)
    setup, _ = load_model(req.model_dir, device)
    mp = setup.params
    cat = data.load_catalog(req.items_paths, include_synthetic=req.include_synthetic)
    queries = data.read_queries(req.queries_path)
    towers = setup.towers
    dv = encode(ctx, towers, Encoded(setup.tok, cat.texts, mp.max_item_tokens), True, rp.encode_batch, device)
    qv = encode(ctx, towers, Encoded(setup.tok, queries, mp.max_query_tokens), False, rp.encode_batch, device)
    k = min(req.k, len(cat.ids))
    scale = _scale(towers, rp.score_mode)
    qs, its, ranks, scores = [], [], [], []
    for lo in range(0, len(queries), 256):
        ctx.raise_if_cancelled()
        sims = qv[lo: lo + 256] @ dv.T
        top = torch.topk(sims, k, dim=1)
        vals, idx = top.values.cpu().numpy(), top.indices.cpu().numpy()
        for r in range(vals.shape[0]):
            # Exact ties: lower catalog index first, so output is stable.
            order = np.lexsort((idx[r], -vals[r]))
            for rank, j in enumerate(order):
                qs.append(queries[lo + r])
                its.append(cat.ids[int(idx[r, j])])
                ranks.append(rank + 1)
                scores.append(float(vals[r, j]) * scale)
    table.write_results(pa.table({"query": qs, "item_id": its, "rank": pa.array(ranks, pa.int32()),
                                  "score": pa.array(scores, pa.float64())}), req.output_path)


def score(ctx: Context, req: ScoreRequest) -> None:
    rp, device = _runtime(req.params)
    setup, _ = load_model(req.model_dir, device)
    mp = setup.params
    try:
        pairs = pq.read_table(req.pairs_path, columns=["query", "item_id"])
    except (pa.ArrowInvalid, KeyError, FileNotFoundError, OSError) as e:
        raise ValueError(f"torch-two-tower score: read pairs table {req.pairs_path} "
                         f"(expected VARCHAR columns query, item_id): {e}") from None
    qcol, icol = pairs["query"].to_pylist(), pairs["item_id"].to_pylist()
    if not qcol:
        table.write_scores(pa.table({"query": pa.array([], pa.string()), "item_id": pa.array([], pa.string()),
                                     "score": pa.array([], pa.float64())}), req.output_path)
        return
    cat = data.load_catalog(req.items_paths, include_synthetic=True)
    uq = sorted(set(qcol))
    qi = {q: i for i, q in enumerate(uq)}
    need: dict[str, int] = {}
    for r, it in enumerate(icol):
        if it not in cat.index:
            raise ValueError(f"torch-two-tower score: pairs table {req.pairs_path} row {r + 1}: item {it!r} is in no "
                             f"items table ({req.items_paths})")
        need.setdefault(it, len(need))
    towers = setup.towers
    qv = encode(ctx, towers, Encoded(setup.tok, uq, mp.max_query_tokens), False, rp.encode_batch, device)
    dv = encode(ctx, towers, Encoded(setup.tok, [cat.texts[cat.index[i]] for i in need], mp.max_item_tokens), True,
                rp.encode_batch, device)
    a = qv[torch.tensor([qi[q] for q in qcol], dtype=torch.long, device=device)]
    b = dv[torch.tensor([need[i] for i in icol], dtype=torch.long, device=device)]
    s = ((a * b).sum(1) * _scale(towers, rp.score_mode)).cpu().numpy().astype(np.float64)
    table.write_scores(pa.table({"query": qcol, "item_id": icol, "score": s}), req.output_path)
