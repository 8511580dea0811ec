import { record } from "../autodiff/engine.js";
import { bernoulli, type Key } from "../random.js";
import { fmt, normAxis } from "../shape.js";
import { Tensor } from "../tensor.js";
import { arange } from "./creation.js";
import { add, div, eq, exp, ge, mul, ne, rsqrt, sub, where } from "./elementwise.js";
import { mean, sum, variance } from "./reduce.js";
import { cast, expandDims, reshape, transpose } from "./shape-ops.js";
import { requireFloat, tracked, wrap } from "./util.js";

function lastAxisOp(x: Tensor, axis: number, f: (v: Tensor) => Tensor): Tensor {
  const a = normAxis("softmax", axis, x.rank);
  if (a === x.rank - 1) return f(x);
  const perm = Array.from({ length: x.rank }, (_, i) => i);
  perm[a] = x.rank - 1;
  perm[x.rank - 1] = a;
  return transpose(f(transpose(x, perm)), perm);
}

function softmaxLast(x: Tensor): Tensor {
  const y = wrap(x._backend.softmax(x.info, false), x.shape, x.dtype, x);
  const ax = x.rank - 1;
  return record(y, [x], {
    name: "softmax",
    vjp: (g) => [mul(y, sub(g, sum(mul(g, y), ax, { keepdims: true })))],
    jvp: ([t]) => (t ? mul(y, sub(t, sum(mul(t, y), ax, { keepdims: true }))) : null),
  });
}

function logSoftmaxLast(x: Tensor): Tensor {
  const y = wrap(x._backend.softmax(x.info, true), x.shape, x.dtype, x);
  const ax = x.rank - 1;
  return record(y, [x], {
    name: "logSoftmax",
    vjp: (g) => [sub(g, mul(exp(y), sum(g, ax, { keepdims: true })))],
    jvp: ([t]) => (t ? sub(t, sum(mul(exp(y), t), ax, { keepdims: true })) : null),
  });
}

/** Softmax along an axis (default last), stable for large magnitudes. */
export function softmax(x: Tensor, axis = -1): Tensor {
  requireFloat("softmax", x);
  if (x.rank === 0) throw new Error("softmax: got a scalar; expected rank >= 1");
  return lastAxisOp(x, axis, softmaxLast);
}

/** Log-softmax along an axis (default last), stable for large magnitudes. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  requireFloat("logSoftmax", x);
  if (x.rank === 0) throw new Error("logSoftmax: got a scalar; expected rank >= 1");
  return lastAxisOp(x, axis, logSoftmaxLast);
}

/** One-hot encoding of int32 indices as float rows of length n (out-of-range indices give zero rows). */
export function oneHot(indices: Tensor, n: number, dtype: "float32" | "float64" = "float32"): Tensor {
  if (indices.dtype !== "int32") throw new Error(`oneHot: indices have dtype ${indices.dtype}; expected int32`);
  const classes = arange(0, n, 1, "int32");
  return cast(eq(expandDims(indices, -1), classes), dtype);
}

/** Rows of valid (non-ignored) targets as a float mask. */
function validMask(targets: Tensor, ignoreIndex: number, dtype: "float32" | "float64"): Tensor {
  return cast(ne(targets, ignoreIndex), dtype);
}

function ceGradRaw(logits: Tensor, targets: Tensor, lse: Tensor, g: Tensor, ignoreIndex: number): Tensor {
  const y = wrap(logits._backend.crossEntropyBackward(logits.info, targets.info, lse.info, g.info, ignoreIndex), logits.shape, logits.dtype, logits);
  const C = logits.shape[1];
  const dt = logits.dtype as "float32" | "float64";
  const parts = () => {
    const s = softmaxLast(logits);
    const valid = expandDims(validMask(targets, ignoreIndex, dt), 1);
    const gv = mul(expandDims(g, 1), valid);
    return { s, valid, gv, diff: mul(sub(s, oneHot(targets, C, dt)), valid) };
  };
  return record(y, [logits, g], {
    name: "crossEntropyGrad",
    vjp: (u) => {
      const { s, gv, diff } = parts();
      const dl = tracked(logits) ? mul(gv, mul(s, sub(u, sum(mul(u, s), 1, { keepdims: true })))) : null;
      const dg = tracked(g) ? sum(mul(u, diff), 1) : null;
      return [dl, dg];
    },
    jvp: ([tl, tg]) => {
      const { s, gv, diff } = parts();
      const a = tl ? mul(gv, mul(s, sub(tl, sum(mul(tl, s), 1, { keepdims: true })))) : null;
      const b = tg ? mul(expandDims(tg, 1), diff) : null;
      return a && b ? add(a, b) : (a ?? b);
    },
  });
}

