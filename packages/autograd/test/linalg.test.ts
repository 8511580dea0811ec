import { test, describe } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { qrRaw, qrPositive, qrShapes } from "../src/linalg/qr.js";
import { eigvalsRaw, eigvalsBatchedRaw } from "../src/linalg/eig.js";
import { symEigRaw } from "../src/linalg/symeig.js";

// ---------- naive reference helpers (independent of the code under test) ----------

function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * b[p * n + j];
      c[i * n + j] = s;
    }
  return c;
}

function transpose(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function eye(n: number): Float64Array {
  const e = new Float64Array(n * n);
  for (let i = 0; i < n; i++) e[i * n + i] = 1;
  return e;
}

/** Determinant by LU with partial pivoting. */
function detLU(a: ArrayLike<number>, n: number): number {
  const w = Float64Array.from(a);
  let det = 1;
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(w[i * n + k]) > Math.abs(w[p * n + k])) p = i;
    if (w[p * n + k] === 0) return 0;
    if (p !== k) {
      for (let j = 0; j < n; j++) [w[k * n + j], w[p * n + j]] = [w[p * n + j], w[k * n + j]];
      det = -det;
    }
    det *= w[k * n + k];
    for (let i = k + 1; i < n; i++) {
      const f = w[i * n + k] / w[k * n + k];
      for (let j = k; j < n; j++) w[i * n + j] -= f * w[k * n + j];
    }
  }
  return det;
}

/** Inverse by Gauss–Jordan with partial pivoting. */
function inverse(a: ArrayLike<number>, n: number): Float64Array {
  const w = Float64Array.from(a);
  const inv = eye(n);
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(w[i * n + k]) > Math.abs(w[p * n + k])) p = i;
    for (let j = 0; j < n; j++) {
      [w[k * n + j], w[p * n + j]] = [w[p * n + j], w[k * n + j]];
      [inv[k * n + j], inv[p * n + j]] = [inv[p * n + j], inv[k * n + j]];
    }
    const d = w[k * n + k];
    for (let j = 0; j < n; j++) {
      w[k * n + j] /= d;
      inv[k * n + j] /= d;
    }
    for (let i = 0; i < n; i++) {
      if (i === k) continue;
      const f = w[i * n + k];
      for (let j = 0; j < n; j++) {
        w[i * n + j] -= f * w[k * n + j];
        inv[i * n + j] -= f * inv[k * n + j];
      }
    }
  }
  return inv;
}

/** Deterministic pseudo-random matrix (Park–Miller) with entries in [-0.5, 0.5). */
function lcgMatrix(len: number, seed: number): Float64Array {
  const x = new Float64Array(len);
  let s = seed;
  for (let i = 0; i < len; i++) {
    s = (s * 16807) % 2147483647;
    x[i] = s / 2147483647 - 0.5;
  }
  return x;
}

/** S·D·S⁻¹ for a well-conditioned S = I + 0.2·R. */
function similar(d: Float64Array, n: number, seed: number): Float64Array {
  const s = eye(n);
  const r = lcgMatrix(n * n, seed);
  for (let i = 0; i < n * n; i++) s[i] += 0.2 * r[i];
  return matmul(matmul(s, d, n, n, n), inverse(s, n), n, n, n);
}

function companion(coeffs: number[]): Float64Array {
  // Monic polynomial x^n + c[0] x^{n-1} + … + c[n-1]; first row −c, sub-diagonal ones.
  const n = coeffs.length;
  const a = new Float64Array(n * n);
  for (let j = 0; j < n; j++) a[j] = -coeffs[j];
  for (let i = 1; i < n; i++) a[i * n + i - 1] = 1;
  return a;
}

function assertEig(res: { re: Float64Array; im: Float64Array }, expected: [number, number][], tol: number): void {
  assert.equal(res.re.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const [er, ei] = expected[i];
    assert.ok(
      Math.abs(res.re[i] - er) <= tol && Math.abs(res.im[i] - ei) <= tol,
      `eigenvalue ${i}: got ${res.re[i]} + ${res.im[i]}i, expected ${er} + ${ei}i`,
    );
  }
}

