/**
 * Eigenvalues of general real square matrices (float64, row-major).
 *
 * Pipeline: optional diagonal balancing (powers of two, so exact), reduction to upper Hessenberg
 * form by Householder similarity transforms, then the Francis implicit double-shift QR iteration with
 * deflation on small sub-diagonal entries and ad-hoc exceptional shifts every 10 stalled iterations.
 * Only eigenvalues are computed (no Schur vectors).
 *
 * Ordering rule of the result: descending modulus |λ|; ties by descending real part; each complex
 * conjugate pair is emitted as two adjacent entries, the one with positive imaginary part first.
 * Real eigenvalues have im exactly 0 and a pair's two entries are exact conjugates.
 */
import { checkDim, checkFinite, checkLength, makeHouseholder } from "./checks.js";

/** Real and imaginary parts of the eigenvalues (length n, or batch·n when batched). */
export interface EigvalsResult {
  re: Float64Array;
  im: Float64Array;
}

/** Options for the general eigenvalue solver. */
export interface EigvalsOptions {
  /** Apply diagonal balancing first (default true); it improves accuracy for badly scaled matrices. */
  balance?: boolean;
  /** Total budget of QR sweeps per matrix (default 30·max(10, n)); exceeding it throws. */
  maxIterations?: number;
}

/** Eigenvalues of one n×n real matrix, sorted by descending |λ| with conjugate pairs adjacent (+im first). */
export function eigvalsRaw(a: Float64Array, n: number, options: EigvalsOptions = {}): EigvalsResult {
  const fn = "eigvalsRaw";
  checkDim(fn, "n", n);
  checkLength(fn, a, n * n, `n=${n} × n=${n}`);
  checkFinite(fn, a);
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  eigvalsInto(fn, Float64Array.from(a), n, options, re, im, 0);
  return { re, im };
}

/** Eigenvalues of `batch` stacked n×n real matrices; result slices [b·n, (b+1)·n) follow eigvalsRaw's order. */
export function eigvalsBatchedRaw(a: Float64Array, batch: number, n: number, options: EigvalsOptions = {}): EigvalsResult {
  const fn = "eigvalsBatchedRaw";
  checkDim(fn, "batch", batch);
  checkDim(fn, "n", n);
  checkLength(fn, a, batch * n * n, `batch=${batch} × n=${n} × n=${n}`);
  checkFinite(fn, a);
  const re = new Float64Array(batch * n);
  const im = new Float64Array(batch * n);
  for (let b = 0; b < batch; b++) {
    const h = Float64Array.from(a.subarray(b * n * n, (b + 1) * n * n));
    eigvalsInto(`${fn} (matrix ${b})`, h, n, options, re, im, b * n);
  }
  return { re, im };
}

/** Works in place on h (destroyed); writes sorted eigenvalues into re/im at `off`. */
function eigvalsInto(
  fn: string,
  h: Float64Array,
  n: number,
  options: EigvalsOptions,
  re: Float64Array,
  im: Float64Array,
  off: number,
): void {
  if (n === 0) return;
  // Scale by powers of two (exact) so max|h| is in [0.5, 1], before and again after balancing (which
  // can shrink or grow all entries); eigenvalues are scaled back at the end.
  let scale = normalizeScale(h);
  if (options.balance ?? true) {
    balance(h, n);
    scale *= normalizeScale(h);
  }
  hessenberg(h, n);
  const maxIter = options.maxIterations ?? 30 * Math.max(10, n);
  const wr = new Float64Array(n);
  const wi = new Float64Array(n);
  francisQR(fn, h, n, maxIter, wr, wi);
  for (let i = 0; i < n; i++) {
    wr[i] *= scale;
    wi[i] *= scale;
  }
  sortEigenvalues(wr, wi, n, re, im, off);
}

/** Divides h in place by the power of two 2^k with max|h|/2^k in (0.5, 1]; returns 2^k. */
function normalizeScale(h: Float64Array): number {
  let amax = 0;
  for (let i = 0; i < h.length; i++) amax = Math.max(amax, Math.abs(h[i]));
  if (amax === 0) return 1;
  const scale = 2 ** Math.min(1000, Math.max(-1000, Math.ceil(Math.log2(amax))));
  if (scale !== 1) for (let i = 0; i < h.length; i++) h[i] /= scale;
  return scale;
}

