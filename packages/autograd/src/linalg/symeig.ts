/**
 * Symmetric eigendecomposition (float64, row-major): Householder reduction to tridiagonal form
 * followed by the implicit QL iteration with Wilkinson-type shifts, accumulating eigenvectors.
 */
import { checkDim, checkFinite, checkLength, makeHouseholder } from "./checks.js";

/** Eigenvalues (ascending) and the matching unit eigenvectors stored as the columns of an n×n row-major matrix. */
export interface SymEigResult {
  values: Float64Array;
  vectors: Float64Array;
}

/** Options for the symmetric eigensolver. */
export interface SymEigOptions {
  /** Largest accepted |a_ij − a_ji| relative to max|a| (default 1e-8); the two triangles are averaged. */
  symmetryTol?: number;
  /** QL sweeps allowed per eigenvalue before giving up (default 60). */
  maxIterations?: number;
}

/**
 * Eigen-decomposition A = V·diag(values)·Vᵀ of a symmetric n×n matrix. Values ascend; column j of
 * `vectors` is the unit eigenvector of values[j], signed so that its largest-magnitude entry is positive.
 */
export function symEigRaw(a: Float64Array, n: number, options: SymEigOptions = {}): SymEigResult {
  const fn = "symEigRaw";
  checkDim(fn, "n", n);
  checkLength(fn, a, n * n, `n=${n} × n=${n}`);
  checkFinite(fn, a);
  const tol = options.symmetryTol ?? 1e-8;
  const maxIter = options.maxIterations ?? 60;
  let amax = 0;
  for (let i = 0; i < n * n; i++) amax = Math.max(amax, Math.abs(a[i]));
  // Scale by a power of two (exact) so max|w| is in [0.5, 1]: keeps the iteration clear of under/overflow.
  const scale = amax > 0 ? 2 ** Math.min(1000, Math.max(-1000, Math.ceil(Math.log2(amax)))) : 1;
  const inv = 1 / scale;
  const w = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    w[i * n + i] = a[i * n + i] * inv;
    for (let j = i + 1; j < n; j++) {
      const x = a[i * n + j];
      const y = a[j * n + i];
      if (Math.abs(x - y) > tol * amax) {
        throw new Error(
          `${fn}: matrix is not symmetric: a[${i},${j}]=${x} but a[${j},${i}]=${y}; ` +
            `expected |difference| ≤ ${tol}·max|a| = ${tol * amax}`,
        );
      }
      const s = 0.5 * (x + y) * inv;
      w[i * n + j] = s;
      w[j * n + i] = s;
    }
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  // zt holds eigenvectors as rows (zt[i*n + k] = component k of vector i) so rotations touch contiguous memory.
  const zt = tridiagonalize(w, n, d, e);
  tql(fn, d, e, zt, n, maxIter);
  const order = Array.from({ length: n }, (_, i) => i).sort((p, q) => d[p] - d[q] || p - q);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const src = order[j];
    values[j] = d[src] * scale;
    let big = 0;
    let sign = 1;
    for (let k = 0; k < n; k++) {
      const x = zt[src * n + k];
      if (Math.abs(x) > big) {
        big = Math.abs(x);
        sign = x < 0 ? -1 : 1;
      }
    }
    for (let k = 0; k < n; k++) vectors[k * n + j] = sign * zt[src * n + k];
  }
  return { values, vectors };
}

/**
 * Householder tridiagonalisation of the symmetric matrix w (destroyed): fills the diagonal d and the
 * sub-diagonal e (e[i] couples i and i+1) and returns Qᵀ (rows are the columns of Q) with A = Q·T·Qᵀ.
 */
