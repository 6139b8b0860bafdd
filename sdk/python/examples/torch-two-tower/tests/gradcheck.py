"""The gradient check of issue 12: one training step of torch-two-tower with
the h-infonce loss plugin through the host (cmd/crops/python_torch_test.go
runs it with debug_dump) against the same step with a pure-PyTorch H-InfoNCE
written here. Usage: python gradcheck.py DUMP; prints a JSON report and
exits 1 when a difference exceeds the tolerance.

The dump holds the step's inputs, the weights before the optimizer moved,
the RNG state the forward pass started from (dropout), the scores, the loss
and dLoss/dScores the plugin returned, and the parameter gradients they gave.
Here the same towers are rebuilt from the same weights, run forward on the
same batch from the same RNG state, and H-InfoNCE is computed by autograd."""

from __future__ import annotations

import json
import sys
from typing import Any

import torch

TOL = 1e-5


def h_infonce_reference(scores: torch.Tensor, tiers: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """CroPS Eq. 3 straight from its definition, one row at a time with an
    N x N mask: sample i of row b is a positive against every valid j with
    tier_j < tier_i; term_i = log(exp(s_i) + sum_j exp(s_j)) - s_i. A row's
    loss is the sum of its terms; the batch loss averages the rows that have
    at least one term (h-infonce's default reduction, query_mean)."""
    total = scores.new_zeros(())
    rows = 0
    for b in range(scores.shape[0]):
        s, t, v = scores[b], tiers[b], valid[b].bool()
        below = v.unsqueeze(0) & (t.unsqueeze(0) < t.unsqueeze(1))  # below[i, j]
        is_term = v & below.any(1)
        if not bool(is_term.any()):
            continue
        competitors = s.unsqueeze(0).expand(len(s), -1).masked_fill(~below, float("-inf"))
        lse = torch.logsumexp(torch.cat([s.unsqueeze(1), competitors], dim=1), dim=1)
        total = total + (lse - s)[is_term].sum()
        rows += 1
    return total / max(rows, 1)


def check(path: str) -> dict[str, Any]:
    from crops_torch_two_tower.model import build_towers, encoder_from_config
    from crops_torch_two_tower.params import Params
    from transformers import AutoConfig

    d = torch.load(path, map_location="cpu")
    p = Params(**d["params"])
    cfg = d["encoder_config"]
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    towers = build_towers(p, encoder_from_config(config))
    towers.load_state_dict(d["state"])
    towers.train()
    torch.set_rng_state(d["rng_state"])
    qv = towers.encode_queries(d["q_ids"], d["q_mask"])
    dv = towers.encode_items(d["d_ids"], d["d_mask"])
    s = (qv @ dv[d["col_index"]].T) / towers.tau()
    scores = s.new_zeros(d["tiers"].shape).index_copy(1, d["col_pos"], s)
    scores.retain_grad()
    # The loss in float64 (as the Go plugin computes it); the gradient flows
    # back into the float32 towers.
    loss = h_infonce_reference(scores.double(), d["tiers"], d["valid"])
    loss.backward()
    assert scores.grad is not None
    out: dict[str, Any] = {
        "shape": list(d["tiers"].shape),
        "real_columns": int(d["col_pos"].numel()),
        "max_abs_diff_scores": float((scores.detach() - d["scores"]).abs().max()),
        "loss_plugin": d["loss"], "loss_reference": float(loss),
        "max_abs_diff_grad_scores": float((scores.grad - d["grad_scores"]).abs().max()),
        "max_abs_grad_scores": float(scores.grad.abs().max()),
    }
    worst, worst_name, biggest, n = 0.0, "", 0.0, 0
    for name, x in towers.named_parameters():
        if x.grad is None:
            continue
        if name not in d["param_grads"]:
            raise SystemExit(f"gradcheck: parameter {name} has a gradient here but none in the plugin's step")
        diff = float((x.grad - d["param_grads"][name]).abs().max())
        biggest = max(biggest, float(x.grad.abs().max()))
        n += 1
        if diff >= worst:
            worst, worst_name = diff, name
    out.update({"parameters_compared": n, "max_abs_diff_param_grads": worst, "worst_parameter": worst_name,
                "max_abs_param_grad": biggest, "tolerance": TOL})
    out["ok"] = (out["max_abs_diff_scores"] <= TOL and abs(out["loss_plugin"] - out["loss_reference"]) <= TOL
                 and out["max_abs_diff_grad_scores"] <= TOL and worst <= TOL and n > 0)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: gradcheck.py DUMP (a torch-two-tower debug_dump file)")
    rep = check(sys.argv[1])
    print(json.dumps(rep, indent=2))
    sys.exit(0 if rep["ok"] else 1)
