"""Forward and backward pass of a model file on given tokens, for comparing the two engines.

    python3 -m qkvflow_torch.equiv --model MODEL.safetensors --batch BATCH.safetensors --out OUT.safetensors
    python3 -m qkvflow_torch.equiv --manifest JOBS.json     (a JSON list of {"model", "batch", "out"}: one process)

BATCH holds int32 `inputs` [B, T] and `targets` [B, T]; OUT gets `logits` [B, T, V], `loss` [] and `grad.<name>`
for every trainable parameter, in the model's dtype, computed by the PyTorch twin in eval mode (no dropout).
With `--discretize M` the DiffEqFormer of MODEL is first discretised to M layers (the output then describes the
discretised model, whose parameter names are h.{i}.…).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from . import safetensors_io as st
from .checkpoint import read_model_file
from .models import create_model, discretize, load_state


def run(model_path: str, batch_path: str, out_path: str, discretize_to: int = 0) -> None:
    state, config = read_model_file(model_path)
    model = create_model(config)
    load_state(model, state)
    if discretize_to:
        model = discretize(model, discretize_to)
    model.eval()
    batch, _ = st.read(batch_path)
    x, y = batch["inputs"].long(), batch["targets"].long()
    with torch.no_grad():
        logits = model(x)
    names = model.trainable_names()
    params = dict(model.named_parameters())
    for n, p in params.items():
        p.requires_grad_(n in names)
    loss = model(x, y)
    grads = torch.autograd.grad(loss, [params[n] for n in names])
    out = {"logits": logits, "loss": loss.detach().reshape(())}
    out.update({f"grad.{n}": g for n, g in zip(names, grads)})
    st.write(out_path, out, {"config": str(model.config)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m qkvflow_torch.equiv", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--batch")
    ap.add_argument("--out")
    ap.add_argument("--discretize", type=int, default=0)
    ap.add_argument("--manifest", help="JSON list of jobs {model, batch, out[, discretize]}")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.manifest:
        with open(a.manifest, encoding="utf-8") as f:
            jobs = json.load(f)
        for j in jobs:
            run(j["model"], j["batch"], j["out"], int(j.get("discretize", 0)))
        return 0
    if not (a.model and a.batch and a.out):
        ap.error("give --model, --batch and --out, or --manifest")
    run(a.model, a.batch, a.out, a.discretize)
    return 0


if __name__ == "__main__":
    sys.exit(main())
