"""GPT-2, DiffEqFormer and the discretised DiffEqFormer as PyTorch modules, with qkvflow's parameter names, shapes
and arithmetic, so that `state_dict()` is a qkvflow checkpoint's tensor set and the same weights give the same
logits, loss and gradients (to float32 round-off) in both engines.

  Linear        weight [in, out] (the GPT-2 / Hugging Face Conv1D layout), y = x·W + b; an optional LoRA adapter
                adds (alpha/r)·(x·A)·B with A [in, r], B [r, out] (names lora_A, lora_B)
  GPT-2         x = drop(wte[ids] + wpe[:T]); block: h = x + drop(attn(ln_1(x))); x = h + drop(mlp(ln_2(h)));
                logits = ln_f(x)·wteᵀ (tied); tanh-GELU; causal attention without dropout; parameters h.{i}.…
  DiffEqFormer  one parallel block whose weights are generated from t by per-module hypernetworks
                h(t) = lin2(silu(lin1(e(t)))), e(t) = [t, sin(1000·t·f_k), cos(1000·t·f_k)], f_k = 10000^(−k/S):
                W(t) = B_W + h(t)·A, b(t) = h(t)·F_b (TemporalLinear: f_W.weight A [d, in, out], f_W.bias B_W
                [in, out], f_b [d, out]); γ(t) = 1 + Γ·h(t), β(t) = B·h(t) (TemporalLayerNorm: gamma, beta [E, d]).
                The paper's Euler scheme ('euler-right-time'): n steps of dt = 1/n, step i evaluating the field at
                t = (i+1)/n on the state before the step, x ← x + dt·(drop(attn(ln_a(x))) + drop(mlp(ln_m(x)))).
  discretized   M parallel layers h.{i}.ln_a / attn / ln_m / mlp with x ← x + dt·(attn(ln_a(x)) + mlp(ln_m(x))),
                e.g. a DiffEqFormer whose weights were generated at t_i = (i+1)/M (`discretize`).

Initialisation follows qkvflow's rules (Linear and token embedding N(0, initStd²), positions N(0, (initStd/2)²),
biases 0, LayerNorms 1/0, GPT-2 residual projections initStd/√(2·nLayer), hypernetwork f_b N(0, 1e-4²), Γ = B = 0),
with PyTorch's generator: the same distributions, not the same numbers.
"""

from __future__ import annotations

import math
import re
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as tcp

from .config import PAPER_EULER, validate_model_config

IGNORE_INDEX = -100
TIME_SCALE = 1000.0
MAX_PERIOD = 10000.0


def torch_dtype(name: str) -> torch.dtype:
    return torch.float64 if name == "float64" else torch.float32


def euler_grid(n: int) -> List[float]:
    """The paper's time grid: t_i = (i+1)/n for i < n."""
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"euler_grid: n = {n}; expected a positive integer number of steps")
    return [(i + 1) / n for i in range(n)]


def time_embedding(ts: Sequence[float], S: int, dtype: torch.dtype, device=None) -> torch.Tensor:
    """e(t) for each t: [n, 2S+1], computed in float64 and then stored in `dtype`."""
    t = torch.tensor(list(ts), dtype=torch.float64).unsqueeze(1)
    f = torch.tensor([math.exp(-math.log(MAX_PERIOD) * i / S) for i in range(S)], dtype=torch.float64)
    a = TIME_SCALE * t * f
    return torch.cat([t, a.sin(), a.cos()], dim=1).to(dtype=dtype, device=device)


def _glob(pattern: str) -> re.Pattern:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$")


def matches_any(name: str, patterns: Sequence[str]) -> bool:
    """Whether `name` matches one of the glob patterns (`*` matches any run of characters, dots included)."""
    return any(_glob(p).match(name) for p in patterns)


