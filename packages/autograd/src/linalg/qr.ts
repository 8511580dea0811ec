/**
 * Householder QR decomposition of batches of real matrices (float64, row-major).
 *
 * A = Q·R with Q orthogonal (orthonormal columns) and R upper triangular. Each reflector is
 * H = I − τ·v·vᵀ chosen as in LAPACK's dgeqrf (β = −sign(α)·‖x‖), so the diagonal of R may have
 * either sign; `qrPositive` normalises it to be non-negative.
 */
import { checkDim, checkFinite, checkLength, makeHouseholder } from "./checks.js";

/** 'reduced': Q is m×k and R is k×n with k = min(m, n); 'complete': Q is m×m and R is m×n. */
export type QrMode = "reduced" | "complete";

/** Result of a (batched) QR decomposition; `q` and `r` are stacked row-major matrices. */
export interface QrResult {
  q: Float64Array;
  r: Float64Array;
}

/** Shapes of Q and R for an m×n input in the given mode: [qRows, qCols, rRows, rCols]. */
export function qrShapes(m: number, n: number, mode: QrMode): [number, number, number, number] {
  const k = Math.min(m, n);
  return mode === "complete" ? [m, m, m, n] : [m, k, k, n];
}

/** Householder QR of `batch` stacked m×n row-major matrices; returns stacked Q and R. */
export function qrRaw(a: Float64Array, batch: number, m: number, n: number, mode: QrMode = "reduced"): QrResult {
  const fn = "qrRaw";
  checkDim(fn, "batch", batch);
  checkDim(fn, "m", m);
  checkDim(fn, "n", n);
  if (mode !== "reduced" && mode !== "complete") {
    throw new Error(`${fn}: mode must be 'reduced' or 'complete', got '${String(mode)}'`);
  }
  checkLength(fn, a, batch * m * n, `batch=${batch} × m=${m} × n=${n}`);
  checkFinite(fn, a);
  const [qr, qc, rr, rc] = qrShapes(m, n, mode);
  const q = new Float64Array(batch * qr * qc);
  const r = new Float64Array(batch * rr * rc);
  const p = Math.min(m, n);
  const w = new Float64Array(m * n);
  const tau = new Float64Array(p);
  const acc = new Float64Array(Math.max(n, qc));
  for (let b = 0; b < batch; b++) {
    w.set(a.subarray(b * m * n, (b + 1) * m * n));
    // Factorisation: reflector k zeroes column k below the diagonal; v's tail is kept in place.
    for (let k = 0; k < p; k++) {
      const [beta, t] = makeHouseholder(w, k * n + k, m - k, n);
      tau[k] = t;
      if (t !== 0) {
        for (let j = k + 1; j < n; j++) acc[j] = w[k * n + j];
        for (let i = k + 1; i < m; i++) {
          const vi = w[i * n + k];
          if (vi === 0) continue;
          const row = i * n;
          for (let j = k + 1; j < n; j++) acc[j] += vi * w[row + j];
        }
        for (let j = k + 1; j < n; j++) {
          acc[j] *= t;
          w[k * n + j] -= acc[j];
        }
        for (let i = k + 1; i < m; i++) {
          const vi = w[i * n + k];
          if (vi === 0) continue;
          const row = i * n;
          for (let j = k + 1; j < n; j++) w[row + j] -= acc[j] * vi;
        }
      }
      w[k * n + k] = beta;
    }
    // R: upper triangle of the work matrix.
    const rOff = b * rr * rc;
    for (let i = 0; i < Math.min(rr, m); i++) {
      for (let j = i; j < n; j++) r[rOff + i * rc + j] = w[i * n + j];
    }
    // Q = H_0 H_1 … H_{p−1} applied to the first qc columns of I, accumulated backwards.
    const qOff = b * qr * qc;
    for (let i = 0; i < qc; i++) q[qOff + i * qc + i] = 1;
    for (let k = p - 1; k >= 0; k--) {
      const t = tau[k];
      if (t === 0) continue;
      for (let j = k; j < qc; j++) acc[j] = q[qOff + k * qc + j];
      for (let i = k + 1; i < m; i++) {
        const vi = w[i * n + k];
        if (vi === 0) continue;
        const row = qOff + i * qc;
        for (let j = k; j < qc; j++) acc[j] += vi * q[row + j];
      }
      for (let j = k; j < qc; j++) {
        acc[j] *= t;
        q[qOff + k * qc + j] -= acc[j];
      }
      for (let i = k + 1; i < m; i++) {
        const vi = w[i * n + k];
        if (vi === 0) continue;
        const row = qOff + i * qc;
        for (let j = k; j < qc; j++) q[row + j] -= acc[j] * vi;
      }
    }
  }
  return { q, r };
}

/**
 * QR with the sign convention diag(R) ≥ 0: wherever R[i,i] < 0, row i of R and column i of Q are
 * negated (Q·R is unchanged). For full-rank inputs this makes the factorisation unique, which is what
 * Lyapunov-exponent estimates need (log diag R of successive re-orthonormalisations). Rank-deficient
 * inputs may still have zero diagonal entries; their columns of Q are whatever Householder produced.
 */
export function qrPositive(a: Float64Array, batch: number, m: number, n: number, mode: QrMode = "reduced"): QrResult {
  const res = qrRaw(a, batch, m, n, mode);
  const [qr, qc, rr, rc] = qrShapes(m, n, mode);
  const p = Math.min(m, n);
  for (let b = 0; b < batch; b++) {
    const qOff = b * qr * qc;
    const rOff = b * rr * rc;
    for (let i = 0; i < p; i++) {
      if (res.r[rOff + i * rc + i] >= 0) continue;
      for (let j = i; j < rc; j++) res.r[rOff + i * rc + j] = -res.r[rOff + i * rc + j];
      for (let row = 0; row < qr; row++) res.q[qOff + row * qc + i] = -res.q[qOff + row * qc + i];
    }
  }
  return res;
}
