import { gradientRequested, pullback, pushforward, record, recordComposite, tracked } from "../autodiff/engine.js";
import type { Key } from "../random.js";
import { fmt, lastAxisRows, normAxis } from "../shape.js";
import { Tensor } from "../tensor.js";
import { broadcastTo, sum, sumToShape } from "./broadcast.js";
import { arange, asTensor } from "./creation.js";
import { add, div, eq, exp, ge, mul, ne, sub } from "./elementwise.js";
import { fused, geluDerivative, layerNormBackwardComposite, layerNormComposite } from "./fused.js";
import { matmulT } from "./matmul.js";
import { cast, expandDims, reshape, transpose } from "./shape-ops.js";
import { requireFloat, sameDType, wrap } from "./util.js";

function lastAxisOp(x: Tensor, axis: number, f: (v: Tensor) => Tensor): Tensor {
  const a = normAxis("softmax", axis, x.rank);
  if (a === x.rank - 1) return f(x);
  const perm = Array.from({ length: x.rank }, (_, i) => i);
  perm[a] = x.rank - 1;
  perm[x.rank - 1] = a;
  return transpose(f(transpose(x, perm)), perm);
}

function softmaxLast(x: Tensor): Tensor {
  const y = wrap(fused(x._backend, "softmax", x.info, false), x.shape, x.dtype, x);
  const ax = x.rank - 1;
  return record(y, [x], {
    name: "softmax",
    vjp: (g) => [mul(y, sub(g, sum(mul(g, y), ax, { keepdims: true })))],
    jvp: ([t]) => (t ? mul(y, sub(t, sum(mul(t, y), ax, { keepdims: true }))) : null),
  });
}

function logSoftmaxLast(x: Tensor): Tensor {
  const y = wrap(fused(x._backend, "softmax", x.info, true), x.shape, x.dtype, x);
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

/**
 * The one validation of cross-entropy targets (kernels and composites trust it): int32 class indices in
 * [0, classes) or equal to `ignoreIndex`. Reads the targets on the host (uploaded host data on every backend).
 */
function checkTargets(op: string, targets: Tensor, classes: number, ignoreIndex: number): void {
  if (targets.dtype !== "int32") throw new Error(`${op}: targets have dtype ${targets.dtype}; expected int32 class indices`);
  const t = targets.data();
  for (let i = 0; i < t.length; i++) {
    if (t[i] !== ignoreIndex && !(t[i] >= 0 && t[i] < classes)) {
      throw new Error(
        `${op}: target ${t[i]} at position ${i} is out of range; expected 0 <= target < ${classes} or ${ignoreIndex} (ignored)`,
      );
    }
  }
}

function ceGradRaw(logits: Tensor, targets: Tensor, lse: Tensor, g: Tensor, ignoreIndex: number): Tensor {
  const y = wrap(
    fused(logits._backend, "crossEntropyBackward", logits.info, targets.info, lse.info, g.info, ignoreIndex),
    logits.shape,
    logits.dtype,
    logits,
  );
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
  checkTargets("crossEntropy", targets, logits.shape[1], ignoreIndex);
  const { loss, lse } = fused(logits._backend, "crossEntropy", logits.info, targets.info, ignoreIndex);
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
    throw new Error(
      `crossEntropy: logits ${fmt(logits.shape)} and targets ${fmt(targets.shape)}; expected targets to have the logits' shape without the last (class) axis`,
    );
  }
  const ignore = opts.ignoreIndex ?? -100;
  const reduction = checkReduction("crossEntropy", opts.reduction);
  const per = softmaxCrossEntropy(reshape(logits, [-1, C]), reshape(targets, [-1]), ignore);
  return reduceLosses(per, targets, ignore, reduction);
}

type Reduction = NonNullable<CrossEntropyOptions["reduction"]>;

/** The reduction option (default 'mean'), refused when it is not one of the three. */
function checkReduction(op: string, reduction: string | undefined): Reduction {
  const r = reduction ?? "mean";
  if (r !== "mean" && r !== "sum" && r !== "none") throw new Error(`${op}: reduction '${String(r)}' is not one of 'mean', 'sum', 'none'`);
  return r;
}

