"""Training: batches of B queries x N candidates, scores = cos / tau, the loss
and dLoss/dScores from the loss plugin the YAML names (through the host's
broker), backpropagated through the towers; AdamW. Checkpoints every
checkpoint_every epochs (model, optimizer, position), and a run that finds a
matching checkpoint in model_dir resumes after it."""

from __future__ import annotations

import glob
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from crops_sdk import Context, LossInput, Progress, TrainRequest, decode_params, logger

from . import data
from .hinfonce import h_infonce
from .model import (
    Encoded,
    Towers,
    build_towers,
    check_checkpoint,
    checkpoint_tokenizer,
    encoder_from_checkpoint,
    encoder_from_config,
    pick_device,
    random_encoder_config,
    save_torch_atomic,
    train_tokenizer,
    write_json_atomic,
)
from .params import Params

log = logger("torch-two-tower")

TOKENIZER = "tokenizer.json"
ENCODER_DIR = "encoder"
FINAL = "model.pt"
META = "meta.json"
STATS = "train_stats.json"
CKPT_DIR = "checkpoints"


def _ckpt_path(model_dir: str, epoch: int) -> str:
    return os.path.join(model_dir, CKPT_DIR, f"epoch-{epoch:04d}.pt")


def _checkpoints(model_dir: str) -> list[tuple[int, str]]:
    out = []
    for p in glob.glob(os.path.join(model_dir, CKPT_DIR, "epoch-*.pt")):
        m = re.search(r"epoch-(\d+)\.pt$", p)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def _read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


@dataclass
class Setup:
    """Everything a model needs besides its weights: written to model_dir
    before training so that a resumed run and Search rebuild the same towers."""

    towers: Towers
    tok: Any  #: tokenizers.Tokenizer
    params: Params


def new_model(p: Params, model_dir: str, seed: int, texts: Callable[[], list[str]]) -> Setup:
    """Tokenizer and towers for a fresh run, saved to model_dir; reuses the
    tokenizer and encoder config a previous run with the same arch saved."""
    from tokenizers import Tokenizer

    os.makedirs(model_dir, exist_ok=True)
    tok_path = os.path.join(model_dir, TOKENIZER)
    enc_dir = os.path.join(model_dir, ENCODER_DIR)
    arch_path = os.path.join(model_dir, "arch.json")
    same = os.path.isfile(arch_path) and _read_json(arch_path) == p.arch() and os.path.isfile(tok_path)
    torch.manual_seed(seed)
    if p.model_path:
        check_checkpoint(p.model_path)
        tok = checkpoint_tokenizer(p.model_path)
        encoder = encoder_from_checkpoint(p.model_path)
    else:
        if same:
            tok = Tokenizer.from_file(tok_path)
        else:
            t0 = time.perf_counter()
            tok = train_tokenizer(texts(), p.vocab_size)
            log.info("trained the tokenizer", extra={"fields": {
                "vocab": tok.get_vocab_size(), "seconds": round(time.perf_counter() - t0, 2)}})
        encoder = encoder_from_config(random_encoder_config(p, tok.get_vocab_size()))
    if not same:
        tok.save(tok_path + ".tmp")
        os.replace(tok_path + ".tmp", tok_path)
        encoder.config.save_pretrained(enc_dir)
        write_json_atomic(arch_path, p.arch())
    return Setup(build_towers(p, encoder), tok, p)