class Linear(nn.Module):
    """y = x·W + b with W [in, out]; optional LoRA adapter (see the module comment)."""

    def __init__(self, fan_in: int, fan_out: int, std: float, bias: bool = True):
        super().__init__()
        self.fan_in, self.fan_out = fan_in, fan_out
        self.weight = nn.Parameter(torch.randn(fan_in, fan_out) * std)
        self.bias = nn.Parameter(torch.zeros(fan_out)) if bias else None
        self.lora_scale: Optional[float] = None
        self.lora_merged = False

    def attach_adapter(self, rank: int, alpha: float, init_std: float, merged: bool = False) -> None:
        self.lora_A = nn.Parameter(torch.randn(self.fan_in, rank, dtype=self.weight.dtype) * init_std)
        self.lora_B = nn.Parameter(torch.zeros(rank, self.fan_out, dtype=self.weight.dtype))
        self.lora_scale = alpha / rank
        self.lora_merged = merged

    def effective_weight(self) -> torch.Tensor:
        if self.lora_scale is None or self.lora_merged:
            return self.weight
        return self.weight + (self.lora_A @ self.lora_B) * self.lora_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = linear(x, self.weight, self.bias)
        if self.lora_scale is None or self.lora_merged:
            return y
        return y + linear(linear(x, self.lora_A, None), self.lora_B, None) * self.lora_scale


def linear(x: torch.Tensor, W: torch.Tensor, b: Optional[torch.Tensor]) -> torch.Tensor:
    """x [..., in]·W [in, out] (+ b), as one matmul over the flattened leading axes."""
    x2 = x.reshape(-1, W.shape[0])
    y = x2 @ W
    if b is not None:
        y = y + b
    return y.reshape(*x.shape[:-1], W.shape[1])


class LayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


def causal_attention(x: torch.Tensor, n_head: int, qkv, proj) -> torch.Tensor:
    """softmax(QKᵀ/√D)·V per head with the causal mask; q | k | v head-major in the fused projection."""
    B, T, E = x.shape
    D = E // n_head
    y = qkv(x).view(B, T, 3, n_head, D).permute(2, 0, 3, 1, 4)
    q, k, v = y[0], y[1], y[2]
    s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
    mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    p = s.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return proj((p @ v).transpose(1, 2).reshape(B, T, E))


def mlp(x: torch.Tensor, fc, proj) -> torch.Tensor:
    return proj(F.gelu(fc(x), approximate="tanh"))


class _Ns(nn.Module):
    """A plain container module (for dotted names such as attn.c_attn)."""


class StaticBlock(nn.Module):
    """A block with ordinary weights: GPT-2 (sequential, ln_1 / ln_2) or discretised (parallel, ln_a / ln_m)."""

    def __init__(self, c: Dict, sequential: bool, proj_std: float):
        super().__init__()
        E, std = c["nEmbd"], c["initStd"]
        self.sequential, self.n_head, self.rate = sequential, c["nHead"], c["residPdrop"]
        ln_names = ("ln_1", "ln_2") if sequential else ("ln_a", "ln_m")
        self.ln_names = ln_names
        setattr(self, ln_names[0], LayerNorm(E, c["layerNormEps"]))
        self.attn = _Ns()
        self.attn.c_attn = Linear(E, 3 * E, std)
        self.attn.c_proj = Linear(E, E, proj_std)
        setattr(self, ln_names[1], LayerNorm(E, c["layerNormEps"]))
        self.mlp = _Ns()
        self.mlp.c_fc = Linear(E, 4 * E, std)
        self.mlp.c_proj = Linear(4 * E, E, proj_std)

    def forward(self, x: torch.Tensor, dt: float = 1.0) -> torch.Tensor:
        ln_a, ln_m = getattr(self, self.ln_names[0]), getattr(self, self.ln_names[1])
        drop = self.rate if self.training else 0.0
        a = F.dropout(causal_attention(ln_a(x), self.n_head, self.attn.c_attn, self.attn.c_proj), drop, self.training)
        if self.sequential:
            h = x + a
            return h + F.dropout(mlp(ln_m(h), self.mlp.c_fc, self.mlp.c_proj), drop, self.training)
        m = F.dropout(mlp(ln_m(x), self.mlp.c_fc, self.mlp.c_proj), drop, self.training)
        return x + (a + m) * dt


