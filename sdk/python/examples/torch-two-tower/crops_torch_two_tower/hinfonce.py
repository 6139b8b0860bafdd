"""H-InfoNCE (CroPS Eq. 3) in PyTorch, for loss_backend "torch": the
benchmark's reference step with no plugin boundary. The same definition as
the h-infonce plugin (plugins/loss) with reduction query_mean: every valid
sample with a valid sample at a strictly lower tier in its row is a positive
term, -log(exp(s_i) / (exp(s_i) + sum_{t_j < t_i} exp(s_j))); a row's terms
are summed and the rows with at least one term averaged."""

from __future__ import annotations

import torch


def h_infonce(scores: torch.Tensor, tiers: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    neg_inf = torch.finfo(scores.dtype).min
    total = scores.new_zeros(scores.shape[0])
    has_term = torch.zeros(scores.shape[0], dtype=torch.bool, device=scores.device)
    # Tiers are few (0..5 in practice): one masked log-sum-exp per level.
    for level in torch.unique(tiers[valid]).tolist():
        below = valid & (tiers < level)
        if not bool(below.any()):
            continue
        lse_below = torch.logsumexp(scores.masked_fill(~below, neg_inf), dim=1, keepdim=True)
        is_term = valid & (tiers == level) & below.any(dim=1, keepdim=True)
        lse = torch.logaddexp(scores, lse_below)
        total = total + ((lse - scores) * is_term).sum(dim=1)
        has_term |= is_term.any(dim=1)
    rows = int(has_term.sum().item())
    return total.sum() / max(rows, 1)