/** Per-position losses [N] → 'none' (targets' shape), 'sum', or 'mean' over non-ignored targets. */
function reduceLosses(per: Tensor, targets: Tensor, ignore: number, reduction: Reduction): Tensor {
  if (reduction === "none") return reshape(per, targets.shape);
  const total = sum(per);
  return reduction === "sum" ? total : div(total, validCount(targets, ignore));
}

/** Number of targets that are not `ignore` (at least 1, the divisor of a mean). */
function validCount(targets: Tensor, ignore: number): number {
  const tv = targets.data();
  let count = 0;
  for (let i = 0; i < tv.length; i++) if (tv[i] !== ignore) count++;
  return Math.max(count, 1);
}

/**
 * Cross-entropy of the logits x·wᵀ (x [..., E], w [V, E]: a tied or untied output projection) against int32
 * targets [...], fused: the backend computes the logits in chunks of rows and never materialises the [N, V]
 * matrix or its gradient. A mean or summed loss under reverse mode gets dx and dw from the same pass; otherwise a
 * backward recomputes each chunk's logits (CPU backend). Same value and options as
 * `crossEntropy(matmulT(x, w, false, true), targets, opts)`.
 */
export function linearCrossEntropy(x: Tensor, w: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  requireFloat("linearCrossEntropy", x);
  sameDType("linearCrossEntropy", x, w);
  const E = x.shape[x.rank - 1];
  if (x.rank < 1 || w.rank !== 2 || w.shape[1] !== E) {
    throw new Error(`linearCrossEntropy: x ${fmt(x.shape)} and w ${fmt(w.shape)}; expected x [..., E] and w [V, E] with the same E`);
  }
  if (targets.rank !== x.rank - 1 || targets.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(
      `linearCrossEntropy: x ${fmt(x.shape)} and targets ${fmt(targets.shape)}; expected targets to have x's shape without the last axis`,
    );
  }
  const ignore = opts.ignoreIndex ?? -100;
  checkTargets("linearCrossEntropy", targets, w.shape[0], ignore);
  const reduction = checkReduction("linearCrossEntropy", opts.reduction);
  const x2 = reshape(x, [-1, E]);
  const t2 = reshape(targets, [-1]);
  if (reduction !== "none" && gradientRequested(x2, w)) {
    // a summed loss under reverse mode: the gradients come out of the forward pass (no recomputed logits)
    const total = linearCrossEntropySum(x2, w, t2, ignore);
    return reduction === "sum" ? total : div(total, validCount(targets, ignore));
  }
  const per = linearCrossEntropyRows(x2, w, t2, ignore);
  return reduceLosses(per, targets, ignore, reduction);
}

/**
 * Σ_rows of the per-row loss, with dx and dw computed in the same pass (weight 1 per non-ignored row); the
 * backward scales them by the incoming cotangent. dx and dw are differentiable again (rules from ordinary ops).
 */
function linearCrossEntropySum(x: Tensor, w: Tensor, targets: Tensor, ignore: number): Tensor {
  const r = fused(x._backend, "linearCrossEntropyWithGrad", x.info, w.info, targets.info, ignore);
  const total = sum(wrap(r.loss, [x.shape[0]], x.dtype, x));
  const dx = wrap(r.dx, x.shape, x.dtype, x);
  const dw = wrap(r.dw, w.shape, x.dtype, x);
  const composite = linearCeComposite(targets, ignore);
  recordGradsByComposite(dx, dw, [x, w], "linearCrossEntropySumGrad", (a, b) =>
    pullback((p, q) => sum(composite(p, q)), [a, b], asTensor(1, total)),
  );
  return record(total, [x, w], {
    name: "linearCrossEntropySum",
    vjp: (g) => [mul(dx, g), mul(dw, g)],
    jvp: ([tx, tw]) => {
      const a = tx ? sum(mul(dx, tx)) : null;
      const b = tw ? sum(mul(dw, tw)) : null;
      return a && b ? add(a, b) : (a ?? b);
    },
  });
}

/** The same per-row loss written with ordinary ops (for the rules that differentiate it again). */
function linearCeComposite(targets: Tensor, ignore: number): (x: Tensor, w: Tensor) => Tensor {
  return (x, w) => softmaxCrossEntropy(matmulT(x, w, false, true), targets, ignore);
}

