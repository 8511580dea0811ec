import { eigvalsBatchedRaw, qrPositive, qrRaw, symEigRaw, type QrMode } from "./linalg/index.js";
import { getBackend } from "./backend/registry.js";
import { fmt } from "./shape.js";
import { Tensor } from "./tensor.js";
import { requireFloat } from "./ops/util.js";

function asF64(x: Tensor): Float64Array {
  const d = x.data();
  return d instanceof Float64Array ? d : Float64Array.from(d);
}

function out(data: Float64Array, shape: number[], like: Tensor): Tensor {
  const be = getBackend();
  const arr = like.dtype === "float64" ? data : Float32Array.from(data);
  return new Tensor(be.fromArray(arr, like.dtype), shape, like.dtype, be);
}

function matrixDims(op: string, x: Tensor, square: boolean): { batch: number; m: number; n: number; lead: number[] } {
  requireFloat(op, x);
  if (x.rank < 2) throw new Error(`${op}: got ${fmt(x.shape)}; expected a matrix or a batch of matrices (rank >= 2)`);
  const m = x.shape[x.rank - 2],
    n = x.shape[x.rank - 1];
  if (square && m !== n) throw new Error(`${op}: got ${fmt(x.shape)}; expected square matrices`);
  const lead = x.shape.slice(0, -2);
  return { batch: lead.reduce((a, b) => a * b, 1), m, n, lead };
}

/** Householder QR of a matrix or batch (computed in float64). `positive` makes diag(R) ≥ 0. Not differentiable. */
export function qr(x: Tensor, opts: { mode?: QrMode; positive?: boolean } = {}): { q: Tensor; r: Tensor } {
  const { batch, m, n, lead } = matrixDims("linalg.qr", x, false);
  const mode = opts.mode ?? "reduced";
  const res = (opts.positive ? qrPositive : qrRaw)(asF64(x), batch, m, n, mode);
  const k = mode === "reduced" ? Math.min(m, n) : m;
  return { q: out(res.q, [...lead, m, k], x), r: out(res.r, [...lead, k, n], x) };
}

/** Eigenvalues of general real square matrices as real and imaginary parts (descending |λ|, conjugate pairs adjacent). */
export function eigvals(x: Tensor): { re: Tensor; im: Tensor } {
  const { batch, n, lead } = matrixDims("linalg.eigvals", x, true);
  const res = eigvalsBatchedRaw(asF64(x), batch, n);
  return { re: out(res.re, [...lead, n], x), im: out(res.im, [...lead, n], x) };
}

/** Eigen-decomposition of a symmetric matrix: ascending values and eigenvectors as columns. */
export function symEig(x: Tensor): { values: Tensor; vectors: Tensor } {
  const { n, lead } = matrixDims("linalg.symEig", x, true);
  if (lead.length > 0) throw new Error(`linalg.symEig: got ${fmt(x.shape)}; expected a single n×n matrix`);
  const res = symEigRaw(asF64(x), n);
  return { values: out(res.values, [n], x), vectors: out(res.vectors, [n, n], x) };
}