function assertEigSet(res: { re: Float64Array; im: Float64Array }, expected: [number, number][], tol: number): void {
  assert.equal(res.re.length, expected.length);
  const used = new Set<number>();
  for (const [er, ei] of expected) {
    let hit = -1;
    for (let i = 0; i < res.re.length; i++) {
      if (!used.has(i) && Math.abs(res.re[i] - er) <= tol && Math.abs(res.im[i] - ei) <= tol) {
        hit = i;
        break;
      }
    }
    assert.ok(hit >= 0, `expected eigenvalue ${er} + ${ei}i not found in ${Array.from(res.re)} / ${Array.from(res.im)}`);
    used.add(hit);
  }
}

const matArb = (maxN: number, lo = 1) =>
  fc
    .integer({ min: lo, max: maxN })
    .chain((n) => fc.tuple(fc.constant(n), fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: n * n, maxLength: n * n })));

// ---------- QR ----------

function checkQR(a: Float64Array, batch: number, m: number, n: number, mode: "reduced" | "complete", positive: boolean) {
  const { q, r } = positive ? qrPositive(a, batch, m, n, mode) : qrRaw(a, batch, m, n, mode);
  const [qr, qc, rr, rc] = qrShapes(m, n, mode);
  assert.equal(q.length, batch * qr * qc);
  assert.equal(r.length, batch * rr * rc);
  let scale = 1;
  for (const v of a) scale = Math.max(scale, Math.abs(v));
  for (let b = 0; b < batch; b++) {
    const qb = q.subarray(b * qr * qc, (b + 1) * qr * qc);
    const rb = r.subarray(b * rr * rc, (b + 1) * rr * rc);
    const ab = a.subarray(b * m * n, (b + 1) * m * n);
    assert.ok(maxAbsDiff(matmul(transpose(qb, qr, qc), qb, qc, qr, qc), eye(qc)) < 1e-13, "QᵀQ = I");
    for (let i = 0; i < rr; i++) for (let j = 0; j < Math.min(i, rc); j++) assert.equal(rb[i * rc + j], 0, "R upper");
    assert.ok(maxAbsDiff(matmul(qb, rb, qr, qc, rc), ab) < 1e-13 * scale * Math.max(m, n), "QR = A");
    if (positive) for (let i = 0; i < Math.min(m, n); i++) assert.ok(rb[i * rc + i] >= 0, "diag R ≥ 0");
  }
}