class Hyper(nn.Module):
    """h = lin2(silu(lin1(e))): (2S+1) → d → d."""

    def __init__(self, width: int, d: int, std: float):
        super().__init__()
        self.d = d
        self.lin1 = Linear(width, d, std)
        self.lin2 = Linear(d, d, std)

    def hyper(self, e: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.silu(self.lin1(e)))


class TemporalLinear(Hyper):
    def __init__(self, width: int, d: int, fan_in: int, fan_out: int, std: float):
        super().__init__(width, d, std)
        self.fan_in, self.fan_out = fan_in, fan_out
        self.f_W = _Ns()
        self.f_W.weight = nn.Parameter(torch.randn(d, fan_in, fan_out) * std)
        self.f_W.bias = nn.Parameter(torch.zeros(fan_in, fan_out))
        self.f_b = nn.Parameter(torch.randn(d, fan_out) * 1e-4)

    def weights_at(self, e: torch.Tensor):
        """W(t) [n, in, out] and b(t) [n, out]."""
        h = self.hyper(e)
        io = self.fan_in * self.fan_out
        W = (h @ self.f_W.weight.reshape(self.d, io) + self.f_W.bias.reshape(io)).reshape(-1, self.fan_in, self.fan_out)
        return W, h @ self.f_b


class TemporalLayerNorm(Hyper):
    def __init__(self, width: int, d: int, dim: int, std: float):
        super().__init__(width, d, std)
        self.gamma = nn.Parameter(torch.zeros(dim, d))
        self.beta = nn.Parameter(torch.zeros(dim, d))

    def params_at(self, e: torch.Tensor):
        h = self.hyper(e)
        return h @ self.gamma.t() + 1, h @ self.beta.t()


class DiffEqFormerBlock(nn.Module):
    def __init__(self, c: Dict):
        super().__init__()
        w, d, E, std = 2 * c["sinusoidalDim"] + 1, c["timeEmbedDim"], c["nEmbd"], c["initStd"]
        self.ln_a = TemporalLayerNorm(w, d, E, std)
        self.attn = _Ns()
        self.attn.c_attn = TemporalLinear(w, d, E, 3 * E, std)
        self.attn.c_proj = TemporalLinear(w, d, E, E, std)
        self.ln_m = TemporalLayerNorm(w, d, E, std)
        self.mlp = _Ns()
        self.mlp.c_fc = TemporalLinear(w, d, E, 4 * E, std)
        self.mlp.c_proj = TemporalLinear(w, d, 4 * E, E, std)

    def weights_at(self, e: torch.Tensor) -> List[Dict[str, torch.Tensor]]:
        """Concrete block weights at each embedded time (one batched generation per module)."""
        parts = {
            "ln_a": self.ln_a.params_at(e),
            "ln_m": self.ln_m.params_at(e),
            "c_attn": self.attn.c_attn.weights_at(e),
            "attn_proj": self.attn.c_proj.weights_at(e),
            "c_fc": self.mlp.c_fc.weights_at(e),
            "mlp_proj": self.mlp.c_proj.weights_at(e),
        }
        return [{k: (v[0][i], v[1][i]) for k, v in parts.items()} for i in range(e.shape[0])]


def _parallel_step(x: torch.Tensor, w: Dict[str, torch.Tensor], c: Dict, dt: float, training: bool) -> torch.Tensor:
    eps, H = c["layerNormEps"], c["nHead"]
    drop = c["residPdrop"] if training else 0.0

    def lin(name):
        W, b = w[name]
        return lambda v: linear(v, W, b)

    ua = F.layer_norm(x, (x.shape[-1],), w["ln_a"][0], w["ln_a"][1], eps)
    a = F.dropout(causal_attention(ua, H, lin("c_attn"), lin("attn_proj")), drop, training)
    um = F.layer_norm(x, (x.shape[-1],), w["ln_m"][0], w["ln_m"][1], eps)
    m = F.dropout(mlp(um, lin("c_fc"), lin("mlp_proj")), drop, training)
    return x + (a + m) * dt


