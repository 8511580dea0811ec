"""Perplexity of a qkvflow model file or checkpoint on a split of a token folder, computed by the PyTorch twin
over the same windows as `qkvflow eval` (every seqLen tokens, the last window padded).

    python3 -m qkvflow_torch.evaluate --checkpoint PATH --tokens DIR [--config NAME|FILE] [--split NAME]
                                      [--seq-len T] [--batch-size B] [--max-batches N] [--device cpu|cuda]

Without --seq-len / --batch-size / --max-batches the configuration's data.seqLen, train.evalBatchSize (else the
micro-batch) and train.evalBatches are used; the configuration defaults to the checkpoint's run folder's
config.json. Prints one JSON line: {"split", "loss", "ppl", "tokens", "batches", "source"}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from .checkpoint import CONFIG_FILE, read_model_file, resolve_model_file
from .config import load_train_config
from .data import TokenFiles
from .models import create_model, load_state
from .train import Dist, evaluate


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="qkvflow_torch.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--config")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--split")
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--max-batches", type=int)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    a = ap.parse_args(argv)
    model_file = resolve_model_file(a.checkpoint)
    ref = a.config
    if ref is None:
        for cand in (os.path.join(os.path.dirname(model_file), CONFIG_FILE), os.path.join(a.checkpoint, CONFIG_FILE)):
            if os.path.isfile(cand):
                ref = cand
                break
    cfg = load_train_config(ref, a.set) if ref else None
    if cfg is None and (a.seq_len is None or a.batch_size is None):
        raise SystemExit("evaluate: give --config (or a checkpoint folder with config.json), or --seq-len and --batch-size")
    seq_len = a.seq_len or cfg["data"]["seqLen"]
    tr = cfg["train"] if cfg else {}
    batch = a.batch_size or tr.get("evalBatchSize") or tr["batchSize"] // tr["gradAccum"]
    max_batches = a.max_batches if a.max_batches is not None else tr.get("evalBatches")
    state, mc = read_model_file(model_file)
    model = create_model(mc)
    load_state(model, state)
    d = Dist(None, a.device)
    try:
        model.to(d.device)
        tf = TokenFiles(a.tokens)
        split = a.split or tf.eval_split
        r = evaluate(model, tf.split(split), seq_len, batch, max_batches, d)
        if d.main:
            print(json.dumps({"split": split, **r, "source": model_file}), flush=True)
    finally:
        d.close()
    return 0


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("QKVFLOW_TORCH_THREADS", "0")) or torch.get_num_threads())
    sys.exit(main())
