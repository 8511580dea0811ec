"""AdamW, clipping, decay masks and the learning-rate schedule of qkvflow's trainer, and its optimiser-state file.

Update (optax's clip_by_global_norm → scale_by_adam → add_decayed_weights(mask) → scale(−lr), as qkvflow):
  n = ‖g‖₂ over all trainable tensors (float64 sum);  g ← g·c/n when n ≥ c
  t = count + 1;  m ← β1 m + (1 − β1) g;  v ← β2 v + ((1 − β2) g) g
  p ← p − lr_t · ( (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε) + λ·[name matches a decay pattern]·p )
computed in float64 and rounded once to the parameter's dtype, the moments stored in the parameter's dtype, as
qkvflow does on its CPU backend. Decay patterns are regular expressions matched against the whole dotted name.

Schedule (step = number of updates already applied): W = floor(warmupRatio·steps), D = steps − W;
  step < W: lr·step/W;  else lr·((1 − α)·shape(min(step − W, D)/D) + α), shape = ½(1 + cos πx) (cosine),
  1 − x (linear) or 1 (constant), α = minLrRatio.

State file (optimizer.safetensors): m.<name>, v.<name>; metadata format qkvflow-adamw-v1, count, hyper (JSON of
beta1, beta2, eps, weightDecay, decayPatterns, maxGradNorm) and names (JSON list).
"""

from __future__ import annotations

import json
import math
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .checkpoint import js_json

STATE_FORMAT = "qkvflow-adamw-v1"


def make_schedule(lr: float, total_steps: int, warmup_ratio: float = 0.01, min_lr_ratio: float = 0.1, kind: str = "cosine"):
    if kind not in ("cosine", "linear", "constant"):
        raise ValueError(f"make_schedule: kind '{kind}' is unknown; expected one of cosine, linear, constant")
    W = math.floor(warmup_ratio * total_steps)
    D = total_steps - W

    def at(step: int) -> float:
        if step < W:
            return lr * step / W
        if kind == "constant" or D <= 0:
            return lr
        frac = min(step - W, D) / D
        shape = 0.5 * (1 + math.cos(math.pi * frac)) if kind == "cosine" else 1 - frac
        return lr * ((1 - min_lr_ratio) * shape + min_lr_ratio)

    return at


def clip_scale(norm: float, max_norm: Optional[float]) -> float:
    if not max_norm:
        return 1.0
    return 1.0 if norm < max_norm else max_norm / norm


def global_norm(grads: Sequence[torch.Tensor]) -> float:
    """√Σ g² over all gradients, summed in float64."""
    if not grads:
        return 0.0
    s = torch.zeros((), dtype=torch.float64, device=grads[0].device)
    for g in grads:
        s = s + g.detach().double().pow(2).sum()
    return math.sqrt(float(s))


