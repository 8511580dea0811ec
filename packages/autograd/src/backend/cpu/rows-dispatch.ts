import { crossEntropyBackwardRows, crossEntropyRows, logSoftmaxRows, softmaxRows } from "./kernels/rows.js";

type F = Float32Array | Float64Array;

/** Softmax or log-softmax of each row of a [rows, cols] matrix (fused single-pass kernels). */
export function softmaxRowsK(x: F, out: F, rows: number, cols: number, log: boolean): void {
  if (rows === 0 || cols === 0) return;
  if (log) logSoftmaxRows(x, out, rows, cols);
  else softmaxRows(x, out, rows, cols);
}

/** Per-row negative log-likelihood and log-sum-exp. */
export function crossEntropyRowsK(x: F, t: Int32Array, rows: number, cols: number, ignore: number, loss: F, lse: F): void {
  if (rows === 0) return;
  crossEntropyRows(x, t, rows, cols, ignore, loss, lse);
}

/** dLogits = g * (softmax - onehot) per row; zero rows where the target is ignored. */
export function crossEntropyBackwardRowsK(x: F, t: Int32Array, lse: F, g: F, out: F, rows: number, cols: number, ignore: number): void {
  if (rows === 0) return;
  crossEntropyBackwardRows(x, t, lse, g, out, rows, cols, ignore);
}

