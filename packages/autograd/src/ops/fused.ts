/**
 * The fused kernels of the op layer: one composite definition of each, written with primitive ops, and `fused`,
 * the one place an op calls a fused kernel — the backend's own kernel when it has one, the composite otherwise.
 *
 * The composites compute exactly what the kernel interface documents (backend/backend.ts `FusedKernels`), on
 * the backend of their operands. They are also the reference the conformance suite checks each backend kernel
 * against, and some are differentiated by the rules in nn.ts (layer norm's second order, gelu″). Operands are
 * validated by the calling op, not here.
 *
 * Adding a fused op: its signature in `FusedKernels`, its composite in `COMPOSITES` below (the compiler
 * refuses a kernel without one), the op in nn.ts calling `fused(...)`, and optionally backend kernels.
 */
import type { Backend, Buffer, FusedKernelName, FusedKernels, TensorInfo } from "../backend/backend.js";
import type { DType, TypedArray } from "../dtype.js";
import { GELU_CUBIC, GELU_TANH_SCALE } from "../gelu.js";
import { dropoutKeepMask } from "../random/philox.js";
import { Tensor } from "../tensor.js";
import { tidy } from "../tidy.js";
import { sum, sumToShape } from "./broadcast.js";
import { add, div, eq, exp, log, mul, neg, rsqrt, sigmoid, sub, where } from "./elementwise.js";
import { take } from "./indexing.js";
import { matmulT } from "./matmul.js";
import { max } from "./reduce.js";
import { cast, expandDims, reshape, stopGradient } from "./shape-ops.js";

// ---------------------------------------------------------------- composites (tensors in, tensors out)

/** Inverted dropout: where(keep, x·s, 0) with the keep mask of the Philox dropout stream of (k0, k1) built on the host. */
export function dropoutComposite(x: Tensor, k0: number, k1: number, rate: number): Tensor {
  const keep = onBackend(x, dropoutKeepMask(k0, k1, x.size, rate), x.shape, "bool");
  return where(keep, mul(x, 1 / (1 - rate)), 0);
}

/** Softmax (or log-softmax) over the last axis: e/Σe (or z − log Σe) with z = x − rowmax(x), e = exp z. */
export function softmaxComposite(x: Tensor, logSoftmax: boolean): Tensor {
  if (x.size === 0) return x;
  const z = sub(x, stopGradient(max(x, -1, { keepdims: true })));
  const e = exp(z);
  const s = sum(e, -1, { keepdims: true });
  return logSoftmax ? sub(z, log(s)) : div(e, s);
}

/**
 * Per-row loss (m − x_t) + log Σ exp(x − m) (0 where the target is ignored) and lse = m + log Σ exp(x − m),
 * with m the row maximum, of logits [N, C] and int32 targets [N]. Written as the kernels are, so that a loss
 * much smaller than the logits does not cancel against them.
 */
export function crossEntropyComposite(logits: Tensor, targets: Tensor, ignoreIndex: number): { loss: Tensor; lse: Tensor } {
  const [n] = logits.shape;
  if (n === 0) return { loss: filled(logits, [0], 0), lse: filled(logits, [0], 0) };
  const { flat, valid } = targetIndex(logits, targets, ignoreIndex);
  const m = stopGradient(max(logits, 1));
  const ls = log(sum(exp(sub(logits, expandDims(m, 1))), 1));
  const picked = take(reshape(logits, [-1]), flat);
  return { loss: where(valid, add(sub(m, picked), ls), 0), lse: add(m, ls) };
}

/** dLogits = g[:,None]·(exp(logits − lse[:,None]) − onehot(targets)), zero rows where the target is ignored. */
export function crossEntropyBackwardComposite(logits: Tensor, targets: Tensor, lse: Tensor, g: Tensor, ignoreIndex: number): Tensor {
  const [n, c] = logits.shape;
  if (n * c === 0) return filled(logits, [n, c], 0);
  const { cls, valid } = targetIndex(logits, targets, ignoreIndex);
  const classes = onBackend(
    logits,
    Int32Array.from({ length: c }, (_, j) => j),
    [c],
    "int32",
  );
  const onehot = cast(eq(expandDims(cls, 1), classes), logits.dtype);
  const p = exp(sub(logits, expandDims(lse, 1)));
  return where(expandDims(valid, 1), mul(expandDims(g, 1), sub(p, onehot)), 0);
}

/** Layer norm over the last axis: y = (x − μ)·rstd·gamma + beta, rstd = 1/√(σ² + eps) (biased σ²), and μ, rstd per row. */
export function layerNormComposite(
  x: Tensor,
  gamma: Tensor | null,
  beta: Tensor | null,
  eps: number,
): { y: Tensor; mean: Tensor; rstd: Tensor } {
  const c = x.shape[x.rank - 1];
  const rows = x.size / c;
  const mu = div(sum(x, -1, { keepdims: true }), c);
  const d = sub(x, mu);
  const rs = rsqrt(add(div(sum(mul(d, d), -1, { keepdims: true }), c), eps));
  let y = mul(d, rs);
  if (gamma) y = mul(y, gamma);
  if (beta) y = add(y, beta);
  return { y, mean: reshape(mu, [rows]), rstd: reshape(rs, [rows]) };
}

