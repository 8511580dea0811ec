/**
 * Dense LU factorisation with partial (row) pivoting on the host, for the linear systems of implicit methods:
 * P·A = L·U, then A x = b and Aᵀ x = b by forward and back substitution.
 */

/** An LU factorisation of an n×n matrix. */
export interface LU {
  readonly n: number;
  /** L (unit diagonal, below) and U (on and above the diagonal), row-major. */
  readonly lu: Float64Array;
  /** Row k of P·A is row perm[k] of A. */
  readonly perm: Int32Array;
}

/**
 * Factorises the row-major n×n matrix `a` (not modified). Throws naming the column when a pivot is exactly zero
 * or not finite (a singular or non-finite matrix).
 */
export function luFactor(a: ArrayLike<number>, n: number, where = "luFactor"): LU {
  if (a.length !== n * n) throw new Error(`${where}: matrix has ${a.length} entries; expected ${n}×${n} = ${n * n}`);
  const lu = Float64Array.from(a);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  for (let k = 0; k < n; k++) {
    let p = k,
      best = Math.abs(lu[k * n + k]);
    for (let i = k + 1; i < n; i++) {
      const v = Math.abs(lu[i * n + k]);
      if (v > best) {
        best = v;
        p = i;
      }
    }
    if (!(best > 0) || !Number.isFinite(best)) {
      throw new Error(
        `${where}: the matrix is singular or not finite (no usable pivot in column ${k} of ${n}: largest |entry| ${best}); expected an invertible matrix (try a smaller step or check the Jacobian)`,
      );
    }
    if (p !== k) {
      for (let j = 0; j < n; j++) {
        const tmp = lu[k * n + j];
        lu[k * n + j] = lu[p * n + j];
        lu[p * n + j] = tmp;
      }
      const tp = perm[k];
      perm[k] = perm[p];
      perm[p] = tp;
    }
    const piv = lu[k * n + k];
    for (let i = k + 1; i < n; i++) {
      const m = lu[i * n + k] / piv;
      lu[i * n + k] = m;
      if (m !== 0) for (let j = k + 1; j < n; j++) lu[i * n + j] -= m * lu[k * n + j];
    }
  }
  return { n, lu, perm };
}

/** Solves A x = b with A's factorisation; writes x into `out` (may be a new array) and returns it. */
export function luSolve(f: LU, b: ArrayLike<number>, out: Float64Array = new Float64Array(f.n)): Float64Array {
  const { n, lu, perm } = f;
  const x = out;
  for (let i = 0; i < n; i++) {
    let s = b[perm[i]];
    for (let j = 0; j < i; j++) s -= lu[i * n + j] * x[j];
    x[i] = s;
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = x[i];
    for (let j = i + 1; j < n; j++) s -= lu[i * n + j] * x[j];
    x[i] = s / lu[i * n + i];
  }
  return x;
}

/** Solves Aᵀ x = b with A's factorisation (Uᵀ Lᵀ P x = b). */
export function luSolveTransposed(f: LU, b: ArrayLike<number>): Float64Array {
  const { n, lu, perm } = f;
  const z = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    let s = z[i];
    for (let j = 0; j < i; j++) s -= lu[j * n + i] * z[j];
    z[i] = s / lu[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = z[i];
    for (let j = i + 1; j < n; j++) s -= lu[j * n + i] * z[j];
    z[i] = s;
  }
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[perm[i]] = z[i];
  return x;
}