class TransformerLM(nn.Module):
    """Embeddings, final LayerNorm, tied head and loss shared by the three models."""

    def __init__(self, config: Dict):
        super().__init__()
        c = validate_model_config(config)
        self.config = c
        self.wte = _Ns()
        self.wte.weight = nn.Parameter(torch.randn(c["vocabSize"], c["nEmbd"]) * c["initStd"])
        self.wpe = _Ns()
        self.wpe.weight = nn.Parameter(torch.randn(c["blockSize"], c["nEmbd"]) * (c["initStd"] / 2))

    def _finish(self) -> None:
        c = self.config
        self.ln_f = LayerNorm(c["nEmbd"], c["layerNormEps"])
        lora = c.get("lora")
        if lora is not None:
            self._attach_lora(lora)
        self.to(torch_dtype(c["dtype"]))

    def _attach_lora(self, lora: Dict) -> None:
        chosen = [(n, m) for n, m in self.named_modules() if isinstance(m, Linear) and matches_any(n, lora["targets"])]
        if not chosen:
            raise ValueError(f"LoRA targets {lora['targets']} match no Linear layer")
        for _, m in chosen:
            m.attach_adapter(lora["rank"], lora["alpha"], lora["initStd"], lora["merged"])

    def trainable_names(self) -> List[str]:
        """Every parameter, or only the LoRA adapters (plus `lora.trainable`), as qkvflow's trainableNames()."""
        names = [n for n, _ in self.named_parameters()]
        lora = self.config.get("lora")
        if lora is None:
            return names
        return [n for n in names if n.endswith(".lora_A") or n.endswith(".lora_B") or matches_any(n, lora["trainable"])]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        c = self.config
        if ids.dim() != 2:
            raise ValueError(f"embed: inputs have shape {list(ids.shape)}; expected token ids [B, T]")
        T = ids.shape[1]
        if not 1 <= T <= c["blockSize"]:
            raise ValueError(f"embed: sequence length {T} is outside 1..{c['blockSize']} (the model's blockSize)")
        x = self.wte.weight[ids] + self.wpe.weight[:T]
        return F.dropout(x, c["embdPdrop"], self.training) if self.training and c["embdPdrop"] > 0 else x

    def hidden(self, x0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def final(self, ids: torch.Tensor) -> torch.Tensor:
        """ln_f of the final hidden state, [B, T, E]."""
        return self.ln_f(self.hidden(self.embed(ids)))

    def forward(self, ids: torch.Tensor, targets: Optional[torch.Tensor] = None):
        """Logits [B, T, V] (targets None) or the mean cross-entropy over targets ≠ −100."""
        x = self.final(ids)
        logits = x @ self.wte.weight.t()
        if targets is None:
            return logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX)

    def _maybe_checkpoint(self, fn, *args):
        if self.config["gradientCheckpointing"] and torch.is_grad_enabled():
            return tcp.checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)


class Gpt2(TransformerLM):
    def __init__(self, config: Dict):
        super().__init__(config)
        c = self.config
        proj_std = c["initStd"] / math.sqrt(2 * c["nLayer"])
        self.h = nn.ModuleList([StaticBlock(c, True, proj_std) for _ in range(c["nLayer"])])
        self._finish()

    def hidden(self, x0):
        x = x0
        for b in self.h:
            x = self._maybe_checkpoint(b, x)
        return x


class Discretized(TransformerLM):
    def __init__(self, config: Dict):
        super().__init__(config)
        c = self.config
        self.h = nn.ModuleList([StaticBlock(c, False, c["initStd"]) for _ in range(c["nLayer"])])
        self._finish()

    def hidden(self, x0):
        x = x0
        for b in self.h:
            x = self._maybe_checkpoint(lambda v, b=b: b(v, self.config["dt"]), x)
        return x


