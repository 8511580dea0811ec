/**
 * Naive float64 reference implementations of the Backend kernels, written from the definitions (multi-index
 * loops, no shared code with any backend). Each returns the expected values and, where rounding error grows
 * with the operands, a per-element magnitude `scale` (e.g. Σ|a·b| for a dot product) for the tolerance.
 */

export type Shape = readonly number[];

/** Number of elements. */
export const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);

/** Row-major multi-index of flat index i. */
export function unravel(i: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/** Flat index of a multi-index. */
export function ravel(idx: readonly number[], shape: Shape): number {
  let f = 0;
  for (let d = 0; d < shape.length; d++) f = f * shape[d] + idx[d];
  return f;
}

/** NumPy broadcast of two or more shapes. */
export function broadcastShape(...shapes: Shape[]): number[] {
  const r = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(r).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = r - s.length + i;
      if (out[o] === 1) out[o] = s[i];
      else if (s[i] !== 1 && s[i] !== out[o])
        throw new Error(`reference: shapes do not broadcast: ${shapes.map((x) => `[${x}]`).join(" ")}`);
    }
  }
  return out;
}

/** Value of `x` (shape `shape`) at an output multi-index under broadcasting. */
function bcastAt(x: ArrayLike<number>, shape: Shape, outIdx: readonly number[]): number {
  const off = outIdx.length - shape.length;
  const idx = shape.map((d, i) => (d === 1 ? 0 : outIdx[off + i]));
  return x[ravel(idx, shape)];
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** The definition of each unary op. */
export const UNARY_REF: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  log1p: Math.log1p,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  abs: Math.abs,
  sin: Math.sin,
  cos: Math.cos,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  relu: (x) => Math.max(x, 0),
  gelu: (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))),
  silu: (x) => x / (1 + Math.exp(-x)),
  sign: Math.sign,
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  step: (x) => (x > 0 ? 1 : 0),
  floor: Math.floor,
  isfinite: (x) => (Number.isFinite(x) ? 1 : 0),
};

/** The definition of each binary op. */
export const BINARY_REF: Record<string, (x: number, y: number) => number> = {
  add: (x, y) => x + y,
  sub: (x, y) => x - y,
  mul: (x, y) => x * y,
  div: (x, y) => x / y,
  pow: Math.pow,
  maximum: Math.max,
  minimum: Math.min,
  eq: (x, y) => +(x === y),
  ne: (x, y) => +(x !== y),
  lt: (x, y) => +(x < y),
  le: (x, y) => +(x <= y),
  gt: (x, y) => +(x > y),
  ge: (x, y) => +(x >= y),
};

/** Elementwise binary op with broadcasting. */
export function refBinary(
  f: (x: number, y: number) => number,
  a: ArrayLike<number>,
  as: Shape,
  b: ArrayLike<number>,
  bs: Shape,
): { out: Float64Array; shape: number[] } {
  const shape = broadcastShape(as, bs);
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    out[i] = f(bcastAt(a, as, idx), bcastAt(b, bs, idx));
  }
  return { out, shape };
}

/** cond ? a : b with broadcasting. */
export function refWhere(
  c: ArrayLike<number>,
  cs: Shape,
  a: ArrayLike<number>,
  as: Shape,
  b: ArrayLike<number>,
  bs: Shape,
): { out: Float64Array; shape: number[] } {
  const shape = broadcastShape(cs, as, bs);
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    out[i] = bcastAt(c, cs, idx) !== 0 ? bcastAt(a, as, idx) : bcastAt(b, bs, idx);
  }
  return { out, shape };
}

/** Reduction over sorted axes; scale = Σ|x| over each reduced group. */
export function refReduce(
  op: "sum" | "max" | "min",
  x: ArrayLike<number>,
  shape: Shape,
  axes: readonly number[],
): { out: Float64Array; scale: Float64Array; shape: number[] } {
  const outShape = shape.filter((_, d) => !axes.includes(d));
  const n = numel(outShape);
  const out = new Float64Array(n).fill(op === "sum" ? 0 : op === "max" ? -Infinity : Infinity);
  const scale = new Float64Array(n);
  for (let i = 0; i < numel(shape); i++) {
    const idx = unravel(i, shape);
    const o = ravel(
      idx.filter((_, d) => !axes.includes(d)),
      outShape,
    );
    const v = x[i];
    if (op === "sum") out[o] += v;
    else if (op === "max") out[o] = Math.max(out[o], v);
    else out[o] = Math.min(out[o], v);
    scale[o] += Math.abs(v);
  }
  return { out, scale, shape: outShape };
}