/** Per-row negative log-likelihood of int32 targets under logits [N, C]; ignored rows give 0. */
export function softmaxCrossEntropy(logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor {
  requireFloat("crossEntropy", logits);
  if (logits.rank !== 2 || targets.rank !== 1 || targets.shape[0] !== logits.shape[0]) {
    throw new Error(`crossEntropy: logits ${fmt(logits.shape)} and targets ${fmt(targets.shape)}; expected logits [N, C] and targets [N]`);
  }
  if (targets.dtype !== "int32") throw new Error(`crossEntropy: targets have dtype ${targets.dtype}; expected int32 class indices`);
  const { loss, lse } = logits._backend.crossEntropy(logits.info, targets.info, ignoreIndex);
  const N = logits.shape[0];
  const y = wrap(loss, [N], logits.dtype, logits);
  const lseT = wrap(lse, [N], logits.dtype, logits);
  return record(y, [logits], {
    name: "crossEntropy",
    vjp: (g) => [ceGradRaw(logits, targets, lseT, g, ignoreIndex)],
    jvp: ([t]) => {
      if (!t) return null;
      const dt = logits.dtype as "float32" | "float64";
      const s = softmaxLast(logits);
      const d = sub(s, oneHot(targets, logits.shape[1], dt));
      return mul(sum(mul(d, t), 1), validMask(targets, ignoreIndex, dt));
    },
  });
}

/** Options of crossEntropy. */
export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (default −100). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored targets (default), 'sum', or 'none' (per-position losses). */
  reduction?: "mean" | "sum" | "none";
}

/** Cross-entropy of logits [..., C] against int32 targets [...]. */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const C = logits.shape[logits.rank - 1];
  if (logits.rank < 1 || targets.rank !== logits.rank - 1 || targets.shape.some((d, i) => d !== logits.shape[i])) {
    throw new Error(`crossEntropy: logits ${fmt(logits.shape)} and targets ${fmt(targets.shape)}; expected targets to have the logits' shape without the last (class) axis`);
  }
  const ignore = opts.ignoreIndex ?? -100;
  const per = softmaxCrossEntropy(reshape(logits, [-1, C]), reshape(targets, [-1]), ignore);
  const reduction = opts.reduction ?? "mean";
  if (reduction === "none") return reshape(per, targets.shape);
  const total = sum(per);
  if (reduction === "sum") return total;
  const tv = targets.data();
  let count = 0;
  for (let i = 0; i < tv.length; i++) if (tv[i] !== ignore) count++;
  return div(total, Math.max(count, 1));
}

/** Layer normalisation over the last axis: (x − μ)/√(σ² + eps) · gamma + beta. */
export function layerNorm(x: Tensor, gamma: Tensor | null = null, beta: Tensor | null = null, eps = 1e-5): Tensor {
  requireFloat("layerNorm", x);
  const E = x.shape[x.rank - 1];
  for (const [name, p] of [["gamma", gamma], ["beta", beta]] as const) {
    if (p && (p.shape[p.rank - 1] !== E)) throw new Error(`layerNorm: ${name} has shape ${fmt(p.shape)}; expected a last axis of ${E} to match x ${fmt(x.shape)}`);
  }
  const mu = mean(x, -1, { keepdims: true });
  const v = variance(x, -1, { keepdims: true });
  let y = mul(sub(x, mu), rsqrt(add(v, eps)));
  if (gamma) y = mul(y, gamma);
  if (beta) y = add(y, beta);
  return y;
}

/** Inverted dropout with an explicit RNG key: zeroes elements with probability `rate`, scales the rest by 1/(1−rate). */
export function dropout(x: Tensor, rate: number, key: Key | null, training = true): Tensor {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate ${rate} is invalid; expected 0 <= rate < 1`);
  if (!training || rate === 0) return x;
  if (!key) throw new Error("dropout: no RNG key given in training mode; expected a key from random.key / random.split");
  const keepMask = bernoulli(key, 1 - rate, x.shape);
  return where(keepMask, mul(x, 1 / (1 - rate)), 0);
}

/** Boolean lower-triangular [T, T] mask: true where key position ≤ query position. */
export function causalMask(T: number): Tensor {
  const i = reshape(arange(0, T, 1, "int32"), [T, 1]);
  const j = reshape(arange(0, T, 1, "int32"), [1, T]);
  return ge(i, j);
}