/** Diagonal similarity scaling D⁻¹AD with powers of two so rows and columns have comparable norms. */
function balance(a: Float64Array, n: number): void {
  const factor = 0.95;
  for (let sweep = 0; sweep < 200; sweep++) {
    let changed = false;
    for (let i = 0; i < n; i++) {
      let c = 0;
      let r = 0;
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        c += Math.abs(a[j * n + i]);
        r += Math.abs(a[i * n + j]);
      }
      if (c === 0 || r === 0) continue;
      const total = c + r;
      let f = 1;
      let g = r / 2;
      while (c < g && f < 2 ** 500) {
        f *= 2;
        c *= 4;
      }
      g = r * 2;
      while (c >= g && f > 2 ** -500) {
        f /= 2;
        c /= 4;
      }
      if ((c + r) / f < factor * total) {
        changed = true;
        const inv = 1 / f;
        for (let j = 0; j < n; j++) a[i * n + j] *= inv;
        for (let j = 0; j < n; j++) a[j * n + i] *= f;
      }
    }
    if (!changed) return;
  }
}

/** In-place reduction to upper Hessenberg form by Householder similarity transforms. */
function hessenberg(a: Float64Array, n: number): void {
  const v = new Float64Array(n);
  const acc = new Float64Array(n);
  for (let k = 0; k + 2 < n; k++) {
    const len = n - k - 1;
    const [beta, tau] = makeHouseholder(a, (k + 1) * n + k, len, n);
    if (tau === 0) continue;
    v[0] = 1;
    for (let i = 1; i < len; i++) v[i] = a[(k + 1 + i) * n + k];
    // Column k becomes (…, beta, 0, …, 0).
    a[(k + 1) * n + k] = beta;
    for (let i = k + 2; i < n; i++) a[i * n + k] = 0;
    // Left: A[k+1:, k+1:] ← H·A[k+1:, k+1:].
    acc.fill(0, k + 1, n);
    for (let i = 0; i < len; i++) {
      const vi = v[i];
      if (vi === 0) continue;
      const row = (k + 1 + i) * n;
      for (let j = k + 1; j < n; j++) acc[j] += vi * a[row + j];
    }
    for (let i = 0; i < len; i++) {
      const s = tau * v[i];
      if (s === 0) continue;
      const row = (k + 1 + i) * n;
      for (let j = k + 1; j < n; j++) a[row + j] -= s * acc[j];
    }
    // Right: A[:, k+1:] ← A[:, k+1:]·H.
    for (let i = 0; i < n; i++) {
      const row = i * n + k + 1;
      let s = 0;
      for (let j = 0; j < len; j++) s += a[row + j] * v[j];
      if (s === 0) continue;
      s *= tau;
      for (let j = 0; j < len; j++) a[row + j] -= s * v[j];
    }
  }
}

/** Eigenvalues of the 2×2 block [[a, b], [c, d]] written into wr/wi at i and i+1. */
function eig2x2(a: number, b: number, c: number, d: number, wr: Float64Array, wi: Float64Array, i: number): void {
  const p = 0.5 * (a - d);
  const bc = b * c;
  const disc = p * p + bc;
  if (disc >= 0) {
    const sq = Math.sqrt(disc);
    const z = p >= 0 ? p + sq : p - sq;
    wr[i] = d + z;
    wr[i + 1] = z !== 0 ? d - bc / z : d;
    wi[i] = 0;
    wi[i + 1] = 0;
  } else {
    const mid = d + p;
    const s = Math.sqrt(-disc);
    wr[i] = mid;
    wr[i + 1] = mid;
    wi[i] = s;
    wi[i + 1] = -s;
  }
}