/**
 * Layer norm's backward from the per-row μ and rstd: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·gamma,
 * x̂ = (x − μ)·rstd; with `withParams` also dgamma = Σ_rows dy·x̂ and dbeta = Σ_rows dy.
 */
export function layerNormBackwardComposite(
  x: Tensor,
  gamma: Tensor | null,
  mean: Tensor,
  rstd: Tensor,
  dy: Tensor,
  withParams: boolean,
): { dx: Tensor; dgamma: Tensor | null; dbeta: Tensor | null } {
  const c = x.shape[x.rank - 1];
  const kept = [...x.shape.slice(0, -1), 1];
  const rs = reshape(rstd, kept);
  const xh = mul(sub(x, reshape(mean, kept)), rs);
  const gh = gamma ? mul(dy, gamma) : dy;
  const a = div(sum(gh, -1, { keepdims: true }), c);
  const b = div(sum(mul(gh, xh), -1, { keepdims: true }), c);
  const dx = mul(rs, sub(sub(gh, a), mul(xh, b)));
  if (!withParams) return { dx, dgamma: null, dbeta: null };
  return { dx, dgamma: sumToShape(mul(dy, xh), [c]), dbeta: sumToShape(dy, [c]) };
}

/**
 * gelu′(x) with gelu(x) = x·σ(2u), u = √(2/π)(x + 0.044715x³): gelu′ = σ(2u) + 2x·u′·σ(2u)·σ(−2u),
 * u′ = √(2/π)(1 + 3·0.044715x²) — written with σ of both signs, so neither tail cancels (½(1 + tanh u) would).
 */
export function geluDerivative(x: Tensor): Tensor {
  const x2 = mul(x, x);
  const u2 = mul(mul(x, add(mul(x2, GELU_CUBIC), 1)), 2 * GELU_TANH_SCALE);
  const du = mul(add(mul(x2, 3 * GELU_CUBIC), 1), GELU_TANH_SCALE);
  const s = sigmoid(u2);
  return add(s, mul(mul(mul(x, du), 2), mul(s, sigmoid(neg(u2)))));
}

/**
 * For the [N] targets of logits [N, C]: the flat index r·C + t of each row's target logit (r·C for ignored rows),
 * the class per row (−1 when ignored) and the mask of rows that are not ignored, built on the host (targets are
 * host data: the op read them to validate them) and uploaded to the logits' backend.
 */
function targetIndex(logits: Tensor, targets: Tensor, ignoreIndex: number): { flat: Tensor; cls: Tensor; valid: Tensor } {
  const [n, c] = logits.shape;
  const t = targets.data();
  const flat = new Int32Array(n),
    cls = new Int32Array(n),
    valid = new Uint8Array(n);
  for (let r = 0; r < n; r++) {
    const ok = t[r] !== ignoreIndex;
    flat[r] = r * c + (ok ? t[r] : 0);
    cls[r] = ok ? t[r] : -1;
    valid[r] = ok ? 1 : 0;
  }
  return {
    flat: onBackend(logits, flat, [n], "int32"),
    cls: onBackend(logits, cls, [n], "int32"),
    valid: onBackend(logits, valid, [n], "bool"),
  };
}

/** Host data as a tensor on the backend of `like` (not the current backend). */
function onBackend(like: Tensor, data: TypedArray, shape: readonly number[], dtype: DType): Tensor {
  return new Tensor(like._backend.fromArray(data, dtype), shape, dtype, like._backend);
}

/** A tensor of `value` on the backend of `like`, in its dtype. */
function filled(like: Tensor, shape: readonly number[], value: number): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return new Tensor(like._backend.fill(like.dtype, size, value), shape, like.dtype, like._backend);
}

// ---------------------------------------------------------------- the kernel-shaped table and the dispatch

/** A composite's outputs: the kernel's buffers as tensors. */
type Outputs<R> = unknown extends R ? Tensor : { [P in keyof R]: Tensor | null };

/** The composite of kernel K: the kernel's arguments (after the backend), its outputs as tensors. */
type Composite<K extends FusedKernelName> = (be: Backend, ...args: Parameters<FusedKernels[K]>) => Outputs<ReturnType<FusedKernels[K]>>;

/** A kernel operand as a tensor on `be` (no autodiff information). */
const on = (be: Backend, x: TensorInfo): Tensor => new Tensor(x.buf, x.shape, x.dtype, be);
const onOrNull = (be: Backend, x: TensorInfo | null): Tensor | null => (x ? on(be, x) : null);
const wrapBuf = (be: Backend, buf: Buffer, shape: readonly number[], dtype: DType): Tensor => new Tensor(buf, shape, dtype, be);