/** Batched op(A)·op(B) with broadcast batch axes; scale = Σ|a·b|. */
export function refMatmul(
  a: ArrayLike<number>,
  as: Shape,
  b: ArrayLike<number>,
  bs: Shape,
  transA: boolean,
  transB: boolean,
): { out: Float64Array; scale: Float64Array; shape: number[] } {
  const ra = as.length,
    rb = bs.length;
  const m = transA ? as[ra - 1] : as[ra - 2];
  const k = transA ? as[ra - 2] : as[ra - 1];
  const n = transB ? bs[rb - 2] : bs[rb - 1];
  const batch = broadcastShape(as.slice(0, -2), bs.slice(0, -2));
  const shape = [...batch, m, n];
  const out = new Float64Array(numel(shape));
  const scale = new Float64Array(out.length);
  const nb = numel(batch);
  for (let bi = 0; bi < nb; bi++) {
    const bidx = unravel(bi, batch);
    const aIdx = (i: number, t: number) => {
      const lead = as.slice(0, -2).map((d, j) => (d === 1 ? 0 : bidx[batch.length - (ra - 2) + j]));
      return ravel([...lead, ...(transA ? [t, i] : [i, t])], as);
    };
    const bIdx = (t: number, j: number) => {
      const lead = bs.slice(0, -2).map((d, jj) => (d === 1 ? 0 : bidx[batch.length - (rb - 2) + jj]));
      return ravel([...lead, ...(transB ? [j, t] : [t, j])], bs);
    };
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0,
          sc = 0;
        for (let t = 0; t < k; t++) {
          const p = a[aIdx(i, t)] * b[bIdx(t, j)];
          s += p;
          sc += Math.abs(p);
        }
        out[(bi * m + i) * n + j] = s;
        scale[(bi * m + i) * n + j] = sc;
      }
    }
  }
  return { out, scale, shape };
}

/** Axis permutation. */
export function refTranspose(x: ArrayLike<number>, shape: Shape, perm: readonly number[]): Float64Array {
  const outShape = perm.map((p) => shape[p]);
  const out = new Float64Array(numel(outShape));
  for (let i = 0; i < out.length; i++) {
    const oi = unravel(i, outShape);
    const src = new Array<number>(shape.length);
    perm.forEach((p, d) => (src[p] = oi[d]));
    out[i] = x[ravel(src, shape)];
  }
  return out;
}

/** Materialised broadcast. */
export function refBroadcastTo(x: ArrayLike<number>, shape: Shape, to: Shape): Float64Array {
  const out = new Float64Array(numel(to));
  for (let i = 0; i < out.length; i++) out[i] = bcastAt(x, shape, unravel(i, to));
  return out;
}

/** Strided slice. */
export function refSlice(
  x: ArrayLike<number>,
  shape: Shape,
  begin: readonly number[],
  size: readonly number[],
  step: readonly number[],
): Float64Array {
  const out = new Float64Array(numel(size));
  for (let i = 0; i < out.length; i++) {
    const oi = unravel(i, size);
    out[i] =
      x[
        ravel(
          oi.map((c, d) => begin[d] + c * step[d]),
          shape,
        )
      ];
  }
  return out;
}

/** Zeros of outShape with x written at begin + k·step. */
export function refPad(
  x: ArrayLike<number>,
  shape: Shape,
  outShape: Shape,
  begin: readonly number[],
  step: readonly number[],
): Float64Array {
  const out = new Float64Array(numel(outShape));
  for (let i = 0; i < numel(shape); i++) {
    const xi = unravel(i, shape);
    out[
      ravel(
        xi.map((c, d) => begin[d] + c * step[d]),
        outShape,
      )
    ] = x[i];
  }
  return out;
}

/** Concatenation along an axis. */
export function refConcat(xs: { data: ArrayLike<number>; shape: Shape }[], axis: number): { out: Float64Array; shape: number[] } {
  const shape = [...xs[0].shape];
  shape[axis] = xs.reduce((s, x) => s + x.shape[axis], 0);
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const oi = unravel(i, shape);
    let c = oi[axis];
    for (const x of xs) {
      if (c < x.shape[axis]) {
        const si = [...oi];
        si[axis] = c;
        out[i] = x.data[ravel(si, x.shape)];
        break;
      }
      c -= x.shape[axis];
    }
  }
  return out.length ? { out, shape } : { out, shape };
}

/** out[..., j, ...] = x[..., idx[j], ...] along axis. */
export function refGather(
  x: ArrayLike<number>,
  shape: Shape,
  idx: ArrayLike<number>,
  axis: number,
): { out: Float64Array; shape: number[] } {
  const outShape = [...shape.slice(0, axis), idx.length, ...shape.slice(axis + 1)];
  const out = new Float64Array(numel(outShape));
  for (let i = 0; i < out.length; i++) {
    const oi = unravel(i, outShape);
    const si = [...oi];
    si[axis] = idx[oi[axis]];
    out[i] = x[ravel(si, shape)];
  }
  return { out, shape: outShape };
}