describe("qrRaw / qrPositive", () => {
  test("textbook 3×3 example has the known positive-diagonal factors", () => {
    const a = Float64Array.from([12, -51, 4, 6, 167, -68, -4, 24, -41]);
    const { q, r } = qrPositive(a, 1, 3, 3);
    const qExp = [6 / 7, -69 / 175, -58 / 175, 3 / 7, 158 / 175, 6 / 175, -2 / 7, 6 / 35, -33 / 35];
    const rExp = [14, 21, -14, 0, 175, -70, 0, 0, 35];
    assert.ok(maxAbsDiff(q, qExp) < 1e-14);
    assert.ok(maxAbsDiff(r, rExp) < 1e-12);
    // Unnormalised Householder: same up to the sign of each column/row pair.
    const raw = qrRaw(a, 1, 3, 3);
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(Math.abs(raw.r[i * 3 + i]) - rExp[i * 4]) < 1e-12);
  });

  test("2×1 column [3, 4] → Q = ±[0.6, 0.8], R = ±5", () => {
    const { q, r } = qrRaw(Float64Array.from([3, 4]), 1, 2, 1, "reduced");
    assert.ok(Math.abs(Math.abs(r[0]) - 5) < 1e-15);
    const sign = Math.sign(r[0]);
    assert.ok(maxAbsDiff(q, [0.6 * sign, 0.8 * sign]) < 1e-15);
    assert.ok(Math.abs(q[0] * r[0] - 3) < 1e-14 && Math.abs(q[1] * r[0] - 4) < 1e-14);
    const c = qrRaw(Float64Array.from([3, 4]), 1, 2, 1, "complete");
    assert.equal(c.q.length, 4);
    assert.equal(c.r.length, 2);
    assert.equal(c.r[1], 0);
  });

  test("reduced/complete shapes for tall and wide inputs", () => {
    assert.deepEqual(qrShapes(5, 2, "reduced"), [5, 2, 2, 2]);
    assert.deepEqual(qrShapes(5, 2, "complete"), [5, 5, 5, 2]);
    assert.deepEqual(qrShapes(2, 4, "reduced"), [2, 2, 2, 4]);
    assert.deepEqual(qrShapes(2, 4, "complete"), [2, 2, 2, 4]);
  });

  test("properties on random batched tall/wide/square matrices (both modes, both sign conventions)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom<"reduced" | "complete">("reduced", "complete"),
        fc.boolean(),
        fc.integer({ min: 1, max: 1e6 }),
        (batch, m, n, mode, positive, seed) => {
          checkQR(
            lcgMatrix(batch * m * n, seed).map((x) => 4 * x),
            batch,
            m,
            n,
            mode,
            positive,
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  test("rank-deficient and zero matrices", () => {
    // Third column = first + second.
    const a = Float64Array.from([1, 2, 3, 4, 5, 9, 7, 8, 15, 1, 0, 1]);
    checkQR(a, 1, 4, 3, "reduced", true);
    const { r } = qrRaw(a, 1, 4, 3, "reduced");
    assert.ok(Math.abs(r[8]) < 1e-13, `R[2,2] should vanish, got ${r[8]}`);
    const z = qrRaw(new Float64Array(6), 1, 3, 2, "complete");
    assert.deepEqual(Array.from(z.q), Array.from(eye(3)));
    assert.ok(z.r.every((x) => x === 0));
    checkQR(Float64Array.from([0, 0, 0, 1, 2, 3]), 1, 2, 3, "complete", true);
  });

  test("qrPositive equals modified Gram–Schmidt for full-rank tall matrices", () => {
    const m = 7;
    const n = 4;
    const a = lcgMatrix(m * n, 12345);
    const { q, r } = qrPositive(a, 1, m, n);
    const gq = new Float64Array(m * n);
    const gr = new Float64Array(n * n);
    const cols = Array.from({ length: n }, (_, j) => Array.from({ length: m }, (_, i) => a[i * n + j]));
    for (let j = 0; j < n; j++) {
      const v = cols[j];
      for (let k = 0; k < j; k++) {
        let d = 0;
        for (let i = 0; i < m; i++) d += gq[i * n + k] * v[i];
        gr[k * n + j] = d;
        for (let i = 0; i < m; i++) v[i] -= d * gq[i * n + k];
      }
      const nrm = Math.hypot(...v);
      gr[j * n + j] = nrm;
      for (let i = 0; i < m; i++) gq[i * n + j] = v[i] / nrm;
    }
    assert.ok(maxAbsDiff(q, gq) < 1e-12);
    assert.ok(maxAbsDiff(r, gr) < 1e-12);
  });

  test("bad inputs throw descriptive errors", () => {
    assert.throws(() => qrRaw(new Float64Array(5), 1, 2, 3), /qrRaw: input has 5 elements, expected 6/);
    assert.throws(() => qrRaw(new Float64Array(6), 1, 2, 3, "full" as "reduced"), /qrRaw: mode must be/);
    assert.throws(() => qrRaw(Float64Array.from([1, NaN]), 1, 2, 1), /qrRaw: input element 1 is NaN/);
    assert.throws(() => qrRaw(new Float64Array(0), 1, -1, 0), /qrRaw: m must be a non-negative integer/);
  });
});

// ---------- general eigenvalues ----------

describe("eigvalsRaw", () => {
  test("2-D rotation by θ has eigenvalues e^{±iθ}", () => {
    for (const th of [0.3, 1, 2.5, Math.PI / 2]) {
      const a = Float64Array.from([Math.cos(th), -Math.sin(th), Math.sin(th), Math.cos(th)]);
      assertEig(
        eigvalsRaw(a, 2),
        [
          [Math.cos(th), Math.sin(th)],
          [Math.cos(th), -Math.sin(th)],
        ],
        1e-15,
      );
    }
  });

  test("companion matrices of known polynomials", () => {
    // (x−1)(x−2)(x−3) = x³ − 6x² + 11x − 6
    assertEig(
      eigvalsRaw(companion([-6, 11, -6]), 3),
      [
        [3, 0],
        [2, 0],
        [1, 0],
      ],
      1e-12,
    );
    // x² + 1 → ±i
    assertEig(
      eigvalsRaw(companion([0, 1]), 2),
      [
        [0, 1],
        [0, -1],
      ],
      1e-15,
    );
    // (x² − 2x + 5)(x − 3) = x³ − 5x² + 11x − 15 → 3, 1 ± 2i
    assertEig(
      eigvalsRaw(companion([-5, 11, -15]), 3),
      [
        [3, 0],
        [1, 2],
        [1, -2],
      ],
      1e-12,
    );
    // (x−1)(x−2)…(x−6): moderately ill-conditioned roots
    const p = [-21, 175, -735, 1624, -1764, 720];
    assertEig(
      eigvalsRaw(companion(p), 6),
      [6, 5, 4, 3, 2, 1].map((v) => [v, 0] as [number, number]),
      1e-8,
    );
    // x⁴ − 1 → ±1, ±i (all |λ| = 1, so the computed order depends on rounding: compare as a set)
    assertEigSet(
      eigvalsRaw(companion([0, 0, 0, -1]), 4),
      [
        [1, 0],
        [0, 1],
        [0, -1],
        [-1, 0],
      ],
      1e-14,
    );
    // 3 and −3 ± 0: distinct real parts decide the order among equal moduli
    assertEig(
      eigvalsRaw(Float64Array.from([-3, 0, 0, 3]), 2),
      [
        [3, 0],
        [-3, 0],
      ],
      0,
    );
  });

  test("triangular matrices give their diagonal", () => {
    const n = 6;
    const a = lcgMatrix(n * n, 77);
    const diag = [3, -7, 0.5, 2, -1, 10];
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < i; j++) a[i * n + j] = 0;
      a[i * n + i] = diag[i];
    }
    const exp = diag
      .slice()
      .sort((x, y) => Math.abs(y) - Math.abs(x))
      .map((v) => [v, 0] as [number, number]);
    assertEig(eigvalsRaw(a, n), exp, 1e-12);
    assertEig(eigvalsRaw(transpose(a, n, n), n), exp, 1e-12);
  });

  test("prescribed spectra through a similarity transform", () => {
    // Blocks: 5, −4, [[3, 1], [−1, 3]] → 3 ± i, [[−2, 2], [−2, −2]] → −2 ± 2i, 0.5, 0
    const n = 8;
    const d = new Float64Array(n * n);
    const set = (i: number, j: number, v: number) => (d[i * n + j] = v);
    set(0, 0, 5);
    set(1, 1, -4);
    set(2, 2, 3);
    set(2, 3, 1);
    set(3, 2, -1);
    set(3, 3, 3);
    set(4, 4, -2);
    set(4, 5, 2);
    set(5, 4, -2);
    set(5, 5, -2);
    set(6, 6, 0.5);
    const a = similar(d, n, 4242);
    assertEig(
      eigvalsRaw(a, n),
      [
        [5, 0],
        [-4, 0],
        [3, 1],
        [3, -1],
        [-2, 2],
        [-2, -2],
        [0.5, 0],
        [0, 0],
      ],
      1e-10,
    );
  });

  test("defective (Jordan) matrices", () => {
    assertEig(
      eigvalsRaw(Float64Array.from([2, 1, 0, 2]), 2),
      [
        [2, 0],
        [2, 0],
      ],
      1e-7,
    );
    const j2 = new Float64Array(16);
    j2[0] = 2;
    j2[1] = 1;
    j2[5] = 2;
    j2[10] = -1;
    j2[15] = 0.25;
    const a = similar(j2, 4, 99);
    const r = eigvalsRaw(a, 4);
    // Double eigenvalue 2 is perturbed by O(√ε); its mean is well conditioned.
    assert.ok(Math.abs(r.re[0] - 2) < 1e-6 && Math.abs(r.re[1] - 2) < 1e-6 && Math.abs(r.im[0]) < 1e-6);
    assert.ok(Math.abs((r.re[0] + r.re[1]) / 2 - 2) < 1e-12);
    assertEig(
      { re: r.re.slice(2), im: r.im.slice(2) },
      [
        [-1, 0],
        [0.25, 0],
      ],
      1e-12,
    );
    // 3×3 Jordan block for 1 (error O(ε^{1/3})).
    const j3 = Float64Array.from([1, 1, 0, 0, 1, 1, 0, 0, 1]);
    const b = eigvalsRaw(similar(j3, 3, 5), 3);
    for (let i = 0; i < 3; i++) assert.ok(Math.hypot(b.re[i] - 1, b.im[i]) < 1e-4);
    assert.ok(Math.abs(b.re[0] + b.re[1] + b.re[2] - 3) < 1e-12);
  });

  test("symmetric matrices agree with symEigRaw", () => {
    const n = 9;
    const r = lcgMatrix(n * n, 2024);
    const s = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s[i * n + j] = r[i * n + j] + r[j * n + i];
    const e = eigvalsRaw(s, n);
    assert.ok(e.im.every((x) => x === 0));
    const sorted = Array.from(e.re).sort((x, y) => x - y);
    assert.ok(maxAbsDiff(sorted, symEigRaw(s, n).values) < 1e-13);
  });

  test("low-rank UVᵀ: nonzero eigenvalues are those of VᵀU, the rest vanish", () => {
    const n = 40;
    const k = 2;
    const u = lcgMatrix(n * k, 31);
    const v = lcgMatrix(n * k, 57);
    const a = matmul(u, transpose(v, n, k), n, k, n);
    const small = matmul(transpose(v, n, k), u, k, n, k); // 2×2
    const tr = small[0] + small[3];
    const det = small[0] * small[3] - small[1] * small[2];
    const disc = (tr * tr) / 4 - det;
    const e = eigvalsRaw(a, n);
    if (disc >= 0) {
      const l1 = tr / 2 + Math.sqrt(disc);
      const l2 = tr / 2 - Math.sqrt(disc);
      const exp = [l1, l2].sort((x, y) => Math.abs(y) - Math.abs(x));
      assert.ok(Math.abs(e.re[0] - exp[0]) < 1e-12 && Math.abs(e.re[1] - exp[1]) < 1e-12);
    } else {
      assertEig(
        { re: e.re.slice(0, 2), im: e.im.slice(0, 2) },
        [
          [tr / 2, Math.sqrt(-disc)],
          [tr / 2, -Math.sqrt(-disc)],
        ],
        1e-12,
      );
    }
    for (let i = k; i < n; i++) assert.ok(Math.hypot(e.re[i], e.im[i]) < 1e-12);
  });

  test("badly scaled matrix (balancing) keeps eigenvalues of the unscaled one", () => {
    const n = 5;
    const d = new Float64Array(n * n);
    const diag = [4, -3, 2, 1, 0.5];
    for (let i = 0; i < n; i++) d[i * n + i] = diag[i];
    const base = similar(d, n, 808);
    const scales = [1, 1e6, 1e-6, 1e3, 1e-3];
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = (base[i * n + j] * scales[i]) / scales[j];
    assertEig(
      eigvalsRaw(a, n),
      diag.map((v) => [v, 0] as [number, number]),
      1e-9,
    );
  });

  test("random matrices: Σλ = trace, Πλ = det (LU), Σλ² = trace(A²), conjugate pairs, ordering", () => {
    fc.assert(
      fc.property(matArb(12), ([n, arr]) => {
        const a = Float64Array.from(arr);
        const { re, im } = eigvalsRaw(a, n);
        let norm = 0;
        let tr = 0;
        let hadamard = 1;
        for (let i = 0; i < n; i++) {
          tr += a[i * n + i];
          let rn = 0;
          for (let j = 0; j < n; j++) rn += a[i * n + j] ** 2;
          hadamard *= Math.max(Math.sqrt(rn), 1e-3);
          norm += rn;
        }
        norm = Math.sqrt(norm);
        // Σλ = trace
        let sr = 0;
        let si = 0;
        for (let i = 0; i < n; i++) {
          sr += re[i];
          si += im[i];
        }
        assert.ok(Math.abs(sr - tr) <= 1e-11 * (1 + n * norm), `trace ${tr} vs Σλ ${sr}`);
        assert.ok(Math.abs(si) <= 1e-12 * (1 + norm));
        // Πλ = det
        let pr = 1;
        let pi = 0;
        for (let i = 0; i < n; i++) [pr, pi] = [pr * re[i] - pi * im[i], pr * im[i] + pi * re[i]];
        const det = detLU(a, n);
        assert.ok(Math.abs(pr - det) <= 1e-9 * hadamard + 1e-300, `det ${det} vs Πλ ${pr}`);
        assert.ok(Math.abs(pi) <= 1e-9 * hadamard + 1e-300);
        // Σλ² = trace(A²)
        const a2 = matmul(a, a, n, n, n);
        let tr2 = 0;
        let s2 = 0;
        for (let i = 0; i < n; i++) {
          tr2 += a2[i * n + i];
          s2 += re[i] * re[i] - im[i] * im[i];
        }
        assert.ok(Math.abs(s2 - tr2) <= 1e-10 * (1 + norm * norm), `tr(A²) ${tr2} vs Σλ² ${s2}`);
        // Pairs adjacent, +im first, exact conjugates; non-increasing modulus.
        for (let i = 0; i < n; i++) {
          if (im[i] > 0) {
            assert.ok(i + 1 < n && re[i + 1] === re[i] && im[i + 1] === -im[i], `pair at ${i}`);
            i++;
          } else {
            assert.equal(im[i], 0, `unpaired complex eigenvalue at ${i}`);
          }
        }
        for (let i = 1; i < n; i++) assert.ok(Math.hypot(re[i], im[i]) <= Math.hypot(re[i - 1], im[i - 1]));
      }),
      { numRuns: 300 },
    );
  });

  test("a larger random matrix (n = 80) keeps trace and log|det|", () => {
    const n = 80;
    const a = lcgMatrix(n * n, 7);
    const { re, im } = eigvalsRaw(a, n);
    let tr = 0;
    for (let i = 0; i < n; i++) tr += a[i * n + i];
    assert.ok(Math.abs(re.reduce((s, x) => s + x, 0) - tr) < 1e-10);
    let logAbs = 0;
    for (let i = 0; i < n; i++) logAbs += Math.log(Math.hypot(re[i], im[i]));
    assert.ok(Math.abs(logAbs - Math.log(Math.abs(detLU(a, n)))) < 1e-8);
  });

  test("batched variant equals per-matrix calls; trivial sizes", () => {
    const n = 5;
    const batch = 4;
    const a = lcgMatrix(batch * n * n, 11);
    const b = eigvalsBatchedRaw(a, batch, n);
    for (let k = 0; k < batch; k++) {
      const s = eigvalsRaw(a.slice(k * n * n, (k + 1) * n * n), n);
      assert.deepEqual(Array.from(b.re.subarray(k * n, (k + 1) * n)), Array.from(s.re));
      assert.deepEqual(Array.from(b.im.subarray(k * n, (k + 1) * n)), Array.from(s.im));
    }
    assert.equal(eigvalsRaw(new Float64Array(0), 0).re.length, 0);
    assertEig(eigvalsRaw(Float64Array.from([-3.5]), 1), [[-3.5, 0]], 0);
    assertEig(
      eigvalsRaw(new Float64Array(9), 3),
      [
        [0, 0],
        [0, 0],
        [0, 0],
      ],
      0,
    );
  });

  test("errors: non-convergence, bad shapes, non-finite input", () => {
    assert.throws(
      () => eigvalsRaw(companion([-6, 11, -6]), 3, { maxIterations: 0 }),
      /eigvalsRaw: QR iteration did not converge after 0 iterations/,
    );
    assert.throws(() => eigvalsRaw(new Float64Array(8), 3), /eigvalsRaw: input has 8 elements, expected 9/);
    assert.throws(() => eigvalsRaw(Float64Array.from([1, Infinity, 0, 1]), 2), /input element 1 is Infinity/);
    assert.throws(() => eigvalsBatchedRaw(new Float64Array(8), 2, 3), /eigvalsBatchedRaw: input has 8 elements, expected 18/);
  });
});

