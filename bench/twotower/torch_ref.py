#!/usr/bin/env python3
"""PyTorch reference of the crops two-tower architecture, for the throughput
benchmark (bench/twotower/main.go runs it on the very batches the Go trainer
sees, exported by twotower.ExportBatches).

Same model: hashed feature embedding bags (weighted sum with the exported
mean-pooling weights), MLP (Linear-ReLU-Linear), L2 norm, cosine / tau with
learnable log tau floored at min_tau; same H-InfoNCE loss (query_mean
reduction, every sample a positive against strictly lower tiers); AdamW
(decoupled weight decay, as gomlx's Adam WeightDecay).

--optimizer dense: dense gradients everywhere, torch.optim.AdamW (crops'
optimizer: adamw). --optimizer sparse: EmbeddingBag(sparse=True) with
torch.optim.SparseAdam for the table (only the rows in the batch move, no
weight decay; crops' optimizer: sparse-adam) and AdamW for the MLPs and tau.
--compile wraps the model in torch.compile when the installed torch has it
(Debian's 1.13 does not: the output then says so). Prints one JSON line:
examples/s over the timed steps, the thread count and the versions.
"""
import argparse
import json
import os
import struct
import time

import numpy as np
import torch


def read_batches(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        info = json.loads(f.read(n))
        B, N, Lq, Li = info["b"], info["n"], info["lq"], info["li"]
        out = []
        ns = info.get("ns") or [N] * info["batches"]  # rows "full": widths vary
        for k in range(info["batches"]):
            N = ns[k]

            def arr(dtype, count, shape):
                a = np.frombuffer(f.read(count * np.dtype(dtype).itemsize), dtype=dtype)
                return torch.from_numpy(a.copy().reshape(shape))
            q_ids = arr("<i4", B * Lq, (B, Lq)).long()
            q_w = arr("<f4", B * Lq, (B, Lq))
            i_ids = arr("<i4", N * Li, (N, Li)).long()
            i_w = arr("<f4", N * Li, (N, Li))
            tiers = arr("<i4", B * N, (B, N)).long()
            valid = arr("u1", B * N, (B, N)).bool()
            out.append((q_ids, q_w, i_ids, i_w, tiers, valid))
    return info, out


class Tower(torch.nn.Module):
    def __init__(self, emb, e, h, o):
        super().__init__()
        self.emb = emb
        self.l0 = torch.nn.Linear(e, h)
        self.l1 = torch.nn.Linear(h, o)

    def forward(self, ids, w):
        # nn.EmbeddingBag(mode="sum") with per-sample weights: torch's fused
        # kernel for exactly this weighted bag (no [n, L, E] intermediate).
        bag = self.emb(ids, per_sample_weights=w)
        out = self.l1(torch.relu(self.l0(bag)))
        return torch.nn.functional.normalize(out, dim=-1)


class TwoTower(torch.nn.Module):
    def __init__(self, info, sparse=False):
        super().__init__()
        V, E, H, O = info["hash_buckets"], info["embedding_dim"], info["hidden_dim"], info["output_dim"]
        eq = torch.nn.EmbeddingBag(V, E, mode="sum", sparse=sparse)
        torch.nn.init.uniform_(eq.weight, -0.1, 0.1)
        if info["shared_embeddings"]:
            ei = eq
        else:
            ei = torch.nn.EmbeddingBag(V, E, mode="sum", sparse=sparse)
            torch.nn.init.uniform_(ei.weight, -0.1, 0.1)
        self.q = Tower(eq, E, H, O)
        self.i = Tower(ei, E, H, O)
        self.log_tau = torch.nn.Parameter(torch.tensor(float(np.log(info["init_tau"]))))
        self.min_tau = info["min_tau"]

    def forward(self, q_ids, q_w, i_ids, i_w):
        tau = torch.clamp(torch.exp(self.log_tau), min=self.min_tau)
        return self.q(q_ids, q_w) @ self.i(i_ids, i_w).T / tau


def h_infonce(s, tiers, valid, levels=6):
    # For each tier level l: LSE over valid j with tier_j < l -> [B, levels].
    neg_inf = torch.finfo(s.dtype).min
    lse = []
    for l in range(levels):
        m = valid & (tiers < l)
        lse.append(torch.logsumexp(torch.where(m, s, torch.full_like(s, neg_inf)), dim=1))
    lse = torch.stack(lse, 1)                                   # [B, levels]
    below = torch.gather(lse, 1, tiers.clamp(max=levels - 1))   # [B, N]
    has_below = torch.stack([(valid & (tiers < l)).any(1) for l in range(levels)], 1)
    has = torch.gather(has_below, 1, tiers.clamp(max=levels - 1)) & valid
    terms = torch.logaddexp(s, below) - s
    terms = torch.where(has, terms, torch.zeros_like(terms))
    rows = has.any(1)
    return terms.sum(1)[rows].sum() / rows.sum().clamp(min=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", required=True)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--foreach", type=int, default=1, help="AdamW multi-tensor (foreach) implementation")
    ap.add_argument("--optimizer", choices=["dense", "sparse"], default="dense")
    ap.add_argument("--compile", type=int, default=0, help="torch.compile the model (when available)")
    a = ap.parse_args()
    torch.manual_seed(1)
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(a.threads)
    # Held to as many CPUs as threads, as bench/twotower pins crops' runs:
    # an unpinned 1-thread run migrates between the cores.
    cpus = sorted(os.sched_getaffinity(0))[:a.threads]
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:
            pass
    base = {"framework": "pytorch " + torch.__version__ + " (CPU)", "torch_version": torch.__version__,
            "threads": a.threads, "pinned_cpus": cpus, "optimizer_mode": a.optimizer, "compile": bool(a.compile),
            "blas": blas_info(), "load_average_at_start": os.getloadavg()}
    if a.compile and not hasattr(torch, "compile"):
        base["error"] = "torch.compile is not available in torch " + torch.__version__
        print(json.dumps(base))
        return
    info, batches = read_batches(a.batches)
    model = TwoTower(info, sparse=a.optimizer == "sparse")
    fwd = torch.compile(model) if a.compile else model
    lr, wd = info["learning_rate"], info["weight_decay"]
    # eps 1e-7 as gomlx's Adam.
    if a.optimizer == "dense":
        opts = [torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd, eps=1e-7, foreach=a.foreach)]
        opt_desc = "AdamW (dense gradients, foreach=%s)" % bool(a.foreach)
    else:
        emb = {id(p) for m in model.modules() if isinstance(m, torch.nn.EmbeddingBag) for p in m.parameters()}
        tables = [p for p in model.parameters() if id(p) in emb]
        rest = [p for p in model.parameters() if id(p) not in emb]
        opts = [torch.optim.SparseAdam(tables, lr=lr, eps=1e-7),
                torch.optim.AdamW(rest, lr=lr, weight_decay=wd, eps=1e-7, foreach=a.foreach)]
        opt_desc = "SparseAdam for the tables (EmbeddingBag sparse=True), AdamW for the MLPs and tau"
    t_start = None
    losses = []
    for k, (q_ids, q_w, i_ids, i_w, tiers, valid) in enumerate(batches[: a.warmup + a.steps]):
        if k == a.warmup:
            t_start = time.perf_counter()
            c_start = time.process_time()
        s = fwd(q_ids, q_w, i_ids, i_w)
        loss = h_infonce(s, tiers, valid)
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
        losses.append(float(loss))
    secs = time.perf_counter() - t_start
    cpu = time.process_time() - c_start
    examples = sum(info["examples"][a.warmup : a.warmup + a.steps])
    base.update({
        "examples_per_sec": examples / secs,
        "step_ms": 1000 * secs / a.steps,
        "cpu_s_per_step": cpu / a.steps,
        "examples_per_cpu_sec": examples / cpu,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "optimizer": opt_desc,
        "embedding": "nn.EmbeddingBag(mode=sum, per_sample_weights, sparse=%s)" % (a.optimizer == "sparse"),
    })
    print(json.dumps(base))


def blas_info():
    """The BLAS/LAPACK lines of torch's build configuration."""
    lines = [l.strip() for l in torch.__config__.show().splitlines()]
    keep = [l for l in lines if "BLAS" in l or "LAPACK" in l or "MKL" in l or "OpenMP" in l]
    return "; ".join(keep)[:400]


if __name__ == "__main__":
    main()
