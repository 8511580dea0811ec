/** Input checks shared by the linear-algebra kernels. */

/** Throws unless `v` is a non-negative integer (a dimension or batch count). */
export function checkDim(fn: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) {
    throw new Error(`${fn}: ${name} must be a non-negative integer, got ${v}`);
  }
}

/** Throws unless `a` has exactly `expected` elements. */
export function checkLength(fn: string, a: ArrayLike<number>, expected: number, what: string): void {
  if (a.length !== expected) {
    throw new Error(`${fn}: input has ${a.length} elements, expected ${expected} (${what})`);
  }
}

/** Throws if any element of `a` is NaN or infinite. */
export function checkFinite(fn: string, a: ArrayLike<number>): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) {
      throw new Error(`${fn}: input element ${i} is ${a[i]}; expected only finite values`);
    }
  }
}

/**
 * Builds a Householder reflector H = I - tau·v·vᵀ (v[0] = 1) with H·x = beta·e₁ for the strided
 * vector x = a[off], a[off+stride], ... (len entries). On return the tail of x is overwritten by
 * v[1..]; the head is left untouched. Returns [beta, tau]; tau = 0 means H = I (x already a multiple of e₁).
 */
export function makeHouseholder(a: Float64Array, off: number, len: number, stride: number): [number, number] {
  const alpha = a[off];
  if (len <= 1) return [alpha, 0];
  let tailMax = 0;
  for (let i = 1; i < len; i++) tailMax = Math.max(tailMax, Math.abs(a[off + i * stride]));
  if (tailMax === 0) return [alpha, 0];
  // Work on x·f with f a power of two making max|x| ≈ 1: exact, and it keeps subnormal inputs from
  // losing the precision of v (v and tau are invariant under scaling x).
  const big = Math.max(tailMax, Math.abs(alpha));
  const f = 2 ** -Math.max(-1000, Math.min(1000, Math.ceil(Math.log2(big))));
  const as = alpha * f;
  let ss = 0;
  for (let i = 1; i < len; i++) {
    const t = a[off + i * stride] * f;
    ss += t * t;
  }
  const norm = Math.sqrt(as * as + ss);
  const betaS = as >= 0 ? -norm : norm;
  const tau = (betaS - as) / betaS;
  const denom = as - betaS; // |denom| ≥ |x_i·f|, so v_i ≤ 1
  for (let i = 1; i < len; i++) a[off + i * stride] = (a[off + i * stride] * f) / denom;
  return [betaS / f, tau];
}