function tridiagonalize(w: Float64Array, n: number, d: Float64Array, e: Float64Array): Float64Array {
  const taus = new Float64Array(Math.max(n, 1));
  const p = new Float64Array(n);
  const v = new Float64Array(n);
  for (let k = 0; k + 2 < n; k++) {
    const len = n - k - 1;
    const base = k + 1;
    const [beta, tau] = makeHouseholder(w, base * n + k, len, n);
    taus[k] = tau;
    d[k] = w[k * n + k];
    e[k] = beta;
    if (tau === 0) continue;
    // v = (1, w[base+1..n-1, k]); trailing block B = w[base:, base:].
    v[0] = 1;
    for (let i = 1; i < len; i++) v[i] = w[(base + i) * n + k];
    // p = tau·B·v
    let pv = 0;
    for (let i = 0; i < len; i++) {
      const row = (base + i) * n + base;
      let s = 0;
      for (let j = 0; j < len; j++) s += w[row + j] * v[j];
      p[i] = tau * s;
      pv += p[i] * v[i];
    }
    // w' = p − (tau/2)(pᵀv)·v; B ← B − v·w'ᵀ − w'·vᵀ
    const kk = 0.5 * tau * pv;
    for (let i = 0; i < len; i++) p[i] -= kk * v[i];
    for (let i = 0; i < len; i++) {
      const vi = v[i];
      const pi = p[i];
      const row = (base + i) * n + base;
      for (let j = 0; j < len; j++) w[row + j] -= vi * p[j] + pi * v[j];
    }
  }
  if (n >= 2) {
    d[n - 2] = w[(n - 2) * n + n - 2];
    e[n - 2] = w[(n - 1) * n + n - 2];
  }
  if (n >= 1) d[n - 1] = w[(n - 1) * n + n - 1];
  e[Math.max(n - 1, 0)] = 0;
  // Q = H_0 H_1 … H_{n−3}; build Q, then return its transpose.
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  const acc = new Float64Array(n);
  for (let k = n - 3; k >= 0; k--) {
    const tau = taus[k];
    if (tau === 0) continue;
    const base = k + 1;
    for (let j = base; j < n; j++) acc[j] = q[base * n + j];
    for (let i = base + 1; i < n; i++) {
      const vi = w[i * n + k];
      if (vi === 0) continue;
      for (let j = base; j < n; j++) acc[j] += vi * q[i * n + j];
    }
    for (let j = base; j < n; j++) {
      acc[j] *= tau;
      q[base * n + j] -= acc[j];
    }
    for (let i = base + 1; i < n; i++) {
      const vi = w[i * n + k];
      if (vi === 0) continue;
      for (let j = base; j < n; j++) q[i * n + j] -= acc[j] * vi;
    }
  }
  const qt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) qt[j * n + i] = q[i * n + j];
  return qt;
}

/** Implicit QL iteration on (d, e); rotations are applied to the rows of zt. */
function tql(fn: string, d: Float64Array, e: Float64Array, zt: Float64Array, n: number, maxIter: number): void {
  const eps = Number.EPSILON;
  // Absolute deflation floor: perturbations below ε·‖T‖ move eigenvalues by at most that much (Weyl).
  let tnorm = 0;
  for (let i = 0; i < n; i++) tnorm = Math.max(tnorm, Math.abs(d[i]) + Math.abs(e[i]) + (i > 0 ? Math.abs(e[i - 1]) : 0));
  const floor = eps * tnorm;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    for (;;) {
      let m = l;
      for (; m < n - 1; m++) {
        const dd = Math.abs(d[m]) + Math.abs(d[m + 1]);
        if (Math.abs(e[m]) <= eps * dd || Math.abs(e[m]) <= floor) break;
      }
      if (m === l) break;
      if (++iter > maxIter) {
        throw new Error(
          `${fn}: QL iteration did not converge for eigenvalue ${l} of ${n} after ${maxIter} sweeps; ` +
            `expected convergence within maxIterations=${maxIter}`,
        );
      }
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let deflatedEarly = false;
      for (let i = m - 1; i >= l; i--) {
        const f = s * e[i];
        const b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          d[i + 1] -= p;
          e[m] = 0;
          deflatedEarly = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        const ri = i * n;
        const rj = ri + n;
        for (let k = 0; k < n; k++) {
          const zi = zt[ri + k];
          const zj = zt[rj + k];
          zt[rj + k] = s * zi + c * zj;
          zt[ri + k] = c * zi - s * zj;
        }
      }
      if (deflatedEarly) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
}
