"""The PyTorch trainer: qkvflow's training loop for one process or for torchrun with DDP (gloo on CPUs, NCCL on GPUs).

    torchrun --nproc_per_node N -m qkvflow_torch.train --config NAME|FILE --tokens DIR --out RUN_DIR [options]
    python3 -m qkvflow_torch.train ...            (one process)

It reads qkvflow's configuration files (model, optimizer, train and data.seqLen / data.stride / seed), the token
folder written by `qkvflow tokenize`, and writes a run folder qkvflow reads: config.json, metrics.jsonl (the same
records) and checkpoints/step-*/ (model.safetensors, optimizer.safetensors, state.json, config.json).

Batches: train.batchSize is the global batch of one update, made of train.gradAccum micro-batches of
batchSize / gradAccum windows, drawn by qkvflow's sampler (the same windows in the same order as `qkvflow train`).
With N processes each micro-batch is split into N equal slices (rank r takes rows r·b/N … (r+1)·b/N − 1), so the
micro-batch must be divisible by N. DDP averages the gradients over the ranks, the micro-batches are averaged too:
the update is the one a single process computes on the whole global batch, up to float32 round-off.

Resume (`--resume [PATH]`) takes a checkpoint written by this trainer or by `qkvflow train` / `qkvflow finetune`
(model, AdamW moments and count, sampler position, metrics length); `--init FILE` starts from a model file
(any qkvflow model file or checkpoint folder) with fresh optimiser state. Dropout uses torch's generator, seeded
per update and micro-batch from the configuration's seed (deterministic, but not qkvflow's dropout masks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.distributed as dist

from .checkpoint import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    js_json,
    load_checkpoint,
    read_model_file,
    resolve_checkpoint_dir,
    resolve_model_file,
    save_checkpoint,
)
from .config import ConfigError, default_decay_patterns, load_train_config, resolve_model_section, upgrade_model_config
from .data import BatchSampler, TokenFiles, count_eval_windows, eval_batches
from .models import TransformerLM, create_model, load_state, state_dict
from .optim import AdamW, make_schedule


class Dist:
    """This process's place in the job (one process when torchrun did not start it)."""

    def __init__(self, backend: Optional[str], device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda":
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        self.backend = backend or ("nccl" if self.device.type == "cuda" else "gloo")
        if self.world > 1:
            dist.init_process_group(self.backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values) -> np.ndarray:
        """Element-wise float64 sum over the ranks."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.backend == "nccl" else "cpu")
        if self.world > 1:
            dist.all_reduce(t)
        return t.cpu().numpy()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


def evaluate(model: TransformerLM, tokens: np.ndarray, seq_len: int, batch_size: int, max_batches: Optional[int], d: Dist) -> Dict[str, float]:
    """Perplexity over the evaluation windows (batch i on rank i mod N), as qkvflow's evaluatePerplexity."""
    total = math.ceil(count_eval_windows(len(tokens), seq_len) / batch_size)
    if max_batches is not None:
        total = min(total, max_batches)
    was = model.training
    model.eval()
    nll, count = 0.0, 0
    with torch.no_grad():
        for i, (x, y, real) in enumerate(eval_batches(tokens, batch_size, seq_len)):
            if i >= total:
                break
            if i % d.world != d.rank or real == 0:
                continue
            loss = model(torch.from_numpy(x).to(d.device), torch.from_numpy(y).to(d.device))
            nll += float(loss) * real
            count += real
    model.train(was)
    s = d.all_sum([nll, count])
    loss = s[0] / s[1]
    return {"loss": float(loss), "ppl": math.exp(loss), "tokens": int(s[1]), "batches": total}


class Metrics:
    """metrics.jsonl of the run (written by rank 0)."""

    def __init__(self, path: str, enabled: bool):
        self.path, self.enabled = path, enabled

    def truncate(self, n: int) -> None:
        if self.enabled:
            with open(self.path, "ab") as f:
                f.truncate(n)

    @property
    def bytes(self) -> int:
        return os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def write(self, rec: Dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(js_json(rec) + "\n")
                f.flush()
                os.fsync(f.fileno())


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="qkvflow_torch.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="configuration file or name (configs/*.json)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a configuration key (repeatable)")
    ap.add_argument("--tokens", required=True, help="token folder written by `qkvflow tokenize`")
    ap.add_argument("--out", help="run folder (default: train.outDir, else runs/<name>)")
    ap.add_argument("--steps", type=int, help="number of updates (train.steps)")
    ap.add_argument("--resume", nargs="?", const="", default=None, help="continue from a checkpoint (default: the run folder's latest)")
    ap.add_argument("--init", help="start from the weights of a model file, checkpoint folder or run folder")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--backend", choices=["gloo", "nccl"], help="torch.distributed backend (default: nccl on cuda, gloo on cpu)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0: torch's default)")
    ap.add_argument("--rank-report", action="store_true", help="write ranks/rank-<r>.json (per-rank losses and parameter checksum)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    overrides = list(a.set)
    if a.steps is not None:
        overrides.append(f"train.steps={a.steps}")
    try:
        cfg = load_train_config(a.config, overrides)
    except ConfigError as err:
        print(f"qkvflow_torch.train: {err}", file=sys.stderr)
        return 2
    run_dir = os.path.abspath(a.out or cfg["train"]["outDir"] or os.path.join("runs", cfg["name"]))
    cfg["train"]["outDir"] = run_dir
    d = Dist(a.backend, a.device)
    try:
        return train(cfg, a, d, run_dir)
    finally:
        d.close()


def train(cfg: Dict[str, Any], a, d: Dist, run_dir: str) -> int:
    log = (lambda m: print(m, flush=True)) if d.main else (lambda m: None)
    tr, oc = cfg["train"], cfg["optimizer"]
    seq_len, seed = cfg["data"]["seqLen"], cfg["seed"]
    micro = tr["batchSize"] // tr["gradAccum"]
    if micro % d.world:
        raise SystemExit(
            f"train: the micro-batch of {micro} windows (train.batchSize {tr['batchSize']} / train.gradAccum {tr['gradAccum']}) "
            f"is not divisible by the {d.world} processes; choose batchSize and gradAccum so that it is"
        )
    per_rank = micro // d.world
    resume_from = None
    if a.resume is not None:
        if a.resume and not os.path.exists(a.resume):
            raise SystemExit(f"train: --resume {a.resume} does not exist; expected a run folder, its checkpoints folder or a step-* folder")
        resume_from = resolve_checkpoint_dir(a.resume or run_dir) if os.path.exists(a.resume or run_dir) else None
        if resume_from is None:
            log(f"resume: {a.resume or run_dir} has no checkpoint yet; starting from scratch")
    elif os.path.isdir(os.path.join(run_dir, CHECKPOINTS_DIR)) and resolve_checkpoint_dir(run_dir) is not None:
        raise SystemExit(f"train: {run_dir} already holds checkpoints; pass --resume to continue that run, or choose another --out")

    ck = load_checkpoint(resume_from) if resume_from else None
    if ck is not None:
        mc = upgrade_model_config(ck["model_config"])
    elif a.init:
        init_state, mc = read_model_file(resolve_model_file(a.init))
    else:
        mc = resolve_model_section(cfg["model"])
    torch.manual_seed(seed)
    model = create_model(mc)
    if ck is not None:
        load_state(model, ck["model"])
    elif a.init:
        load_state(model, init_state)
    model.to(d.device)
    mc = model.config

    tf = TokenFiles(a.tokens)
    if tf.vocab_size > mc["vocabSize"]:
        raise SystemExit(f"train: the token files use a vocabulary of {tf.vocab_size}; the model has {mc['vocabSize']}")
    if seq_len > mc["blockSize"]:
        raise SystemExit(f"train: data.seqLen {seq_len} exceeds the model's blockSize {mc['blockSize']}")
    train_tokens, eval_tokens = tf.split(tf.train_split), tf.split(tf.eval_split)
    sampler = BatchSampler(train_tokens, micro, seq_len, cfg["data"]["stride"] or 0, seed)

    names = model.trainable_names()
    params = dict(model.named_parameters())
    for n, p in params.items():
        p.requires_grad_(n in names)
    decay = oc["decayPatterns"] if oc["decayPatterns"] is not None else default_decay_patterns(mc["kind"])
    opt = AdamW(
        {n: params[n] for n in names},
        beta1=oc["beta1"],
        beta2=oc["beta2"],
        eps=oc["eps"],
        weight_decay=oc["weightDecay"],
        decay_patterns=decay,
        max_grad_norm=oc["maxGradNorm"],
    )
    schedule = make_schedule(oc["lr"], tr["steps"], oc["warmupRatio"], oc["minLrRatio"], oc["schedule"])
    metrics = Metrics(os.path.join(run_dir, METRICS_FILE), d.main)
    step, elapsed, tokens_seen, last_eval, carried = 0, 0.0, 0, None, {}
    if d.main:
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
            f.write(js_json(cfg, 2) + "\n")
    if ck is not None:
        opt.import_state(*ck["optimizer"])
        for n in names:
            opt.m[n], opt.v[n] = opt.m[n].to(d.device), opt.v[n].to(d.device)
        st = ck["state"]
        sampler.restore(st["sampler"])
        step, elapsed, tokens_seen, last_eval = ck["step"], st.get("elapsed", 0.0), st.get("tokens", 0), st.get("lastEval")
        if "rng" in st:
            carried["rng"] = st["rng"]
        if d.main:
            if metrics.bytes >= st.get("metricsBytes", 0):
                metrics.truncate(st.get("metricsBytes", 0))
        metrics.write({"type": "resume", "step": step, "from": ck["dir"]})
        log(f"resumed from {ck['dir']} at step {step}/{tr['steps']}")
    else:
        metrics.truncate(0)

    net = model
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    n_params = sum(p.numel() for p in params.values())
    log(
        f"train: {mc['kind']} model, {n_params:,} parameters ({sum(params[n].numel() for n in names):,} trainable); "
        f"{d.world} process(es) on {d.device.type} ({d.backend if d.world > 1 else 'no'} backend); global batch {tr['batchSize']} = "
        f"{tr['gradAccum']} micro-batches × {d.world} ranks × {per_rank}; train '{tf.train_split}' {len(train_tokens):,} tokens, "
        f"eval '{tf.eval_split}' {len(eval_tokens):,} tokens; run folder {run_dir}"
    )
    eval_bs = tr["evalBatchSize"] or micro
    rank_losses = []

    def save() -> str:
        path = ""
        if d.main:
            state = {
                "version": 1,
                **carried,
                "sampler": sampler.state(),
                "metricsBytes": metrics.bytes,
                "elapsed": elapsed,
                "tokens": tokens_seen,
                "lastEval": last_eval,
                "extra": {"engine": f"torch {torch.__version__}", "worldSize": d.world, "backend": d.backend if d.world > 1 else None},
            }
            path = save_checkpoint(run_dir, step, {n: t.cpu() for n, t in state_dict(model).items()}, mc, opt.export_state(), state, cfg, tr["keepCheckpoints"])
        d.barrier()
        return path

    model.train()
    while step < tr["steps"]:
        t0 = time.perf_counter()
        lr = schedule(step)
        local_sum = 0.0
        for j in range(tr["gradAccum"]):
            x, y = sampler.next()
            rows = slice(d.rank * per_rank, (d.rank + 1) * per_rank)
            xb = torch.from_numpy(np.ascontiguousarray(x[rows])).to(d.device)
            yb = torch.from_numpy(np.ascontiguousarray(y[rows])).to(d.device)
            torch.manual_seed((seed * 1_000_003 + step) * 4099 + j * 131 + d.rank)
            sync = d.world == 1 or j == tr["gradAccum"] - 1
            with contextlib.nullcontext() if sync else net.no_sync():
                loss = net(xb, yb)
                loss.backward()
            local_sum += float(loss)
        # the mean loss over the global batch: every rank's micro-batch slices have the same number of tokens
        mean_loss = float(d.all_sum([local_sum])[0]) / d.world / tr["gradAccum"]
        grads = {n: params[n].grad for n in names}
        for g in grads.values():
            g.div_(tr["gradAccum"])
        norm = opt.global_norm(grads)
        if not (math.isfinite(mean_loss) and math.isfinite(norm)):
            what = f"loss is {mean_loss}" if not math.isfinite(mean_loss) else f"gradient norm is {norm}"
            metrics.write({"type": "error", "step": step + 1, "message": what})
            raise SystemExit(f"train: {what} at update {step + 1} (lr {lr:.3e}); stopped without applying it")
        _, clip = opt.step(grads, lr, norm)
        for p in params.values():
            p.grad = None
        step += 1
        secs = time.perf_counter() - t0
        elapsed += secs
        step_tokens = tr["batchSize"] * seq_len
        tokens_seen += step_tokens
        rank_losses.append({"step": step, "local": local_sum / tr["gradAccum"], "global": mean_loss})
        metrics.write(
            {
                "type": "train",
                "step": step,
                "loss": mean_loss,
                "ppl": math.exp(mean_loss),
                "lr": lr,
                "gradNorm": norm,
                "clipScale": clip,
                "tokens": tokens_seen,
                "tokensPerSec": step_tokens / secs,
                "elapsed": elapsed,
                "epoch": sampler.epoch,
            }
        )
        log(f"step {step}/{tr['steps']} loss {mean_loss:.4f} lr {lr:.3e} grad-norm {norm:.3f} {step_tokens / secs:,.0f} tok/s")
        last = step == tr["steps"]
        if (tr["evalEvery"] > 0 and step % tr["evalEvery"] == 0) or last:
            t1 = time.perf_counter()
            r = evaluate(model, eval_tokens, seq_len, eval_bs, tr["evalBatches"], d)
            metrics.write({"type": "eval", "step": step, "split": tf.eval_split, **r, "elapsed": elapsed})
            log(f"eval step {step}: {tf.eval_split} loss {r['loss']:.4f} ppl {r['ppl']:.2f} ({r['tokens']} tokens, {time.perf_counter() - t1:.1f} s)")
            last_eval = r
        if (tr["checkpointEvery"] > 0 and step % tr["checkpointEvery"] == 0) or last:
            path = save()
            log(f"checkpoint step {step}: {path}")

    if a.rank_report:
        checksum = float(sum(p.detach().double().abs().sum() for p in params.values()))
        os.makedirs(os.path.join(run_dir, "ranks"), exist_ok=True)
        with open(os.path.join(run_dir, "ranks", f"rank-{d.rank}.json"), "w", encoding="utf-8") as f:
            json.dump({"rank": d.rank, "world": d.world, "losses": rank_losses, "paramAbsSum": checksum}, f)
    log(f"done: {step} updates; tokens/s {tokens_seen / max(elapsed, 1e-9):,.0f} over {elapsed:.1f} s; run folder {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