class DiffEqFormer(TransformerLM):
    def __init__(self, config: Dict):
        super().__init__(config)
        c = self.config
        method = c["solver"]["method"]
        if method != PAPER_EULER:
            raise ValueError(
                f"DiffEqFormer: solver.method '{method}' is not available in qkvflow_torch; expected '{PAPER_EULER}' "
                "(the paper's scheme; other solvers run in qkvflow itself)"
            )
        self.block = DiffEqFormerBlock(c)
        self._finish()

    def steps(self) -> int:
        return self.config["solver"].get("steps") or self.config["nLayer"]

    def weights_at(self, ts: Sequence[float]) -> List[Dict[str, torch.Tensor]]:
        e = time_embedding(ts, self.config["sinusoidalDim"], self.wte.weight.dtype, self.wte.weight.device)
        return self.block.weights_at(e)

    def hidden(self, x0):
        n = self.steps()
        dt = 1.0 / n
        ws = self.weights_at(euler_grid(n))
        x = x0
        for w in ws:
            x = self._maybe_checkpoint(lambda v, w=w: _parallel_step(v, w, self.config, dt, self.training), x)
        return x


def create_model(config: Dict) -> TransformerLM:
    """A model of the configuration's kind with random parameters (torch's current generator)."""
    c = validate_model_config(config)
    return {"gpt2": Gpt2, "diffeqformer": DiffEqFormer, "discretized": Discretized}[c["kind"]](c)


def load_state(model: TransformerLM, state: Dict[str, torch.Tensor]) -> None:
    """Loads a qkvflow state dict (every name must match; floats are converted to the model's dtype)."""
    own = dict(model.named_parameters())
    missing = [n for n in own if n not in state]
    extra = [n for n in state if n not in own]
    if missing or extra:
        raise ValueError(
            f"load_state: the checkpoint does not fit the model (missing: {', '.join(missing[:8]) or 'none'}; "
            f"unexpected: {', '.join(extra[:8]) or 'none'})"
        )
    with torch.no_grad():
        for n, p in own.items():
            t = state[n]
            if tuple(t.shape) != tuple(p.shape):
                raise ValueError(f"load_state: '{n}' has shape {list(t.shape)} in the checkpoint; the model has {list(p.shape)}")
            p.copy_(t.to(dtype=p.dtype, device=p.device))


def state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The parameters by qkvflow name (unwrapping DDP / FSDP's `module.` prefix)."""
    m = model.module if hasattr(model, "module") else model
    return {n: p.detach() for n, p in m.named_parameters()}


def discretize(model: DiffEqFormer, M: int) -> Discretized:
    """The M-layer discretisation: layer i gets the weights generated at t_i = (i+1)/M and dt = 1/M."""
    c = model.config
    dc = {k: c[k] for k in ("vocabSize", "blockSize", "nEmbd", "nHead", "embdPdrop", "residPdrop", "layerNormEps", "initStd", "dtype", "gradientCheckpointing")}
    out = Discretized({"kind": "discretized", **dc, "nLayer": M, "dt": 1 / M})
    with torch.no_grad():
        ws = model.weights_at(euler_grid(M))
        sd = {n: model.state_dict()[n] for n in ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias")}
        for i, w in enumerate(ws):
            p = f"h.{i}."
            sd.update(
                {
                    p + "ln_a.weight": w["ln_a"][0],
                    p + "ln_a.bias": w["ln_a"][1],
                    p + "attn.c_attn.weight": w["c_attn"][0],
                    p + "attn.c_attn.bias": w["c_attn"][1],
                    p + "attn.c_proj.weight": w["attn_proj"][0],
                    p + "attn.c_proj.bias": w["attn_proj"][1],
                    p + "ln_m.weight": w["ln_m"][0],
                    p + "ln_m.bias": w["ln_m"][1],
                    p + "mlp.c_fc.weight": w["c_fc"][0],
                    p + "mlp.c_fc.bias": w["c_fc"][1],
                    p + "mlp.c_proj.weight": w["mlp_proj"][0],
                    p + "mlp.c_proj.bias": w["mlp_proj"][1],
                }
            )
    load_state(out, sd)
    return out


__all__ = [
    "IGNORE_INDEX",
    "Gpt2",
    "DiffEqFormer",
    "Discretized",
    "TransformerLM",
    "create_model",
    "load_state",
    "state_dict",
    "discretize",
    "euler_grid",
    "time_embedding",
    "matches_any",
]
