"""Token files written by `qkvflow tokenize`, and the batches qkvflow's trainer and evaluation draw from them.

A token folder holds `tokens.json` (format `qkvflow-token-files`, version 1: dtype uint16 little-endian, vocabulary
size, EOS id, which split trains and which evaluates, and per split its file and token count) and one flat file of
uint16 token ids per split, memory-mapped here (`numpy.memmap`), so Python needs no tokenizer.

Training windows are the ones of qkvflow's BatchSampler: windows of seqLen + 1 tokens every `stride` tokens
(default seqLen + 1), visited per epoch in the order `numpy.random.default_rng([seed, epoch]).permutation(n)`,
B windows per batch, the last n mod B windows of an epoch skipped. Evaluation windows are those of qkvflow's
evalBatches: every seqLen tokens, the last shorter window padded (id 0, its targets ignored).
"""

from __future__ import annotations

import json
import os
from typing import Dict, Iterator, Tuple

import numpy as np

TOKEN_FORMAT = "qkvflow-token-files"
HEADER_FILE = "tokens.json"


class TokenFiles:
    """A token folder written by `qkvflow tokenize`."""

    def __init__(self, folder: str):
        self.folder = folder
        path = os.path.join(folder, HEADER_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{folder} has no {HEADER_FILE}; write the token files with `qkvflow tokenize --config NAME --out {folder}`")
        with open(path, encoding="utf-8") as f:
            h = json.load(f)
        if h.get("format") != TOKEN_FORMAT or h.get("version") != 1:
            raise ValueError(f"{path}: format {h.get('format')!r} version {h.get('version')!r}; expected '{TOKEN_FORMAT}' version 1")
        if h.get("dtype") != "uint16":
            raise ValueError(f"{path}: dtype {h.get('dtype')!r}; expected 'uint16'")
        self.header: Dict = h
        self.vocab_size: int = h["vocabSize"]
        self.train_split: str = h["train"]
        self.eval_split: str = h["eval"]

    def split(self, name: str) -> np.ndarray:
        """The tokens of a split, memory-mapped (read-only uint16)."""
        s = self.header["splits"].get(name)
        if s is None:
            raise KeyError(f"{self.folder}: no split '{name}'; available: {', '.join(self.header['splits'])}")
        path = os.path.join(self.folder, s["file"])
        size = os.path.getsize(path)
        if size != 2 * s["tokens"]:
            raise ValueError(f"{path} has {size} bytes; the header says {s['tokens']} uint16 tokens ({2 * s['tokens']} bytes)")
        return np.memmap(path, dtype="<u2", mode="r", shape=(s["tokens"],))


def count_windows(length: int, seq_len: int, stride: int) -> int:
    if length < seq_len + 1:
        return 0
    return (length - seq_len - 1) // stride + 1


def permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The window order of an epoch (qkvflow's default: NumPy's default_rng([seed, epoch]).permutation(n))."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class BatchSampler:
    """Shuffled training batches with a position that qkvflow's trainer state (`sampler`) describes."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, stride: int = 0, seed: int = 0):
        self.tokens = tokens
        self.batch_size, self.seq_len = batch_size, seq_len
        self.stride = stride or seq_len + 1
        self.seed = seed
        self.num_windows = count_windows(len(tokens), seq_len, self.stride)
        self.batches_per_epoch = self.num_windows // batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"BatchSampler: {len(tokens)} tokens give {self.num_windows} windows of {seq_len + 1} tokens (stride {self.stride}), "
                f"fewer than one batch of {batch_size}; use a smaller batchSize/seqLen or more data"
            )
        self.epoch, self.index = 0, 0
        self._order_epoch, self._order = -1, None

    def order(self, epoch: int) -> np.ndarray:
        if epoch != self._order_epoch:
            self._order, self._order_epoch = permutation(self.num_windows, self.seed, epoch), epoch
        return self._order

    def next(self) -> Tuple[np.ndarray, np.ndarray]:
        """Inputs and targets [B, T] (int64) of the next batch; advances the position."""
        order = self.order(self.epoch)
        B, T = self.batch_size, self.seq_len
        starts = order[self.index * B : (self.index + 1) * B] * self.stride
        idx = starts[:, None] + np.arange(T + 1)[None, :]
        w = np.asarray(self.tokens[idx.reshape(-1)], dtype=np.int64).reshape(B, T + 1)
        self.index += 1
        if self.index == self.batches_per_epoch:
            self.index, self.epoch = 0, self.epoch + 1
        return w[:, :-1], w[:, 1:]

    def state(self) -> Dict[str, int]:
        return {
            "epoch": self.epoch,
            "index": self.index,
            "numWindows": self.num_windows,
            "batchSize": self.batch_size,
            "seqLen": self.seq_len,
            "stride": self.stride,
        }

    def restore(self, s: Dict[str, int]) -> None:
        mine = self.state()
        for k in ("numWindows", "batchSize", "seqLen", "stride"):
            if s.get(k) != mine[k]:
                raise ValueError(f"BatchSampler.restore: state has {k}={s.get(k)}, this sampler has {k}={mine[k]}")
        if not 0 <= s["index"] < self.batches_per_epoch or s["epoch"] < 0:
            raise ValueError(f"BatchSampler.restore: position epoch {s['epoch']} index {s['index']} is outside this sampler")
        self.epoch, self.index = s["epoch"], s["index"]


def count_eval_windows(length: int, seq_len: int) -> int:
    full = count_windows(length, seq_len, seq_len)
    return full + 1 if full * seq_len + 1 < length else full


def eval_batches(tokens: np.ndarray, batch_size: int, seq_len: int, pad_id: int = 0) -> Iterator[Tuple[np.ndarray, np.ndarray, int]]:
    """Inputs, targets (padding → −100) and the number of real targets of each evaluation batch, in order."""
    total = count_eval_windows(len(tokens), seq_len)
    n = len(tokens)
    for first in range(0, total, batch_size):
        B = min(batch_size, total - first)
        pos = (first + np.arange(B))[:, None] * seq_len + np.arange(seq_len)[None, :]
        inp = np.where(pos < n, np.asarray(tokens[np.minimum(pos, n - 1)], dtype=np.int64), pad_id)
        real = pos + 1 < n
        tgt = np.where(real, np.asarray(tokens[np.minimum(pos + 1, n - 1)], dtype=np.int64), -100)
        yield inp, tgt, int(real.sum())
