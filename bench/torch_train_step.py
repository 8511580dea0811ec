#!/usr/bin/env python3
"""PyTorch reference for bench/train-step.bench.ts: training steps of GPT-2 or DiffEqFormer on CPU.

The same two models as @qkvflow/models, written from the equations in plain PyTorch (no qkvflow code), with the
same shapes, the same parameter names and counts, the same dropout, AdamW (decoupled weight decay on the
parameters whose names match the decay patterns) and global gradient-norm clipping:

  GPT-2         x = drop(wte[ids] + wpe[:T]); per block x += drop(attn(ln_1(x))); x += drop(mlp(ln_2(x)));
                logits = ln_f(x)·wteᵀ (tied); tanh-GELU; attention without dropout.
  DiffEqFormer  one parallel block whose weights are generated from the time: e(t) = [t, sin(1000·t·f_k),
                cos(1000·t·f_k)], f_k = 10000^(−k/S); per module h(t) = lin2(silu(lin1(e(t)))); a linear layer
                has W(t) = B_W + h(t)·A (A [d, in, out]), b(t) = h(t)·F_b; a LayerNorm has γ(t) = 1 + Γ·h(t),
                β(t) = B·h(t). L Euler steps of dt = 1/L at t_i = (i+1)/L:
                x += dt·(drop(attn(ln_a(x))) + drop(mlp(ln_m(x)))), the weights of all L times generated in one
                batched product per module; then ln_f and the tied head as GPT-2.

Before any timing the script checks this process's float32 GEMMs against a float64 reference computed without the
BLAS (blas_check); a configuration that computes wrong products exits with status 3 and is not timed.

One step = sample a batch of random token ids, forward, mean cross-entropy, backward, clip, AdamW (the learning
rate set from the warmup + decay schedule). Token values do not change the cost, so no data set is read.

Prints one JSON object: the step times, their median after the warm-up steps, tokens/s, the parameter count
and every parameter's name and size (for the bench to compare with qkvflow's).

  /usr/bin/python3 bench/torch_train_step.py --model diffeqformer --embd 128 --layers 4 --heads 4 --d-emb 20 \
      --sinusoids 16 --vocab 50257 --seq 128 --batch 16 --dropout 0.1 --threads 2 --warmup 2 --steps 6
"""
import argparse
import json
import math
import os
import re
import statistics
import sys
import time


def _threads_from_argv(default=2):
    for i, x in enumerate(sys.argv):
        if x == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if x.startswith("--threads="):
            return x.split("=", 1)[1]
    return str(default)


# The BLAS (Debian's torch calls whichever libblas.so.3 is installed, e.g. OpenBLAS) reads its thread count
# when it is loaded, before torch.set_num_threads can apply.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, _threads_from_argv())

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def causal_attention(x, n_head, qkv, proj):
    B, T, E = x.shape
    D = E // n_head
    q, k, v = qkv(x).split(E, dim=2)
    q = q.view(B, T, n_head, D).transpose(1, 2)
    k = k.view(B, T, n_head, D).transpose(1, 2)
    v = v.view(B, T, n_head, D).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    y = (att @ v).transpose(1, 2).reshape(B, T, E)
    return proj(y)


class Embeddings(nn.Module):
    """wte, wpe, ln_f and the tied head shared by both models."""

    def __init__(self, a):
        super().__init__()
        self.wte = nn.Embedding(a.vocab, a.embd)
        self.wpe = nn.Embedding(a.block, a.embd)
        self.ln_f = nn.LayerNorm(a.embd, eps=1e-5)
        self.drop = nn.Dropout(a.dropout)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)

    def embed(self, ids):
        T = ids.shape[1]
        return self.drop(self.wte(ids) + self.wpe.weight[:T])

    def loss(self, x, targets):
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


class Gpt2Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        E = a.embd
        self.n_head = a.heads
        self.ln_1 = nn.LayerNorm(E, eps=1e-5)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(E, 3 * E)
        self.attn.c_proj = nn.Linear(E, E)
        self.ln_2 = nn.LayerNorm(E, eps=1e-5)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(E, 4 * E)
        self.mlp.c_proj = nn.Linear(4 * E, E)
        self.drop = nn.Dropout(a.dropout)
        for lin, std in ((self.attn.c_attn, 0.02), (self.attn.c_proj, 0.02 / math.sqrt(2 * a.layers)),
                         (self.mlp.c_fc, 0.02), (self.mlp.c_proj, 0.02 / math.sqrt(2 * a.layers))):
            nn.init.normal_(lin.weight, std=std)
            nn.init.zeros_(lin.bias)

    def forward(self, x):
        x = x + self.drop(causal_attention(self.ln_1(x), self.n_head, self.attn.c_attn, self.attn.c_proj))
        h = F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh")
        return x + self.drop(self.mlp.c_proj(h))