// ---------- symmetric eigendecomposition ----------

function checkSymEig(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const res = symEigRaw(a, n);
  const { values, vectors } = res;
  let norm = 1;
  for (const x of a) norm = Math.max(norm, Math.abs(x));
  for (let i = 1; i < n; i++) assert.ok(values[i] >= values[i - 1], "ascending");
  assert.ok(maxAbsDiff(matmul(transpose(vectors, n, n), vectors, n, n, n), eye(n)) < 1e-13 * n, "VᵀV = I");
  const av = matmul(a, vectors, n, n, n);
  const vl = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) vl[i * n + j] = vectors[i * n + j] * values[j];
  assert.ok(maxAbsDiff(av, vl) < 1e-13 * n * norm, "A·V = V·Λ");
  return res;
}

describe("symEigRaw", () => {
  test("discrete Laplacian tridiag(−1, 2, −1): λ_k = 2 − 2cos(kπ/(n+1))", () => {
    const n = 12;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      a[i * n + i] = 2;
      if (i > 0) a[i * n + i - 1] = a[(i - 1) * n + i] = -1;
    }
    const { values, vectors } = checkSymEig(a, n);
    for (let k = 1; k <= n; k++) assert.ok(Math.abs(values[k - 1] - (2 - 2 * Math.cos((k * Math.PI) / (n + 1)))) < 1e-14);
    // Eigenvectors are sin(i·kπ/(n+1)) up to sign and normalisation.
    for (let k = 1; k <= n; k++) {
      const ref = Array.from({ length: n }, (_, i) => Math.sin(((i + 1) * k * Math.PI) / (n + 1)) * Math.sqrt(2 / (n + 1)));
      const col = Array.from({ length: n }, (_, i) => vectors[i * n + k - 1]);
      const dot = ref.reduce((s, x, i) => s + x * col[i], 0);
      assert.ok(Math.abs(Math.abs(dot) - 1) < 1e-13);
    }
  });

  test("repeated eigenvalues: all-ones matrix and identity", () => {
    const n = 6;
    const ones = new Float64Array(n * n).fill(1);
    const { values } = checkSymEig(ones, n);
    assert.ok(maxAbsDiff(values, [0, 0, 0, 0, 0, 6]) < 1e-14);
    const id = checkSymEig(eye(4), 4);
    assert.deepEqual(Array.from(id.values), [1, 1, 1, 1]);
  });

  test("2×2 closed form and sign convention", () => {
    const [a, b, c] = [2, 3, -1];
    const { values, vectors } = checkSymEig(Float64Array.from([a, b, b, c]), 2);
    const mid = (a + c) / 2;
    const rad = Math.hypot((a - c) / 2, b);
    assert.ok(Math.abs(values[0] - (mid - rad)) < 1e-15 && Math.abs(values[1] - (mid + rad)) < 1e-14);
    for (let j = 0; j < 2; j++) {
      const big = Math.abs(vectors[j]) >= Math.abs(vectors[2 + j]) ? vectors[j] : vectors[2 + j];
      assert.ok(big > 0);
    }
  });

  test("random symmetric matrices (n 1..12): residual, orthogonality, trace", () => {
    fc.assert(
      fc.property(matArb(12), ([n, arr]) => {
        const a = new Float64Array(n * n);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = arr[Math.min(i, j) * n + Math.max(i, j)];
        const { values } = checkSymEig(a, n);
        let tr = 0;
        for (let i = 0; i < n; i++) tr += a[i * n + i];
        assert.ok(Math.abs(values.reduce((s, x) => s + x, 0) - tr) < 1e-12 * (1 + 5 * n));
      }),
      { numRuns: 300 },
    );
  });

  test("errors: asymmetric input, bad length", () => {
    assert.throws(() => symEigRaw(Float64Array.from([1, 2, 3, 4]), 2), /symEigRaw: matrix is not symmetric: a\[0,1\]=2 but a\[1,0\]=3/);
    assert.throws(() => symEigRaw(new Float64Array(3), 2), /symEigRaw: input has 3 elements, expected 4/);
    assert.equal(symEigRaw(new Float64Array(0), 0).values.length, 0);
  });
});