def load_model(model_dir: str, device: torch.device) -> tuple[Setup, dict[str, Any]]:
    """The trained model in model_dir (what Train wrote), for Search/Score."""
    from tokenizers import Tokenizer
    from transformers import AutoConfig

    final = os.path.join(model_dir, FINAL)
    if not os.path.isfile(final):
        raise ValueError(f"torch-two-tower: {final} does not exist: model_dir {model_dir} holds no trained model "
                         "(run Train first)")
    meta = _read_json(os.path.join(model_dir, META))
    p = decode_params(json.dumps(meta["params"]), Params)
    tok = Tokenizer.from_file(os.path.join(model_dir, TOKENIZER))
    config = AutoConfig.from_pretrained(os.path.join(model_dir, ENCODER_DIR), local_files_only=True)
    encoder = encoder_from_config(config)
    towers = build_towers(p, encoder)
    state = torch.load(final, map_location="cpu")
    towers.load_state_dict(state["towers"])
    towers.to(device).eval()
    return Setup(towers, tok, p), meta


class Trainer:
    def __init__(self, ctx: Context, req: TrainRequest, progress: Callable[[Progress], None]) -> None:
        self.ctx, self.req, self.progress = ctx, req, progress
        self.p = decode_params(req.params, Params)
        if self.p.loss_backend == "plugin" and req.loss is None:
            raise ValueError('torch-two-tower: train needs a loss plugin (the YAML\'s loss), or loss_backend "torch"')
        if self.p.threads:
            torch.set_num_threads(self.p.threads)
        self.device = pick_device(self.p.device)
        self.positive_min_tier = self._row_mode()
        self.key = self.p.train_key(req.seed, req.loss_params)
        self.key["loss"] = self.loss_name
        self.step_seconds: list[float] = []
        self.loss_seconds: list[float] = []

    def run(self) -> None:
        p, req = self.p, self.req
        meta_path = os.path.join(req.model_dir, META)
        if os.path.isfile(os.path.join(req.model_dir, FINAL)) and os.path.isfile(meta_path):
            meta = _read_json(meta_path)
            if meta.get("train_key") == self.key and meta.get("complete") and meta.get("epochs") == p.epochs:
                self.progress(Progress(message="torch-two-tower: model_dir holds this model already; nothing to do"))
                return
        cat = data.load_catalog(req.items_paths, include_synthetic=True)
        ts = data.load_labels(req.train_table, cat)
        if not ts.queries:
            raise ValueError(f"torch-two-tower: label table {req.train_table} has no rows whose item is in the items "
                             f"tables ({ts.skipped} rows skipped)")
        setup = new_model(p, req.model_dir, req.seed, lambda: ts.queries + cat.texts)
        towers = setup.towers.to(self.device)
        self.q_enc = Encoded(setup.tok, ts.queries, p.max_query_tokens)
        self.i_enc = Encoded(setup.tok, cat.texts, p.max_item_tokens)
        opt = torch.optim.AdamW([x for x in towers.parameters() if x.requires_grad], lr=p.learning_rate,
                                weight_decay=p.weight_decay)
        start_epoch, step = self._resume(towers, opt)
        if self.positive_min_tier is not None and not any(
                t >= self.positive_min_tier for cs in ts.cands for _, t in cs):
            raise ValueError(f"torch-two-tower: the loss {self.loss_name} asks for one row per positive "
                             f"(per_positive_rows) but label table {req.train_table} has no row with tier >= "
                             f"{self.positive_min_tier} (positive_min_tier); lower positive_min_tier in the loss "
                             "params or use a label table with positives")
        per_epoch = data.steps_per_epoch(ts, p.batch_queries, p.max_candidates_per_query, self.positive_min_tier)
        total = per_epoch * p.epochs
        if p.max_steps:
            total = min(total, p.max_steps)
        log.info("train", extra={"fields": {
            "queries": len(ts.queries), "items": len(cat.ids), "skipped_labels": ts.skipped, "device": str(self.device),
            "threads": torch.get_num_threads(), "steps": total, "resume_epoch": start_epoch}})
        towers.train()
        epoch = start_epoch
        done = False
        for epoch in range(start_epoch, p.epochs):
            t_epoch, n_ex = time.perf_counter(), 0
            for bt in data.epoch_batches(ts, epoch, req.seed, p.batch_queries, p.max_candidates_per_query,
                                         self.positive_min_tier):
                self.ctx.raise_if_cancelled()
                loss = self._step(towers, opt, bt, step)
                step += 1
                n_ex += len(bt.rows)
                if step % p.progress_every == 0 or step == total:
                    rate = n_ex / max(time.perf_counter() - t_epoch, 1e-9)
                    self.progress(Progress(epoch=epoch + 1, step=step, total_steps=total, loss=loss,
                                           examples_per_sec=rate))
                if p.max_steps and step >= p.max_steps:
                    done = True
                    break
            if p.checkpoint_every and ((epoch + 1) % p.checkpoint_every == 0 or epoch + 1 == p.epochs) and not done:
                self._checkpoint(towers, opt, epoch + 1, step)
            if done:
                break
        # A run cut short by max_steps is not the finished model: a later
        # run with the same settings trains again.
        self._save_final(towers, step, complete=not done)

    def _step(self, towers: Towers, opt: torch.optim.Optimizer, bt: data.Batch, step: int) -> float:
        t0 = time.perf_counter()
        dev = self.device
        rng_state = torch.get_rng_state() if self.p.debug_dump and step == 0 else None
        q_ids, q_mask = self.q_enc.take(torch.tensor(bt.rows))
        uniq, col_index = np.unique(np.asarray(bt.cols, np.int64), return_inverse=True)
        d_ids, d_mask = self.i_enc.take(torch.from_numpy(uniq))
        qv = towers.encode_queries(q_ids.to(dev), q_mask.to(dev))
        dv = towers.encode_items(d_ids.to(dev), d_mask.to(dev))
        cos = qv @ dv[torch.from_numpy(col_index).to(dev)].T
        # Real columns into their places of the (R, N) matrix; padding
        # columns stay 0 (flagged invalid: the loss ignores them).
        col_pos = torch.tensor(bt.pos, dtype=torch.long, device=dev)
        scores = (cos / towers.tau()).new_zeros(bt.tiers.shape).index_copy(1, col_pos, cos / towers.tau())
        # t1..t2 is the loss alone: the plugin call (packing, the broker hop,
        # the loss process, unpacking) or the PyTorch loss's forward pass.
        t1 = time.perf_counter()
        if self.p.loss_backend == "torch":
            lt = h_infonce(scores, torch.from_numpy(bt.tiers).to(dev), torch.from_numpy(bt.valid).to(dev))
            loss, grad = float(lt.item()), None
            t2 = time.perf_counter()
            lt.backward()
        else:
            assert self.req.loss is not None
            out = self.req.loss.compute(self.ctx, LossInput(
                scores=scores.detach().to("cpu", torch.float32).numpy(), tiers=bt.tiers, valid=bt.valid,
                params=self.req.loss_params))
            loss, grad = out.loss, torch.from_numpy(np.ascontiguousarray(out.grad, np.float32)).to(dev)
            t2 = time.perf_counter()
            scores.backward(grad)
        if rng_state is not None:
            self._dump(towers, bt, rng_state, q_ids, q_mask, d_ids, d_mask, col_index, scores, loss, grad)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if not np.isfinite(loss):
            raise ValueError(f"torch-two-tower: step {step + 1}: loss is {loss} (lower learning_rate or raise min_tau)")
        self.step_seconds.append(time.perf_counter() - t0)
        self.loss_seconds.append(t2 - t1)
        return loss

    def _dump(self, towers: Towers, bt: data.Batch, rng_state: torch.Tensor, q_ids: torch.Tensor,
              q_mask: torch.Tensor, d_ids: torch.Tensor, d_mask: torch.Tensor, col_index: np.ndarray,
              scores: torch.Tensor, loss: float, grad: torch.Tensor | None) -> None:
        """The first step, for the gradient check: the inputs, the weights
        before the optimizer moves, the RNG state the forward pass started
        from (dropout), and the gradients the loss plugin's answer produced."""
        save_torch_atomic({
            "rng_state": rng_state, "state": {k: v.detach().cpu().clone() for k, v in towers.state_dict().items()},
            "encoder_config": towers.query_encoder.config.to_dict(), "params": asdict(self.p),
            "q_ids": q_ids, "q_mask": q_mask, "d_ids": d_ids, "d_mask": d_mask,
            "col_index": torch.from_numpy(col_index), "col_pos": torch.tensor(bt.pos, dtype=torch.long),
            "tiers": torch.from_numpy(bt.tiers),
            "valid": torch.from_numpy(bt.valid), "scores": scores.detach().cpu(), "loss": loss,
            "grad_scores": None if grad is None else grad.cpu(),
            "param_grads": {n: x.grad.detach().cpu().clone() for n, x in towers.named_parameters()
                            if x.grad is not None},
        }, self.p.debug_dump)

    def _row_mode(self) -> int | None:
        """positive_min_tier when the loss declares per_positive_rows (the
        per-positive infonce baseline: one row per positive), else None."""
        if self.p.loss_backend == "torch" or self.req.loss is None:
            self.loss_name = "h-infonce (PyTorch)"
            return None
        info = self.req.loss.describe()
        self.loss_name = f"{info.name} {info.version}"
        if "per_positive_rows" not in info.capabilities:
            return None
        raw = self.req.loss_params.strip() or b"{}"
        try:
            lp = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"loss {info.name!r} params: not valid JSON ({e})") from None
        tier = lp.get("positive_min_tier", 4) if isinstance(lp, dict) else 4
        if not isinstance(tier, int) or tier < 1:
            raise ValueError(f'loss {info.name!r} params: field "positive_min_tier": {tier!r} must be an integer >= 1 '
                             "(tier 0 marks in-batch negatives)")
        return tier

    def _resume(self, towers: Towers, opt: torch.optim.Optimizer) -> tuple[int, int]:
        for epoch, path in reversed(_checkpoints(self.req.model_dir)):
            if epoch > self.p.epochs:
                continue
            ck = torch.load(path, map_location="cpu")
            if ck.get("train_key") != self.key:
                log.warning("checkpoint from another configuration; not resuming from it",
                            extra={"fields": {"path": path}})
                continue
            towers.load_state_dict(ck["towers"])
            opt.load_state_dict(ck["optimizer"])
            torch.set_rng_state(ck["rng_state"])
            self.progress(Progress(epoch=epoch, step=int(ck["step"]),
                                   message=f"torch-two-tower: resuming after epoch {epoch} from {path}"))
            return epoch, int(ck["step"])
        return 0, 0

    def _checkpoint(self, towers: Towers, opt: torch.optim.Optimizer, epoch: int, step: int) -> None:
        os.makedirs(os.path.join(self.req.model_dir, CKPT_DIR), exist_ok=True)
        save_torch_atomic({"towers": towers.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                           "step": step, "train_key": self.key, "rng_state": torch.get_rng_state()},
                          _ckpt_path(self.req.model_dir, epoch))
        for _, old in _checkpoints(self.req.model_dir)[: -self.p.keep_checkpoints]:
            os.remove(old)

    def _save_final(self, towers: Towers, step: int, complete: bool) -> None:
        d = self.req.model_dir
        save_torch_atomic({"towers": towers.state_dict()}, os.path.join(d, FINAL))
        s = np.asarray(self.step_seconds)
        l_ = np.asarray(self.loss_seconds)
        write_json_atomic(os.path.join(d, STATS), {
            "steps": len(s), "step_seconds": s.tolist(), "loss_seconds": l_.tolist(),
            "device": str(self.device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "loss_backend": self.p.loss_backend})
        write_json_atomic(os.path.join(d, META), {
            "params": asdict(self.p), "train_key": self.key, "epochs": self.p.epochs, "step": step,
            "tau": float(towers.tau().item()), "complete": complete})