class Gpt2(Embeddings):
    def __init__(self, a):
        super().__init__(a)
        self.h = nn.ModuleList([Gpt2Block(a) for _ in range(a.layers)])

    def forward(self, ids, targets):
        x = self.embed(ids)
        for b in self.h:
            x = b(x)
        return self.loss(x, targets)


class Hyper(nn.Module):
    """h(e) = lin2(silu(lin1(e))): (2S+1) → d → d."""

    def __init__(self, width, d):
        super().__init__()
        self.lin1 = nn.Linear(width, d)
        self.lin2 = nn.Linear(d, d)
        for lin in (self.lin1, self.lin2):
            nn.init.normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)

    def hyper(self, e):
        return self.lin2(F.silu(self.lin1(e)))


class TemporalLinear(Hyper):
    """W(t) = B_W + h(t)·A, b(t) = h(t)·F_b; parameters lin1, lin2, f_W.weight A [d, in, out], f_W.bias B_W [in, out], f_b [d, out]."""

    def __init__(self, width, d, fan_in, fan_out):
        super().__init__(width, d)
        self.fan_in, self.fan_out, self.d = fan_in, fan_out, d
        self.f_W = nn.Module()
        self.f_W.weight = nn.Parameter(torch.randn(d, fan_in, fan_out) * 0.02)
        self.f_W.bias = nn.Parameter(torch.zeros(fan_in, fan_out))
        self.f_b = nn.Parameter(torch.randn(d, fan_out) * 1e-4)

    def weights_at(self, e):
        h = self.hyper(e)  # [n, d]
        n, io = e.shape[0], self.fan_in * self.fan_out
        W = torch.addmm(self.f_W.bias.view(1, io), h, self.f_W.weight.view(self.d, io)).view(n, self.fan_in, self.fan_out)
        return W, h @ self.f_b


class TemporalLayerNorm(Hyper):
    """γ(t) = 1 + Γ·h(t), β(t) = B·h(t); parameters lin1, lin2, gamma Γ [E, d], beta B [E, d]."""

    def __init__(self, width, d, dim):
        super().__init__(width, d)
        self.gamma = nn.Parameter(torch.zeros(dim, d))
        self.beta = nn.Parameter(torch.zeros(dim, d))

    def params_at(self, e):
        h = self.hyper(e)
        return 1 + h @ self.gamma.t(), h @ self.beta.t()


def time_embedding(ts, S):
    t = torch.tensor(ts, dtype=torch.float64).unsqueeze(1)
    f = torch.exp(-math.log(10000.0) * torch.arange(S, dtype=torch.float64) / S)
    a = 1000.0 * t * f
    return torch.cat([t, a.sin(), a.cos()], dim=1).float()


def linear_rows(x, W, b):
    """x [B, T, in] · W [in, out] + b [out]."""
    B, T, _ = x.shape
    return torch.addmm(b, x.reshape(B * T, -1), W).view(B, T, -1)


class DiffEqFormer(Embeddings):
    def __init__(self, a):
        super().__init__(a)
        E, w, d = a.embd, 2 * a.sinusoids + 1, a.d_emb
        self.a = a
        self.block = nn.Module()
        self.block.ln_a = TemporalLayerNorm(w, d, E)
        self.block.attn = nn.Module()
        self.block.attn.c_attn = TemporalLinear(w, d, E, 3 * E)
        self.block.attn.c_proj = TemporalLinear(w, d, E, E)
        self.block.ln_m = TemporalLayerNorm(w, d, E)
        self.block.mlp = nn.Module()
        self.block.mlp.c_fc = TemporalLinear(w, d, E, 4 * E)
        self.block.mlp.c_proj = TemporalLinear(w, d, 4 * E, E)
        self.register_buffer("e", time_embedding([(i + 1) / a.layers for i in range(a.layers)], a.sinusoids), persistent=False)

    def forward(self, ids, targets):
        a, blk, E = self.a, self.block, self.a.embd
        lna_s, lna_b = blk.ln_a.params_at(self.e)
        lnm_s, lnm_b = blk.ln_m.params_at(self.e)
        qkv_W, qkv_b = blk.attn.c_attn.weights_at(self.e)
        ap_W, ap_b = blk.attn.c_proj.weights_at(self.e)
        fc_W, fc_b = blk.mlp.c_fc.weights_at(self.e)
        mp_W, mp_b = blk.mlp.c_proj.weights_at(self.e)
        dt = 1.0 / a.layers
        x = self.embed(ids)
        for i in range(a.layers):
            xa = F.layer_norm(x, (E,), lna_s[i], lna_b[i], 1e-5)
            att = causal_attention(xa, a.heads, lambda v: linear_rows(v, qkv_W[i], qkv_b[i]), lambda v: linear_rows(v, ap_W[i], ap_b[i]))
            xm = F.layer_norm(x, (E,), lnm_s[i], lnm_b[i], 1e-5)
            mlp = linear_rows(F.gelu(linear_rows(xm, fc_W[i], fc_b[i]), approximate="tanh"), mp_W[i], mp_b[i])
            x = x + dt * (self.drop(att) + self.drop(mlp))
        return self.loss(x, targets)