/**
 * Records the kernel's gradients dx, dw of the projection + cross-entropy as functions of `inputs`, with rules
 * from `grads` (the same [dx, dw] written with ordinary ops), so second derivatives work through them.
 */
function recordGradsByComposite(dx: Tensor, dw: Tensor, inputs: Tensor[], name: string, grads: (...xs: Tensor[]) => Tensor[]): void {
  recordComposite(dx, inputs, `${name}X`, (...xs) => grads(...xs)[0]);
  recordComposite(dw, inputs, `${name}W`, (...xs) => grads(...xs)[1]);
}

function linearCrossEntropyRows(x: Tensor, w: Tensor, targets: Tensor, ignore: number): Tensor {
  const r = fused(x._backend, "linearCrossEntropy", x.info, w.info, targets.info, ignore);
  const N = x.shape[0];
  const y = wrap(r.loss, [N], x.dtype, x);
  const lse = wrap(r.lse, [N], x.dtype, x);
  const composite = linearCeComposite(targets, ignore);
  return record(y, [x, w], {
    name: "linearCrossEntropy",
    vjp: (g) => {
      const b = fused(x._backend, "linearCrossEntropyBackward", x.info, w.info, targets.info, lse.info, g.info, ignore);
      const dx = wrap(b.dx, x.shape, x.dtype, x);
      const dw = wrap(b.dw, w.shape, x.dtype, x);
      recordGradsByComposite(dx, dw, [x, w, g], "linearCrossEntropyGrad", (a, b2, c) => pullback(composite, [a, b2], c));
      return [dx, dw];
    },
    jvp: ([tx, tw]) => pushforward(composite, [x, w], [tx, tw]),
  });
}

/** Per-row statistics saved by the layer-norm forward ([rows], not differentiable: rules re-derive them). */
interface LnSaved {
  mean: Tensor;
  rstd: Tensor;
  eps: number;
}

/** Sums a [..., C] tensor over every axis but the last. */
function sumRows(t: Tensor): Tensor {
  return sumToShape(t, [t.shape[t.rank - 1]]);
}

/**
 * Layer normalisation over the last axis: (x − μ)/√(σ² + eps) · gamma + beta, with the biased variance.
 * gamma and beta (each optional) broadcast against x; when their shape is [C] (leading 1s allowed) the scale
 * and shift are fused into the normalisation kernel, forward and backward.
 */
export function layerNorm(x: Tensor, gamma: Tensor | null = null, beta: Tensor | null = null, eps = 1e-5): Tensor {
  requireFloat("layerNorm", x);
  if (x.rank === 0) throw new Error("layerNorm: got a scalar; expected x of rank >= 1 (normalised over the last axis)");
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new Error(`layerNorm: eps is ${eps}; expected a finite number >= 0`);
  const E = x.shape[x.rank - 1];
  for (const [name, p] of [
    ["gamma", gamma],
    ["beta", beta],
  ] as const) {
    if (!p) continue;
    if (p.rank === 0 || p.shape[p.rank - 1] !== E) {
      throw new Error(`layerNorm: ${name} has shape ${fmt(p.shape)}; expected a last axis of ${E} to match x ${fmt(x.shape)}`);
    }
    sameDType("layerNorm", x, p);
  }
  const fusable = (p: Tensor | null) => !p || p.shape.slice(0, -1).every((d) => d === 1);
  if (fusable(gamma) && fusable(beta)) {
    const g = gamma && gamma.rank > 1 ? reshape(gamma, [E]) : gamma;
    const b = beta && beta.rank > 1 ? reshape(beta, [E]) : beta;
    const y = layerNormPrim(x, g, b, eps);
    // a gamma/beta with leading 1s can broadcast x up to a higher rank
    const outShape = [gamma, beta].reduce(
      (s, p) => (p && p.rank > s.length ? [...p.shape.slice(0, p.rank - s.length), ...s] : s),
      x.shape as number[],
    );
    return outShape.length > x.rank ? reshape(y, outShape) : y;
  }
  let y = layerNormPrim(x, null, null, eps);
  if (gamma) y = mul(y, gamma);
  if (beta) y = add(y, beta);
  return y;
}

