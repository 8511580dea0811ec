import {
  crossEntropyBackwardRows, crossEntropyRows, geluTanh, geluTanhBackward, layerNormBackwardRows, layerNormRows, logSoftmaxRows,
  softmaxRows,
} from "./kernels/rows.js";

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

/** Layer norm of each row with optional [cols] gamma/beta; writes per-row mean and rstd. */
export function layerNormRowsK(x: F, gamma: F | null, beta: F | null, out: F, mean: F, rstd: F, rows: number, cols: number, eps: number): void {
  if (rows === 0) return;
  layerNormRows(x, gamma, beta, out, mean, rstd, rows, cols, eps);
}

/** Layer-norm backward: dx, and dgamma/dbeta accumulated into the given zeroed arrays when not null. */
export function layerNormBackwardRowsK(
  x: F, gamma: F | null, mean: F, rstd: F, dy: F, dx: F, dgamma: F | null, dbeta: F | null, rows: number, cols: number,
): void {
  if (rows === 0) return;
  layerNormBackwardRows(x, gamma, mean, rstd, dy, dx, dgamma, dbeta, rows, cols);
}

/** GPT-2 tanh GELU over n values. */
export function geluK(x: F, out: F, n: number): void {
  geluTanh(x, out, n);
}

/** dx = dy · gelu′(x) over n values. */
export function geluBackwardK(x: F, dy: F, dx: F, n: number): void {
  geluTanhBackward(x, dy, dx, n);
}