class AdamW:
    """AdamW over named parameters (see the module comment)."""

    def __init__(
        self,
        params: Dict[str, torch.nn.Parameter],
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decay_patterns: Sequence[str] = (".*",),
        max_grad_norm: Optional[float] = None,
    ):
        self.params = dict(params)
        self.hyper = {
            "beta1": beta1,
            "beta2": beta2,
            "eps": eps,
            "weightDecay": weight_decay,
            "decayPatterns": list(decay_patterns),
            "maxGradNorm": None if not max_grad_norm else max_grad_norm,
        }
        self._decay = [re.compile(f"^(?:{p})$") for p in decay_patterns]
        self.count = 0
        self._buffers: Optional[List[torch.Tensor]] = None
        self.m = {n: torch.zeros_like(p, memory_format=torch.contiguous_format) for n, p in self.params.items()}
        self.v = {n: torch.zeros_like(p, memory_format=torch.contiguous_format) for n, p in self.params.items()}

    def _work(self, n: int, device) -> List[torch.Tensor]:
        if self._buffers is None or self._buffers[0].numel() < n or self._buffers[0].device != torch.device(device):
            self._buffers = [torch.empty(n, dtype=torch.float64, device=device) for _ in range(4)]
        return self._buffers

    def global_norm(self, grads: Dict[str, torch.Tensor]) -> float:
        """√Σ g² over the gradients, in float64 (through a reused work buffer)."""
        if not grads:
            return 0.0
        first = next(iter(grads.values()))
        buf = self._work(max(g.numel() for g in grads.values()), first.device)[0]
        s = torch.zeros((), dtype=torch.float64, device=first.device)
        for g in grads.values():
            x = buf[: g.numel()]
            x.copy_(g.reshape(-1))
            s += torch.dot(x, x)
        return math.sqrt(float(s))

    def decays(self, name: str) -> bool:
        return any(r.match(name) for r in self._decay)

    @torch.no_grad()
    def step(self, grads: Dict[str, torch.Tensor], lr: float, grad_norm: Optional[float] = None) -> Tuple[float, float]:
        """One update of every parameter with a gradient; returns (gradient norm before clipping, clip factor)."""
        norm = self.global_norm(grads) if grad_norm is None else grad_norm
        scale = clip_scale(norm, self.hyper["maxGradNorm"])
        b1, b2, eps, wd = self.hyper["beta1"], self.hyper["beta2"], self.hyper["eps"], self.hyper["weightDecay"]
        t = self.count + 1
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        work = self._work(max(g.numel() for g in grads.values()), next(iter(grads.values())).device) if grads else []
        for n, g in grads.items():
            p = self.params[n]
            k = g.numel()
            # four float64 work buffers reused for every parameter: each line is one operation of the formula,
            # rounded once in float64, so the result is that of the formula evaluated left to right in float64
            gw, m1, v1, tmp = (w[:k].view(g.shape) for w in work)
            gw.copy_(g)
            if scale != 1:
                gw.mul_(scale)
            m1.copy_(self.m[n]).mul_(b1)
            torch.mul(gw, 1 - b1, out=tmp)
            m1.add_(tmp)  # m1 = m·β1 + g·(1 − β1)
            v1.copy_(self.v[n]).mul_(b2)
            torch.mul(gw, 1 - b2, out=tmp)
            tmp.mul_(gw)
            v1.add_(tmp)  # v1 = v·β2 + (g·(1 − β2))·g
            self.m[n].copy_(m1)
            self.v[n].copy_(v1)
            m1.div_(bc1)
            v1.div_(bc2).sqrt_().add_(eps)
            u = m1.div_(v1)  # u = m1/bc1 / (√(v1/bc2) + ε)
            lam = wd if self.decays(n) else 0.0
            if lam != 0:
                tmp.copy_(p).mul_(lam)
                u.add_(tmp)
            u.mul_(lr)
            tmp.copy_(p).sub_(u)
            p.copy_(tmp)
        self.count = t
        return norm, scale

    def export_state(self) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
        tensors: Dict[str, torch.Tensor] = {}
        for n in self.params:
            tensors[f"m.{n}"] = self.m[n].detach().cpu()
            tensors[f"v.{n}"] = self.v[n].detach().cpu()
        meta = {"format": STATE_FORMAT, "count": str(self.count), "hyper": js_json(self.hyper), "names": js_json(list(self.params))}
        return tensors, meta

    def import_state(self, tensors: Dict[str, torch.Tensor], meta: Dict[str, str]) -> None:
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"AdamW.import_state: metadata format is {meta.get('format')!r}; expected '{STATE_FORMAT}'")
        count = int(meta.get("count", "-1"))
        if count < 0:
            raise ValueError(f"AdamW.import_state: metadata count is {meta.get('count')!r}; expected a non-negative integer")
        names: List[str] = json.loads(meta.get("names", "null") or "null")
        missing = [n for n in self.params if n not in names]
        extra = [n for n in names if n not in self.params]
        if missing or extra:
            raise ValueError(
                f"AdamW.import_state: state is for a different parameter set (missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'})"
            )
        for n, p in self.params.items():
            m, v = tensors.get(f"m.{n}"), tensors.get(f"v.{n}")
            if m is None or v is None:
                raise ValueError(f"AdamW.import_state: state lacks m.{n} or v.{n}")
            if tuple(m.shape) != tuple(p.shape) or m.dtype != p.dtype:
                raise ValueError(f"AdamW.import_state: m.{n} is {m.dtype} {list(m.shape)}; the parameter is {p.dtype} {list(p.shape)}")
            self.m[n] = m.to(p.device).clone()
            self.v[n] = v.to(p.device).clone()
        self.count = count