/** The fused layer-norm primitive: gamma and beta are [C] or null. */
function layerNormPrim(x: Tensor, gamma: Tensor | null, beta: Tensor | null, eps: number): Tensor {
  const r = fused(x._backend, "layerNorm", x.info, gamma?.info ?? null, beta?.info ?? null, eps);
  const { rows } = lastAxisRows(x.shape);
  const y = wrap(r.y, x.shape, x.dtype, x);
  const saved: LnSaved = { mean: wrap(r.mean, [rows], x.dtype, x), rstd: wrap(r.rstd, [rows], x.dtype, x), eps };
  const inputs = [x, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])];
  return record(y, inputs, {
    name: "layerNorm",
    vjp: (g) => {
      const params = (gamma !== null && tracked(gamma)) || (beta !== null && tracked(beta));
      const p = layerNormGrad(x, gamma, g, saved, params);
      return [p.dx, ...(gamma ? [p.dgamma] : []), ...(beta ? [p.dbeta] : [])];
    },
    jvp: (ts) => {
      const tx = ts[0];
      const tg = gamma ? ts[1] : null;
      const tb = beta ? ts[gamma ? 2 : 1] : null;
      // the Jacobian of the normalisation is symmetric, so its JVP is the backward kernel applied to tx
      let out: Tensor | null = null;
      if (tx) {
        const n = layerNormGrad(x, null, tx, saved, false).dx;
        out = gamma ? mul(n, gamma) : n;
      }
      if (tg) {
        const t = mul(tg, layerNormPrim(x, null, null, eps));
        out = out ? add(out, t) : t;
      }
      if (tb) out = out ? add(out, tb) : broadcastTo(tb, x.shape);
      return out;
    },
  });
}

/**
 * Backward of the fused layer norm from the saved statistics: dx = M(x)(gamma ⊙ g) with the symmetric
 * per-row operator M = rstd·(I − 11ᵀ/C − x̂x̂ᵀ/C), and with `params` dgamma = Σ_rows g ⊙ x̂, dbeta = Σ_rows g.
 * Each result is itself differentiable (second-order rules below).
 */
function layerNormGrad(
  x: Tensor,
  gamma: Tensor | null,
  g: Tensor,
  s: LnSaved,
  params: boolean,
): { dx: Tensor; dgamma: Tensor | null; dbeta: Tensor | null } {
  const r = fused(x._backend, "layerNormBackward", x.info, gamma?.info ?? null, s.mean.info, s.rstd.info, g.info, params);
  const C = x.shape[x.rank - 1];
  const dx = wrap(r.dx, x.shape, x.dtype, x);
  const M = (v: Tensor) => layerNormGrad(x, null, v, s, false).dx;
  const xhat = () => layerNormPrim(x, null, null, s.eps);
  record(dx, gamma ? [x, gamma, g] : [x, g], {
    name: "layerNormGrad",
    vjp: (u) => {
      const cx = tracked(x) ? pullback((xx) => layerNormGradComposite(xx, gamma, g, s.eps), [x], u)[0] : null;
      const needMu = tracked(g) || (gamma !== null && tracked(gamma));
      const mu = needMu ? M(u) : null;
      const cg = tracked(g) && mu ? (gamma ? mul(mu, gamma) : mu) : null;
      if (!gamma) return [cx, cg];
      return [cx, tracked(gamma) && mu ? sumRows(mul(g, mu)) : null, cg];
    },
    jvp: (ts) => {
      const tx = ts[0];
      const tgam = gamma ? ts[1] : null;
      const tg = ts[gamma ? 2 : 1];
      const terms: Tensor[] = [];
      const cx = tx ? pushforward((xx) => layerNormGradComposite(xx, gamma, g, s.eps), [x], [tx]) : null;
      if (cx) terms.push(cx);
      if (tg) terms.push(layerNormGrad(x, gamma, tg, s, false).dx);
      if (tgam) terms.push(M(mul(tgam, g)));
      return terms.length === 0 ? null : terms.reduce((a, b) => add(a, b));
    },
  });
  if (!params) return { dx, dgamma: null, dbeta: null };
  const dgamma = wrap(r.dgamma, [C], x.dtype, x);
  record(dgamma, [x, g], {
    name: "layerNormGradGamma",
    vjp: (u) => [tracked(x) ? M(mul(g, u)) : null, tracked(g) ? mul(u, xhat()) : null],
    jvp: ([tx, tg]) => {
      const a = tg ? sumRows(mul(tg, xhat())) : null;
      const b = tx ? sumRows(mul(g, M(tx))) : null;
      return a && b ? add(a, b) : (a ?? b);
    },
  });
  const dbeta = wrap(r.dbeta, [C], x.dtype, x);
  record(dbeta, [g], {
    name: "layerNormGradBeta",
    vjp: (u) => [broadcastTo(u, g.shape)],
    jvp: ([tg]) => (tg ? sumRows(tg) : null),
  });
  return { dx, dgamma, dbeta };
}