/** Zeros of outShape plus updates added at idx along axis. */
export function refScatterAdd(u: ArrayLike<number>, idx: ArrayLike<number>, axis: number, outShape: Shape): Float64Array {
  const uShape = [...outShape.slice(0, axis), idx.length, ...outShape.slice(axis + 1)];
  const out = new Float64Array(numel(outShape));
  for (let i = 0; i < numel(uShape); i++) {
    const ui = unravel(i, uShape);
    const oi = [...ui];
    oi[axis] = idx[ui[axis]];
    out[ravel(oi, outShape)] += u[i];
  }
  return out;
}

/** Softmax or log-softmax over the last axis, in float64. */
export function refSoftmax(x: ArrayLike<number>, shape: Shape, log: boolean): Float64Array {
  const cols = shape[shape.length - 1];
  const rows = numel(shape) / cols;
  const out = new Float64Array(numel(shape));
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c] - m);
    for (let c = 0; c < cols; c++) {
      const z = x[r * cols + c] - m;
      out[r * cols + c] = log ? z - Math.log(s) : Math.exp(z) / s;
    }
  }
  return out;
}

/** Per-row log-sum-exp and NLL (0 for ignored rows). */
export function refCrossEntropy(
  x: ArrayLike<number>,
  rows: number,
  cols: number,
  t: ArrayLike<number>,
  ignore: number,
): { loss: Float64Array; lse: Float64Array } {
  const loss = new Float64Array(rows),
    lse = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c] - m);
    lse[r] = m + Math.log(s);
    loss[r] = t[r] === ignore ? 0 : m - x[r * cols + t[r]] + Math.log(s);
  }
  return { loss, lse };
}

/** g[r]·(softmax − onehot) per row, zero rows for ignored targets. */
export function refCrossEntropyBackward(
  x: ArrayLike<number>,
  rows: number,
  cols: number,
  t: ArrayLike<number>,
  g: ArrayLike<number>,
  ignore: number,
): Float64Array {
  const out = new Float64Array(rows * cols);
  const p = refSoftmax(x, [rows, cols], false);
  for (let r = 0; r < rows; r++) {
    if (t[r] === ignore) continue;
    for (let c = 0; c < cols; c++) out[r * cols + c] = g[r] * (p[r * cols + c] - (c === t[r] ? 1 : 0));
  }
  return out;
}

/** Layer norm over the last axis in float64 (biased variance, two passes), with per-row mean and rstd. */
export function refLayerNorm(
  x: ArrayLike<number>,
  rows: number,
  cols: number,
  gamma: ArrayLike<number> | null,
  beta: ArrayLike<number> | null,
  eps: number,
): { y: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(rows * cols),
    mean = new Float64Array(rows),
    rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[r * cols + c];
    const mu = s / cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c] - mu) ** 2;
    const rs = 1 / Math.sqrt(v / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let c = 0; c < cols; c++) {
      y[r * cols + c] = (x[r * cols + c] - mu) * rs * (gamma ? gamma[c] : 1) + (beta ? beta[c] : 0);
    }
  }
  return { y, mean, rstd };
}

/**
 * Layer-norm backward in float64 by the chain rule through mean and variance, written independently of the
 * kernels' closed form: dx_j = Σ_k dy_k γ_k ∂x̂_k/∂x_j with ∂x̂_k/∂x_j = rstd(δ_kj − 1/C) − x̂_k x̂_j rstd / C.
 */
export function refLayerNormBackward(
  x: ArrayLike<number>,
  rows: number,
  cols: number,
  gamma: ArrayLike<number> | null,
  dy: ArrayLike<number>,
  eps: number,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const { y: xh, rstd } = refLayerNorm(x, rows, cols, null, null, eps);
  const dx = new Float64Array(rows * cols),
    dgamma = new Float64Array(cols),
    dbeta = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols,
      rs = rstd[r];
    for (let j = 0; j < cols; j++) {
      let acc = 0;
      for (let k = 0; k < cols; k++) {
        const jac = rs * ((k === j ? 1 : 0) - 1 / cols) - (xh[o + k] * xh[o + j] * rs) / cols;
        acc += dy[o + k] * (gamma ? gamma[k] : 1) * jac;
      }
      dx[o + j] = acc;
      dgamma[j] += dy[o + j] * xh[o + j];
      dbeta[j] += dy[o + j];
    }
  }
  return { dx, dgamma, dbeta };
}

/** dy · gelu′(x) for the tanh GELU, in float64 from the tanh form. */
export function refGeluBackward(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => {
    const th = Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v ** 3));
    return dy[i] * (0.5 * (1 + th) + 0.5 * v * (1 - th * th) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * v * v));
  });
}

export { rng } from "../../../../test/helpers/rng.js";

/** n uniform values in [lo, hi), rounded to float32. */
export function uniform(r: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** n integers in [lo, hi]. */
export function ints(r: () => number, n: number, lo: number, hi: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + Math.floor(r() * (hi - lo + 1));
  return out;
}