/** Typed over every fused kernel: a kernel without a composite does not compile. */
const COMPOSITES: { [K in FusedKernelName]: Composite<K> } = {
  softmax: (be, x, logSoftmax) => softmaxComposite(on(be, x), logSoftmax),
  crossEntropy: (be, logits, targets, ignore) => crossEntropyComposite(on(be, logits), on(be, targets), ignore),
  crossEntropyBackward: (be, logits, targets, lse, g, ignore) =>
    crossEntropyBackwardComposite(on(be, logits), on(be, targets), on(be, lse), on(be, g), ignore),
  layerNorm: (be, x, gamma, beta, eps) => layerNormComposite(on(be, x), onOrNull(be, gamma), onOrNull(be, beta), eps),
  layerNormBackward: (be, x, gamma, mean, rstd, dy, withParams) =>
    layerNormBackwardComposite(on(be, x), onOrNull(be, gamma), on(be, mean), on(be, rstd), on(be, dy), withParams),
  geluBackward: (be, x, dy) => mul(on(be, dy), geluDerivative(on(be, x))),
  dropout: (be, x, k0, k1, rate) => dropoutComposite(on(be, x), k0, k1, rate),
  // the projection, then the backend's cross-entropy (its kernel, or the composite above)
  linearCrossEntropy: (be, x, w, targets, ignore) => {
    const logits = matmulT(on(be, x), on(be, w), false, true);
    const r = fused(be, "crossEntropy", logits.info, targets, ignore);
    return { loss: wrapBuf(be, r.loss, [x.shape[0]], x.dtype), lse: wrapBuf(be, r.lse, [x.shape[0]], x.dtype) };
  },
  linearCrossEntropyBackward: (be, x, w, targets, lse, g, ignore) => linearCeBackward(be, x, w, targets, lse, g, ignore),
  linearCrossEntropyWithGrad: (be, x, w, targets, ignore) => {
    const n = x.shape[0];
    const logits = matmulT(on(be, x), on(be, w), false, true);
    const r = fused(be, "crossEntropy", logits.info, targets, ignore);
    const lse = wrapBuf(be, r.lse, [n], x.dtype);
    const ones = wrapBuf(be, be.fill(x.dtype, n, 1), [n], x.dtype);
    return { loss: wrapBuf(be, r.loss, [n], x.dtype), lse, ...linearCeBackward(be, x, w, targets, lse.info, ones.info, ignore, logits) };
  },
};

/** dx = dl·w and dw = dlᵀ·x with dl the cross-entropy backward of logits = x·wᵀ (given, or recomputed). */
function linearCeBackward(
  be: Backend,
  x: TensorInfo,
  w: TensorInfo,
  targets: TensorInfo,
  lse: TensorInfo,
  g: TensorInfo,
  ignore: number,
  logits?: Tensor,
): { dx: Tensor; dw: Tensor } {
  const X = on(be, x),
    W = on(be, w);
  const l = logits ?? matmulT(X, W, false, true);
  const dl = wrapBuf(be, fused(be, "crossEntropyBackward", l.info, targets, lse, g, ignore), l.shape, x.dtype);
  return { dx: matmulT(dl, W), dw: matmulT(dl, X, true, false) };
}

/**
 * Runs the composite of fused kernel `name` on backend `be` and returns what the kernel would: fresh buffers
 * (intermediates are released at once on backends with device memory).
 */
export function composite<K extends FusedKernelName>(
  be: Backend,
  name: K,
  ...args: Parameters<FusedKernels[K]>
): ReturnType<FusedKernels[K]> {
  const inputs = new Set<Buffer>();
  for (const a of args) if (a !== null && typeof a === "object" && "buf" in a) inputs.add((a as TensorInfo).buf);
  const fresh = (t: Tensor): Buffer => (inputs.has(t._buf) ? be.cast(t.info, t.dtype) : t._buf);
  const out = tidy(() => (COMPOSITES[name] as Composite<K>)(be, ...args)) as Tensor | Record<string, Tensor | null>;
  if (out instanceof Tensor) return fresh(out) as ReturnType<FusedKernels[K]>;
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t ? fresh(t) : null])) as ReturnType<FusedKernels[K]>;
}

/** Calls fused kernel `name` of backend `be`: its own kernel when it has one, the composite otherwise. */
export function fused<K extends FusedKernelName>(be: Backend, name: K, ...args: Parameters<FusedKernels[K]>): ReturnType<FusedKernels[K]> {
  const kernel = be[name] as ((...a: Parameters<FusedKernels[K]>) => ReturnType<FusedKernels[K]>) | undefined;
  return kernel ? kernel.apply(be, args) : composite(be, name, ...args);
}

/** The fused kernels a backend implements itself (the others run as composites). */
export function ownFusedKernels(be: Backend): FusedKernelName[] {
  return (Object.keys(COMPOSITES) as FusedKernelName[]).filter((k) => typeof be[k] === "function");
}

/** Every fused kernel name. */
export const FUSED_KERNELS = Object.keys(COMPOSITES) as readonly FusedKernelName[];