/** The layer-norm backward dx as a function of x (statistics recomputed from x): the composites of fused.ts. */
function layerNormGradComposite(x: Tensor, gamma: Tensor | null, g: Tensor, eps: number): Tensor {
  const { mean, rstd } = layerNormComposite(x, null, null, eps);
  return layerNormBackwardComposite(x, gamma, mean, rstd, g, false).dx;
}

/** GPT-2's gelu: 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))). The backward is one fused kernel (geluGrad). */
export function gelu(x: Tensor): Tensor {
  requireFloat("gelu", x);
  const y = wrap(x._backend.unary("gelu", x.info, x.dtype), x.shape, x.dtype, x);
  return record(y, [x], {
    name: "gelu",
    vjp: (g) => [geluGrad(x, g)],
    jvp: ([t]) => (t ? geluGrad(x, t) : null),
  });
}

/**
 * g·gelu′(x) from the fused kernel; differentiable again: linear in g (the same kernel), and in x through gelu″,
 * the derivative of the composite gelu′ of fused.ts.
 */
function geluGrad(x: Tensor, g: Tensor): Tensor {
  const y = wrap(fused(x._backend, "geluBackward", x.info, g.info), x.shape, x.dtype, x);
  return record(y, [x, g], {
    name: "geluGrad",
    vjp: (u) => [tracked(x) ? pullback(geluDerivative, [x], mul(u, g))[0] : null, tracked(g) ? geluGrad(x, u) : null],
    jvp: ([tx, tg]) => {
      const dx = tx ? pushforward(geluDerivative, [x], [tx]) : null;
      const a = dx ? mul(dx, g) : null;
      const b = tg ? geluGrad(x, tg) : null;
      return a && b ? add(a, b) : (a ?? b);
    },
  });
}

/**
 * Inverted dropout with an explicit RNG key: zeroes elements with probability `rate`, scales the rest by 1/(1−rate).
 * The mask is the Philox-4x32-10 dropout stream of the key (a pure function of key and size, documented in
 * `random/philox.ts`), drawn inside the kernel; dropout is linear in x for a fixed mask, so the VJP and JVP are
 * dropout of the cotangent / tangent under the same key (the mask is recomputed, bit for bit).
 */
export function dropout(x: Tensor, rate: number, key: Key | null, training = true): Tensor {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate ${rate} is invalid; expected 0 <= rate < 1`);
  if (!training || rate === 0) return x;
  if (!key) throw new Error("dropout: no RNG key given in training mode; expected a key from random.key / random.split");
  requireFloat("dropout", x);
  const [k0, k1] = key.words;
  const y = wrap(fused(x._backend, "dropout", x.info, k0, k1, rate), x.shape, x.dtype, x);
  return record(y, [x], {
    name: "dropout",
    vjp: (u) => [dropout(u, rate, key)],
    jvp: ([tx]) => (tx ? dropout(tx, rate, key) : null),
  });
}

/** Boolean lower-triangular [T, T] mask: true where key position ≤ query position. */
export function causalMask(T: number): Tensor {
  const i = reshape(arange(0, T, 1, "int32"), [T, 1]);
  const j = reshape(arange(0, T, 1, "int32"), [1, T]);
  return ge(i, j);
}