/** Francis double-shift QR on an upper Hessenberg matrix; eigenvalues only. */
function francisQR(fn: string, h: Float64Array, n: number, maxIter: number, wr: Float64Array, wi: Float64Array): void {
  const eps = Number.EPSILON;
  // Frobenius norm of H: a sub-diagonal entry below ε·‖H‖ is set to zero (a backward-stable
  // perturbation), besides the usual test relative to its two diagonal neighbours.
  let fro = 0;
  for (let i = 0; i < n; i++) {
    for (let j = Math.max(0, i - 1); j < n; j++) fro += h[i * n + j] * h[i * n + j];
  }
  const anorm = Math.sqrt(fro);
  const small = anorm === 0 ? Number.MIN_VALUE : anorm * eps;
  let hi = n - 1;
  let stalled = 0;
  let total = 0;
  while (hi >= 0) {
    // Find the start l of the unreduced block ending at hi.
    let l = hi;
    while (l > 0) {
      let s = Math.abs(h[(l - 1) * n + l - 1]) + Math.abs(h[l * n + l]);
      if (s === 0) s = anorm;
      if (Math.abs(h[l * n + l - 1]) <= eps * s || Math.abs(h[l * n + l - 1]) <= small) {
        h[l * n + l - 1] = 0;
        break;
      }
      l--;
    }
    if (l === hi) {
      wr[hi] = h[hi * n + hi];
      wi[hi] = 0;
      hi -= 1;
      stalled = 0;
      continue;
    }
    if (l === hi - 1) {
      eig2x2(h[l * n + l], h[l * n + hi], h[hi * n + l], h[hi * n + hi], wr, wi, l);
      hi -= 2;
      stalled = 0;
      continue;
    }
    if (total >= maxIter) {
      throw new Error(
        `${fn}: QR iteration did not converge after ${total} iterations ` +
          `(${hi + 1} of ${n} eigenvalues still unresolved, active block rows ${l}..${hi}); ` +
          `expected convergence within maxIterations=${maxIter}`,
      );
    }
    total++;
    stalled++;
    // Shifts σ₁, σ₂ enter only through s = σ₁ + σ₂ and t = σ₁σ₂. Normally they are the eigenvalues of
    // the trailing 2×2 block, except that two real ones are replaced by the one nearer h[hi, hi]
    // used twice. After 10 (20, 30, …) iterations without deflation an exceptional complex pair
    // built from the sub-diagonal near the bottom (top) of the block breaks possible cycles.
    let s: number;
    let t: number;
    if (stalled % 10 === 0) {
      const top = stalled % 20 === 0;
      const w = top
        ? Math.abs(h[(l + 1) * n + l]) + Math.abs(h[(l + 2) * n + l + 1])
        : Math.abs(h[hi * n + hi - 1]) + Math.abs(h[(hi - 1) * n + hi - 2]);
      const c = 0.75 * w + (top ? h[l * n + l] : h[hi * n + hi]);
      s = 2 * c;
      t = c * c + 0.4375 * w * w;
    } else {
      const a11 = h[(hi - 1) * n + hi - 1];
      const a12 = h[(hi - 1) * n + hi];
      const a21 = h[hi * n + hi - 1];
      const a22 = h[hi * n + hi];
      const p = 0.5 * (a11 - a22);
      const disc = p * p + a12 * a21;
      if (disc >= 0) {
        const sq = Math.sqrt(disc);
        const mid = 0.5 * (a11 + a22);
        const r1 = mid + sq;
        const r2 = mid - sq;
        const r = Math.abs(r1 - a22) <= Math.abs(r2 - a22) ? r1 : r2;
        s = 2 * r;
        t = r * r;
      } else {
        s = a11 + a22;
        t = a11 * a22 - a12 * a21;
      }
    }
    // First column of (H − σ₁I)(H − σ₂I) for a sweep starting at row m. Start at the largest m ≥ l
    // where the coupling h[m, m−1] is too small to matter for that column (two consecutive small
    // sub-diagonal entries); otherwise a tiny but non-negligible h[l+1, l] would stall the sweep.
    let m = hi - 2;
    let x = 0;
    let y = 0;
    let z = 0;
    for (;;) {
      const hmm = h[m * n + m];
      const h21 = h[(m + 1) * n + m];
      x = hmm * hmm + h[m * n + m + 1] * h21 - s * hmm + t;
      y = h21 * (hmm + h[(m + 1) * n + m + 1] - s);
      z = h21 * h[(m + 2) * n + m + 1];
      if (m === l) break;
      const sc = Math.abs(x) + Math.abs(y) + Math.abs(z);
      const lhs = sc === 0 ? 0 : (Math.abs(h[m * n + m - 1]) * (Math.abs(y) + Math.abs(z))) / sc;
      const rhs =
        sc === 0 ? 0 : ((eps * Math.abs(x)) / sc) * (Math.abs(h[(m - 1) * n + m - 1]) + Math.abs(hmm) + Math.abs(h[(m + 1) * n + m + 1]));
      if (lhs <= rhs) break;
      m--;
    }
    for (let k = m; k <= hi - 2; k++) {
      const scale = Math.abs(x) + Math.abs(y) + Math.abs(z);
      if (scale !== 0) {
        const xs = x / scale;
        const ys = y / scale;
        const zs = z / scale;
        const nrm = Math.sqrt(xs * xs + ys * ys + zs * zs) * scale;
        const beta = x >= 0 ? -nrm : nrm;
        const tau = (beta - x) / beta;
        const v1 = y / (x - beta);
        const v2 = z / (x - beta);
        const c0 = Math.max(l, k - 1);
        const r0 = k * n;
        const r1 = r0 + n;
        const r2 = r1 + n;
        for (let j = c0; j <= hi; j++) {
          const sum = tau * (h[r0 + j] + v1 * h[r1 + j] + v2 * h[r2 + j]);
          h[r0 + j] -= sum;
          h[r1 + j] -= sum * v1;
          h[r2 + j] -= sum * v2;
        }
        const rmax = Math.min(k + 3, hi);
        for (let i = l; i <= rmax; i++) {
          const row = i * n;
          const sum = tau * (h[row + k] + v1 * h[row + k + 1] + v2 * h[row + k + 2]);
          h[row + k] -= sum;
          h[row + k + 1] -= sum * v1;
          h[row + k + 2] -= sum * v2;
        }
        if (k > m) {
          h[r0 + k - 1] = beta;
          h[r1 + k - 1] = 0;
          h[r2 + k - 1] = 0;
        } else if (m > l) {
          // The fill created below h[m, m−1] is negligible by the choice of m.
          h[r1 + k - 1] = 0;
          h[r2 + k - 1] = 0;
        }
      }
      x = h[(k + 1) * n + k];
      y = h[(k + 2) * n + k];
      if (k < hi - 2) z = h[(k + 3) * n + k];
    }
    // Final 2-element reflector on rows/columns hi−1, hi.
    const scale = Math.abs(x) + Math.abs(y);
    if (scale !== 0) {
      const nrm = Math.hypot(x, y);
      const beta = x >= 0 ? -nrm : nrm;
      const tau = (beta - x) / beta;
      const v1 = y / (x - beta);
      const k = hi - 1;
      const r0 = k * n;
      const r1 = r0 + n;
      for (let j = Math.max(l, k - 1); j <= hi; j++) {
        const sum = tau * (h[r0 + j] + v1 * h[r1 + j]);
        h[r0 + j] -= sum;
        h[r1 + j] -= sum * v1;
      }
      for (let i = l; i <= hi; i++) {
        const row = i * n;
        const sum = tau * (h[row + k] + v1 * h[row + k + 1]);
        h[row + k] -= sum;
        h[row + k + 1] -= sum * v1;
      }
      if (k > l) {
        h[r0 + k - 1] = beta;
        h[r1 + k - 1] = 0;
      }
    }
  }
}

/** Sorts eigenvalues (conjugate pairs kept together) into re/im starting at `off`. */
function sortEigenvalues(wr: Float64Array, wi: Float64Array, n: number, re: Float64Array, im: Float64Array, off: number): void {
  // Group into items: real values, or pairs stored once as (re, |im|).
  const items: { re: number; im: number; mod: number }[] = [];
  for (let i = 0; i < n; i++) {
    if (wi[i] === 0) {
      items.push({ re: wr[i], im: 0, mod: Math.abs(wr[i]) });
    } else {
      const b = Math.abs(wi[i]);
      items.push({ re: wr[i], im: b, mod: Math.hypot(wr[i], b) });
      i++; // the conjugate partner written right after
    }
  }
  items.sort((p, q) => q.mod - p.mod || q.re - p.re || q.im - p.im);
  let k = off;
  for (const it of items) {
    re[k] = it.re;
    im[k] = it.im;
    k++;
    if (it.im !== 0) {
      re[k] = it.re;
      im[k] = -it.im;
      k++;
    }
  }
}