def blas_library():
    """The BLAS shared library loaded in this process (torch.__config__ only names the one it was built against)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower() and line.split()[-1].startswith("/")}
    except OSError:
        return None
    names = sorted({os.path.basename(os.path.realpath(x)) for x in libs})
    return next((n for n in names if "openblas" in n), ", ".join(names) or None)


def blas_check(threads):
    """Float32 GEMMs of this process's BLAS against a float64 reference that does not call the BLAS.

    Some OpenBLAS builds pick a kernel for the processor that computes wrong results (or crashes) on it, which is
    why environments set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; the bench runs this script with and without them
    and keeps a configuration only when this check passes. The shapes cover the model's products: odd sizes (the
    edge kernels), every transpose variant, addmm with a bias, and a batched product. The reference is a
    sum of float64 outer products (no dgemm: a wrong BLAS kernel could break sgemm and dgemm alike).
    The error of each entry must stay within K·2⁻²⁴·(|A|·|B|) (the float32 summation bound, K the inner size);
    a wrong kernel (garbage, zeros, a skipped panel) is off by the size of the entry itself.
    Returns (ok, worst ratio error / bound, description of the worst case).
    """
    g = torch.Generator().manual_seed(1234)
    u = 2.0 ** -24
    worst, where = 0.0, ""

    def ref(a, b):
        a, b = a.double(), b.double()
        out = torch.zeros(*a.shape[:-1], b.shape[-1], dtype=torch.float64)
        for j in range(a.shape[-1]):
            out += a[..., :, j : j + 1] * b[..., j : j + 1, :]
        return out

    def compare(name, got, a, b, bias=None, refs=None):
        nonlocal worst, where
        exact, mag = refs if refs is not None else (ref(a, b), ref(a.abs(), b.abs()))
        if bias is not None:
            exact, mag = exact + bias.double(), mag + bias.double().abs()
        r = ((got.double() - exact).abs() / (a.shape[-1] * u * mag + 1e-30)).max().item()
        if not math.isfinite(r) or r > worst:
            worst, where = (r if math.isfinite(r) else float("inf")), name
        return exact, mag

    cases = [(67, 129, 515), (256, 128, 384), (128, 512, 128), (64, 128, 4099), (5, 3, 7), (4, 20, 61440), (512, 128, 131)]
    for m, k, n in cases:
        a = torch.randn(m, k, generator=g)
        b = torch.randn(k, n, generator=g)
        refs = compare(f"{m}x{k} @ {k}x{n}", a @ b, a, b)
        at, bt = a.t().contiguous(), b.t().contiguous()
        compare(f"({k}x{m})^T @ {k}x{n}", at.t() @ b, a, b, refs=refs)
        compare(f"{m}x{k} @ ({n}x{k})^T", a @ bt.t(), a, b, refs=refs)
        compare(f"({k}x{m})^T @ ({n}x{k})^T", at.t() @ bt.t(), a, b, refs=refs)
        bias = torch.randn(n, generator=g)
        compare(f"addmm {m}x{k} @ {k}x{n} + bias", torch.addmm(bias, a, b), a, b, bias, refs=refs)
    a = torch.randn(16, 128, 32, generator=g)
    b = torch.randn(16, 32, 128, generator=g)
    compare("bmm 16x128x32 @ 16x32x128", a @ b, a, b)
    c = torch.randn(16, 128, 128, generator=g)
    compare("bmm 16x128x128 @ 16x128x32", c @ a, c, a)
    return worst <= 1.0, worst, where


def lr_at(step, a):
    """Linear warmup from 0, then cosine / linear decay to min_lr_ratio·lr or a constant (as the trainer's schedule)."""
    warm = math.floor(a.warmup_ratio * a.total_steps)
    if step < warm:
        return a.lr * step / warm
    decay = a.total_steps - warm
    if a.schedule == "constant" or decay <= 0:
        return a.lr
    p = min(step - warm, decay) / decay
    shape = 0.5 * (1 + math.cos(math.pi * p)) if a.schedule == "cosine" else 1 - p
    return a.lr * (a.min_lr_ratio + (1 - a.min_lr_ratio) * shape)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["gpt2", "diffeqformer"], required=True)
    p.add_argument("--embd", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d-emb", dest="d_emb", type=int, default=20)
    p.add_argument("--sinusoids", type=int, default=16)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--block", type=int, default=None, help="learned positions (default: --seq)")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--weight-decay", dest="weight_decay", type=float, default=0.1)
    p.add_argument("--decay", action="append", default=None, help="regular expression (whole-name match) of a parameter that decays; repeatable")
    p.add_argument("--max-grad-norm", dest="max_grad_norm", type=float, default=1.0, help="0: no clipping")
    p.add_argument("--warmup-ratio", dest="warmup_ratio", type=float, default=0.1)
    p.add_argument("--min-lr-ratio", dest="min_lr_ratio", type=float, default=0.1)
    p.add_argument("--schedule", choices=["cosine", "linear", "constant"], default="cosine")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--steps", type=int, default=6, help="timed steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check-only", dest="check_only", action="store_true", help="run the BLAS correctness check alone")
    a = p.parse_args()
    if a.block is None:
        a.block = a.seq
    if a.seq > a.block:
        sys.exit(f"torch_train_step: --seq {a.seq} exceeds --block {a.block}")
    if a.embd % a.heads != 0:
        sys.exit(f"torch_train_step: --embd {a.embd} is not divisible by --heads {a.heads}")
    if a.steps < 1 or a.warmup < 0:
        sys.exit("torch_train_step: expected --steps >= 1 and --warmup >= 0")
    a.total_steps = a.warmup + a.steps

    torch.set_num_threads(a.threads)
    ok, worst, where = blas_check(a.threads)
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    if not ok:
        sys.stderr.write(
            f"torch_train_step: the BLAS computes wrong float32 products in this configuration ({json.dumps(env)}): "
            f"{where} is off by {worst:.3g}× the float32 round-off bound; refusing to time it\n")
        sys.exit(3)
    if a.check_only:
        print(json.dumps({"blas": blas_library(), "blasEnv": env, "blasCheck": {"ok": ok, "worstOfBound": worst, "worstCase": where}}))
        return
    torch.manual_seed(a.seed)
    model = (Gpt2 if a.model == "gpt2" else DiffEqFormer)(a)
    model.train()
    named = list(model.named_parameters())
    patterns = [re.compile(s) for s in (a.decay or [])]
    decays = lambda n: any(r.fullmatch(n) for r in patterns)
    groups = [
        {"params": [t for n, t in named if decays(n)], "weight_decay": a.weight_decay},
        {"params": [t for n, t in named if not decays(n)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    params = [t for _, t in named]

    times, losses = [], []
    for step in range(a.total_steps):
        t0 = time.perf_counter()
        ids = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a)
        opt.zero_grad(set_to_none=True)
        loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        if a.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, a.max_grad_norm)
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t0)

    timed = times[a.warmup:]
    median = statistics.median(timed)
    print(json.dumps({
        "model": a.model,
        "torch": torch.__version__,
        "blas": blas_library(),
        "threads": torch.get_num_threads(),
        "blasEnv": env,
        "blasCheck": {"ok": ok, "worstOfBound": worst, "worstCase": where},
        "batch": a.batch,
        "seq": a.seq,
        "parameters": sum(t.numel() for _, t in named),
        "parameterSizes": {n: t.numel() for n, t in named},
        "decayed": sum(t.numel() for n, t in named if decays(n)),
        "warmupSteps": a.warmup,
        "stepSeconds": times,
        "medianStepSeconds": median,
        "tokensPerSecond": a.batch * a.seq / median,
        "losses": losses,
    }))


if __name__ == "__main__":
    main()
