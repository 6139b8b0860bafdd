"""Tokenizer and towers: a Hugging Face transformers encoder per tower (or
one shared), mean or CLS pooling, L2-normalised embeddings, and the paper's
learnable temperature (score = cos / tau)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from torch import nn

from .params import Params

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

WEIGHT_FILES = ["model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json"]
TOKENIZER_FILES = ["tokenizer.json", "vocab.txt"]


class CheckpointError(ValueError):
    """A model_path that is not a usable Hugging Face checkpoint directory."""


def check_checkpoint(path: str) -> None:
    """Fail with the missing file's name when path is not a checkpoint dir.
    Nothing is ever downloaded: only local directories are accepted."""
    what = ("a local Hugging Face checkpoint directory with config.json, the weights "
            f"({' or '.join(WEIGHT_FILES[:2])}) and the tokenizer ({' or '.join(TOKENIZER_FILES)})")
    if not os.path.isdir(path):
        raise CheckpointError(f"model_path {path}: not a directory; expected {what} "
                              "(models are never downloaded at run time: download it first)")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise CheckpointError(f"model_path {path}: config.json is missing; expected {what}")
    if not any(os.path.isfile(os.path.join(path, f)) for f in WEIGHT_FILES):
        raise CheckpointError(f"model_path {path}: the weights are missing (none of {', '.join(WEIGHT_FILES)}); "
                              f"expected {what}")
    if not any(os.path.isfile(os.path.join(path, f)) for f in TOKENIZER_FILES):
        raise CheckpointError(f"model_path {path}: the tokenizer is missing (neither tokenizer.json nor vocab.txt); "
                              f"expected {what}")


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """A BERT-style WordPiece tokenizer fitted to texts (the dataset's items
    and training queries): lower-cased, accents kept (titles in many scripts).

    The vocabulary is chosen here, deterministically: the special tokens,
    every character seen (alone and as a "##" continuation), then the most
    frequent words and "##" word endings (up to 3 characters), count first,
    ties by the string. tokenizers' own WordPieceTrainer breaks ties between
    equal counts in hash-map order, so two trainings on the same text give
    different vocabularies (we checked), and crops needs same seed, same
    bytes. Normalisation, pre-tokenisation and WordPiece itself are
    tokenizers'."""
    from collections import Counter

    norm = normalizers.BertNormalizer(lowercase=True, strip_accents=False, handle_chinese_chars=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for t in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    chars = sorted({c for w in words for c in w})
    vocab: dict[str, int] = {}
    for tok in [*SPECIAL, *chars, *("##" + c for c in chars)]:
        vocab.setdefault(tok, len(vocab))
    pieces: Counter[str] = Counter()
    for w, n in words.items():
        pieces[w] += n
        for k in range(2, min(3, len(w) - 1) + 1):
            pieces["##" + w[-k:]] += n
    for tok, _ in sorted(pieces.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size:
            break
        vocab.setdefault(tok, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = norm
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return tok


def checkpoint_tokenizer(path: str) -> Tokenizer:
    """The fast tokenizer of a checkpoint directory (tokenizer.json, or built
    by transformers from vocab.txt), as a tokenizers.Tokenizer."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(path, local_files_only=True, use_fast=True)
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is None:
        raise CheckpointError(f"model_path {path}: transformers has no fast tokenizer for it; "
                              "add a tokenizer.json (tokenizer.save_pretrained writes one)")
    tok: Tokenizer = Tokenizer.from_str(backend.to_str())
    return tok


class Encoded:
    """Token ids and attention masks of a list of texts, padded to the
    longest (at most max_len) and kept on the CPU."""

    def __init__(self, tok: Tokenizer, texts: list[str], max_len: int) -> None:
        t = Tokenizer.from_str(tok.to_str())
        t.no_padding()
        t.enable_truncation(max_length=max_len)
        enc = t.encode_batch(texts)
        width = max((len(e.ids) for e in enc), default=1)
        pad = tok.token_to_id("[PAD]")
        self.ids = torch.full((len(texts), max(width, 1)), pad if pad is not None else 0, dtype=torch.long)
        self.mask = torch.zeros((len(texts), max(width, 1)), dtype=torch.long)
        for i, e in enumerate(enc):
            self.ids[i, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
            self.mask[i, : len(e.ids)] = 1

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows idx, trimmed to their longest text."""
        ids, mask = self.ids[idx], self.mask[idx]
        width = max(int(mask.sum(1).max().item()) if len(idx) else 1, 1)
        return ids[:, :width], mask[:, :width]


def random_encoder_config(p: Params, vocab_size: int) -> Any:
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=p.hidden_size, num_hidden_layers=p.num_layers,
                      num_attention_heads=p.num_heads, intermediate_size=p.intermediate_size,
                      max_position_embeddings=max(p.max_query_tokens, p.max_item_tokens) + 2,
                      type_vocab_size=2, pad_token_id=0)


def encoder_from_config(config: Any) -> nn.Module:
    from transformers import AutoModel

    m: nn.Module = AutoModel.from_config(config, add_pooling_layer=False) if _takes_pooling(config) \
        else AutoModel.from_config(config)
    return m


def _takes_pooling(config: Any) -> bool:
    return getattr(config, "model_type", "") in ("bert", "roberta", "xlm-roberta", "ernie", "camembert")


def encoder_from_checkpoint(path: str) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    kw: dict[str, Any] = {"add_pooling_layer": False} if _takes_pooling(config) else {}
    m: nn.Module = AutoModel.from_pretrained(path, local_files_only=True, **kw)
    return m


class Towers(nn.Module):
    """Query and item towers over transformers encoders."""

    def __init__(self, query_encoder: nn.Module, item_encoder: nn.Module | None, pooling: str,
                 init_tau: float, learn_tau: bool, min_tau: float) -> None:
        super().__init__()
        self.query_encoder = query_encoder
        # None: the towers share query_encoder (one set of weights).
        self.item_encoder = item_encoder
        self.pooling = pooling
        self.min_tau = min_tau
        self.log_tau = nn.Parameter(torch.tensor(math.log(init_tau), dtype=torch.float32), requires_grad=learn_tau)

    def tau(self) -> torch.Tensor:
        return torch.clamp(self.log_tau.exp(), min=self.min_tau)

    def _encode(self, enc: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = enc(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            v = h[:, 0]
        else:
            m = mask.unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return F.normalize(v, dim=-1)

    def encode_queries(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._encode(self.query_encoder, ids, mask)

    def encode_items(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._encode(self.item_encoder if self.item_encoder is not None else self.query_encoder, ids, mask)


def build_towers(p: Params, encoder: nn.Module) -> Towers:
    """Towers around encoder; separate towers get a second copy of it (the
    same initial weights, as two towers fine-tuned from one checkpoint)."""
    item = None
    if not p.shared_towers:
        import copy

        item = copy.deepcopy(encoder)
    return Towers(encoder, item, p.pooling, p.init_tau, p.learn_tau, p.min_tau)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError('device = "cuda" but torch sees no CUDA device (torch '
                         f'{torch.__version__}); use "auto" or "cpu"')
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def write_json_atomic(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def save_torch_atomic(obj: Any, path: str) -> None:
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)
