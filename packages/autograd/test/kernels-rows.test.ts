import { test } from "node:test";
import assert from "node:assert/strict";
import { HW, withKernelMode } from "./kernel-modes.js";
import fc from "fast-check";
import { kernelInfo, simdKernelsAvailable } from "../src/backend/cpu/kernels/gemm.js";
import { poolStats } from "../src/backend/cpu/kernels/pool.js";
import {
  crossEntropyBackwardRows,
  crossEntropyRows,
  geluTanh,
  geluTanhBackward,
  layerNormBackwardRows,
  layerNormRows,
  logSoftmaxRows,
  softmaxRows,
} from "../src/backend/cpu/kernels/rows.js";

// ------------------------------------------------------------------------------------------
// independent float64 references (direct formulas, Math.exp / Math.log / Math.tanh)

function refLogSumExp(x: ArrayLike<number>, o: number, cols: number): number {
  let m = -Infinity;
  for (let j = 0; j < cols; j++) m = Math.max(m, x[o + j]!);
  let s = 0;
  for (let j = 0; j < cols; j++) s += Math.exp(x[o + j]! - m);
  return m + Math.log(s);
}

function refSoftmax(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const lse = refLogSumExp(x, r * cols, cols);
    for (let j = 0; j < cols; j++) out[r * cols + j] = Math.exp(x[r * cols + j]! - lse);
  }
  return out;
}

function refLayerNorm(
  x: ArrayLike<number>,
  gamma: ArrayLike<number> | null,
  beta: ArrayLike<number> | null,
  rows: number,
  cols: number,
  eps: number,
) {
  const out = new Float64Array(rows * cols);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[r * cols + j]!;
    const mu = s / cols;
    let v = 0;
    for (let j = 0; j < cols; j++) v += (x[r * cols + j]! - mu) ** 2;
    const rs = 1 / Math.sqrt(v / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < cols; j++) out[r * cols + j] = (x[r * cols + j]! - mu) * rs * (gamma ? gamma[j]! : 1) + (beta ? beta[j]! : 0);
  }
  return { out, mean, rstd };
}

function refGelu(x: number): number {
  const u = Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3);
  // 1 + tanh(u) cancels for very negative u; there use the identity 1 + tanh(u) = 2 / (e^{-2u} + 1)
  return u > -3 ? 0.5 * x * (1 + Math.tanh(u)) : x / (Math.exp(-2 * u) + 1);
}

/**
 * Float32 GELU accuracy: 1e-5 relative where gelu(x) ≥ ~1e-11 (x ≥ -7); the conditioning of
 * exp(-2|u|) lets it grow to 2e-5 by x = -9, and values below ~1e-36 flush to 0.
 */
function assertGeluF32(y: ArrayLike<number>, xs: Float64Array, what: string): void {
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i]!;
    assertNear([y[i]!], [refGelu(v)], v >= -7 ? 1e-5 : 2e-5, 1e-36, `gelu(${v}) ${what}`);
  }
}

/** Deterministic values uniform in [lo, hi). */
function rand(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const out = new Float64Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = lo + ((s >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}

function assertNear(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, abs: number, what: string): void {
  assert.equal(got.length >= want.length, true, `${what}: output too short`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (!(Math.abs(g - w) <= abs + rel * Math.abs(w))) assert.fail(`${what}: [${i}] = ${g}, expected ${w} (rel ${rel}, abs ${abs})`);
  }
}

// ------------------------------------------------------------------------------------------

interface Mode {
  name: string;
  f64: boolean;
  portable: boolean;
  threads: number;
}

const MODES: Mode[] = [
  { name: "float32 wasm simd, 1 thread", f64: false, portable: false, threads: 1 },
  { name: "float32 wasm simd, 2 threads", f64: false, portable: false, threads: 2 },
  { name: "float32 portable", f64: false, portable: true, threads: 1 },
  { name: "float64", f64: true, portable: false, threads: 1 },
];

/** Tolerances: float32 results within ~1e-5 relative of the float64 reference; float64 within 1e-12. */
function tol(mode: Mode): { rel: number; abs: number } {
  return mode.f64 ? { rel: 1e-12, abs: 1e-14 } : { rel: 1e-5, abs: 1e-7 };
}

function skipMode(mode: Mode): string | null {
  if (!mode.f64 && !mode.portable && !simdKernelsAvailable()) return "WebAssembly SIMD unavailable";
  if (mode.threads > HW) return "needs 2 hardware threads";
  return null;
}

function arr(mode: Mode, src: ArrayLike<number> | number): Float32Array | Float64Array {
  if (typeof src === "number") return mode.f64 ? new Float64Array(src) : new Float32Array(src);
  return mode.f64 ? Float64Array.from(src) : Float32Array.from(src);
}

/** The input as the kernel sees it (rounded to float32 where applicable), in float64. */
function seen(a: Float32Array | Float64Array): Float64Array {
  return Float64Array.from(a);
}

// shapes: odd widths (tail lanes), 1-wide, wide rows (several 256-column sum blocks), and one large
// enough that the streamed multi-thread path cuts it into several chunks
const SHAPES: [number, number][] = [
  [1, 1],
  [3, 5],
  [7, 17],
  [2, 1027],
  [5, 4099],
  [300, 1031],
];

for (const mode of MODES) {
  const { rel } = tol(mode);

  test(`softmaxRows / logSoftmaxRows (${mode.name})`, (t) => {
    const skip = skipMode(mode);
    if (skip) return t.skip(skip);
    withKernelMode(mode, () => {
      const calls0 = poolStats().parallelCalls;
      for (const [rows, cols] of SHAPES) {
        const x = arr(mode, rand(rows * cols, rows * 31 + cols, -8, 8));
        const out = arr(mode, rows * cols);
        softmaxRows(x, out, rows, cols);
        const ref = refSoftmax(seen(x), rows, cols);
        assertNear(out, ref, rel, 1e-30, `softmax ${rows}x${cols}`);
        logSoftmaxRows(x, out, rows, cols);
        const lref = ref.map((p) => Math.log(p));
        // log-softmax: absolute error relative to the magnitude of the row's log-sum-exp
        assertNear(out, lref, rel, mode.f64 ? 1e-13 : 1e-5, `logSoftmax ${rows}x${cols}`);
        out.fill(0);
        softmaxRows(x, out, rows, cols, true);
        assertNear(out, lref, rel, mode.f64 ? 1e-13 : 1e-5, `softmaxRows with log ${rows}x${cols}`);
        // in place
        const y = Float64Array.from(x);
        const inplace = arr(mode, y);
        softmaxRows(inplace, inplace, rows, cols);
        assertNear(inplace, ref, rel, 1e-30, `softmax in place ${rows}x${cols}`);
      }
      if (mode.threads > 1 && !mode.f64 && !mode.portable) {
        assert.ok(poolStats().parallelCalls > calls0, "the large case ran on more than one thread");
        assert.equal(kernelInfo().threads, 2);
      }
    });
  });

  test(`crossEntropyRows / crossEntropyBackwardRows with ignoreIndex (${mode.name})`, (t) => {
    const skip = skipMode(mode);
    if (skip) return t.skip(skip);
    withKernelMode(mode, () => {
      for (const [rows, cols] of SHAPES) {
        const x = arr(mode, rand(rows * cols, rows + cols * 7, -6, 6));
        const xs = seen(x);
        const ignore = -100;
        const targets = Int32Array.from({ length: rows }, (_, r) => (r % 3 === 2 ? ignore : (r * 7919) % cols));
        const loss = arr(mode, rows);
        const lse = arr(mode, rows);
        crossEntropyRows(x, targets, rows, cols, ignore, loss, lse);
        for (let r = 0; r < rows; r++) {
          const l = refLogSumExp(xs, r * cols, cols);
          assertNear([lse[r]!], [l], rel, 0, `lse row ${r}`);
          const want = targets[r] === ignore ? 0 : l - xs[r * cols + targets[r]!]!;
          // the loss is a difference of O(|lse|) terms: error relative to |lse|
          assertNear([loss[r]!], [want], 0, (mode.f64 ? 1e-13 : 1e-6) * Math.max(1, Math.abs(l)), `loss row ${r}`);
          if (targets[r] === ignore) assert.equal(loss[r], 0);
        }
        const g = arr(mode, rand(rows, 99, 0.5, 2));
        const d = arr(mode, rows * cols);
        crossEntropyBackwardRows(x, targets, lse, g, d, rows, cols, ignore);
        const p = refSoftmax(xs, rows, cols);
        const want = new Float64Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          if (targets[r] === ignore) continue;
          for (let j = 0; j < cols; j++) want[r * cols + j] = g[r]! * (p[r * cols + j]! - (j === targets[r] ? 1 : 0));
        }
        assertNear(d, want, rel, mode.f64 ? 1e-13 : 1e-6, `dlogits ${rows}x${cols}`);
        for (let r = 0; r < rows; r++) {
          if (targets[r] !== ignore) continue;
          for (let j = 0; j < cols; j++) assert.equal(d[r * cols + j], 0, `ignored row ${r} has zero gradient`);
        }
      }
    });
  });

  test(`cross-entropy with logits of magnitude 1e4 stays finite and accurate (${mode.name})`, (t) => {
    const skip = skipMode(mode);
    if (skip) return t.skip(skip);
    withKernelMode(mode, () => {
      const rows = 6;
      const cols = 1001;
      const x = arr(mode, rand(rows * cols, 7, -1e4, 1e4));
      // row 1: all equal huge values; row 2: one dominant logit
      for (let j = 0; j < cols; j++) x[cols + j] = 1e4;
      x[2 * cols + 5] = 2e4;
      const xs = seen(x);
      const targets = Int32Array.from([3, 0, 5, 7, -1, 1000]);
      const loss = arr(mode, rows);
      const lse = arr(mode, rows);
      crossEntropyRows(x, targets, rows, cols, -1, loss, lse);
      for (let r = 0; r < rows; r++) {
        const l = refLogSumExp(xs, r * cols, cols);
        assert.ok(Number.isFinite(loss[r]!) && Number.isFinite(lse[r]!), `row ${r} finite`);
        assertNear([lse[r]!], [l], mode.f64 ? 1e-15 : 1e-7, 0, `lse of huge row ${r}`);
        const want = targets[r] === -1 ? 0 : l - xs[r * cols + targets[r]!]!;
        assertNear([loss[r]!], [want], 0, (mode.f64 ? 1e-15 : 1e-7) * Math.abs(l), `loss of huge row ${r}`);
      }
      assertNear([loss[1]!], [Math.log(cols)], 0, mode.f64 ? 1e-9 : 2e-3, "uniform huge row: loss = log(cols)");
      const g = arr(mode, [1, 1, 1, 1, 1, 1]);
      const d = arr(mode, rows * cols);
      crossEntropyBackwardRows(x, targets, lse, g, d, rows, cols, -1);
      const sm = arr(mode, rows * cols);
      softmaxRows(x, sm, rows, cols);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        let gs = 0;
        for (let j = 0; j < cols; j++) {
          assert.ok(Number.isFinite(d[r * cols + j]!) && Number.isFinite(sm[r * cols + j]!));
          s += sm[r * cols + j]!;
          gs += d[r * cols + j]!;
        }
        assertNear([s], [1], 1e-5, 0, `softmax row ${r} sums to 1`);
        // gradient rows sum to g (Σ softmax) - g = 0, up to the float32 rounding of the saved lse
        assertNear([gs], [0], 0, targets[r] === -1 ? 0 : mode.f64 ? 1e-9 : 3e-3, `gradient row ${r} sums to 0`);
      }
      // the dominant logit gets probability 1 and gradient (1 - 1) = 0 at the target
      assertNear([sm[2 * cols + 5]!], [1], 1e-6, 0, "dominant logit");
      assertNear([d[2 * cols + 5]!], [0], 0, 1e-6, "gradient at the dominant target");
    });
  });

  test(`layerNormRows / layerNormBackwardRows (${mode.name})`, (t) => {
    const skip = skipMode(mode);
    if (skip) return t.skip(skip);
    withKernelMode(mode, () => {
      for (const [rows, cols] of [
        [1, 1],
        [3, 7],
        [4, 129],
        [300, 513],
      ] as [number, number][]) {
        for (const affine of [true, false]) {
          const x = arr(mode, rand(rows * cols, rows * 13 + cols, -3, 5));
          const gamma = affine ? arr(mode, rand(cols, 5, 0.5, 1.5)) : null;
          const beta = affine ? arr(mode, rand(cols, 6, -1, 1)) : null;
          const out = arr(mode, rows * cols);
          const mean = arr(mode, rows);
          const rstd = arr(mode, rows);
          const eps = 1e-5;
          layerNormRows(x, gamma, beta, out, mean, rstd, rows, cols, eps);
          const ref = refLayerNorm(seen(x), gamma && seen(gamma), beta && seen(beta), rows, cols, eps);
          assertNear(out, ref.out, rel, mode.f64 ? 1e-12 : 1e-5, `layerNorm ${rows}x${cols}`);
          assertNear(mean, ref.mean, rel, mode.f64 ? 1e-14 : 1e-6, "mean");
          assertNear(rstd, ref.rstd, rel, 0, "rstd");

          // backward against central finite differences of L = Σ w ⊙ layerNorm(x) in float64
          const dy = arr(mode, rand(rows * cols, 77, -1, 1));
          const dx = arr(mode, rows * cols);
          const dgamma = affine ? arr(mode, rand(cols, 3)) : null;
          const dbeta = affine ? arr(mode, rand(cols, 4)) : null;
          const dg0 = dgamma ? seen(dgamma) : null;
          const db0 = dbeta ? seen(dbeta) : null;
          layerNormBackwardRows(x, gamma, mean, rstd, dy, dx, dgamma, dbeta, rows, cols);
          const xs = seen(x);
          const w = seen(dy);
          const L = (xx: Float64Array, gg: Float64Array | null, bb: Float64Array | null): number => {
            const o = refLayerNorm(xx, gg, bb, rows, cols, eps).out;
            let s = 0;
            for (let i = 0; i < o.length; i++) s += o[i]! * w[i]!;
            return s;
          };
          const h = 1e-6;
          const gs = gamma ? seen(gamma) : null;
          const bs = beta ? seen(beta) : null;
          const probes = Math.min(rows * cols, 12);
          for (let q = 0; q < probes; q++) {
            const i = Math.floor((q * rows * cols) / probes);
            const xp = Float64Array.from(xs);
            const xm = Float64Array.from(xs);
            xp[i]! += h;
            xm[i]! -= h;
            const fd = (L(xp, gs, bs) - L(xm, gs, bs)) / (2 * h);
            assertNear([dx[i]!], [fd], mode.f64 ? 1e-6 : 1e-4, 1e-6, `dx[${i}] vs finite difference`);
          }
          if (dgamma && dbeta && gs && bs && dg0 && db0) {
            for (const j of [0, cols >> 1, cols - 1]) {
              const gp = Float64Array.from(gs);
              const gm = Float64Array.from(gs);
              gp[j]! += h;
              gm[j]! -= h;
              const fdg = (L(xs, gp, bs) - L(xs, gm, bs)) / (2 * h);
              assertNear([dgamma[j]! - dg0[j]!], [fdg], mode.f64 ? 1e-6 : 1e-4, 1e-5, `dgamma[${j}] accumulates`);
              const bp = Float64Array.from(bs);
              const bm = Float64Array.from(bs);
              bp[j]! += h;
              bm[j]! -= h;
              const fdb = (L(xs, gs, bp) - L(xs, gs, bm)) / (2 * h);
              assertNear([dbeta[j]! - db0[j]!], [fdb], mode.f64 ? 1e-6 : 1e-4, 1e-5, `dbeta[${j}] accumulates`);
            }
          }
        }
      }
    });
  });

  test(`geluTanh / geluTanhBackward (${mode.name})`, (t) => {
    const skip = skipMode(mode);
    if (skip) return t.skip(skip);
    withKernelMode(mode, () => {
      for (const n of [1, 3, 4, 7, 1001, 300_007]) {
        const x = arr(mode, rand(n, n, -9, 9));
        if (n > 8) {
          x[0] = 0;
          x[1] = -30;
          x[2] = 30;
          x[3] = 1e-6;
        }
        const xs = seen(x);
        const y = arr(mode, n);
        geluTanh(x, y, n);
        const ref = xs.map(refGelu);
        if (mode.f64) assertNear(y, ref, 1e-12, 1e-300, `gelu n=${n}`);
        else assertGeluF32(y, xs, `n=${n}`);
        const dy = arr(mode, rand(n, 3, -2, 2));
        const dx = arr(mode, n);
        geluTanhBackward(x, dy, dx, n);
        // derivative by central differences of the float64 reference
        const want = xs.map((v, i) => {
          const h = 1e-5 * Math.max(1, Math.abs(v));
          return ((refGelu(v + h) - refGelu(v - h)) / (2 * h)) * dy[i]!;
        });
        assertNear(dx, want, mode.f64 ? 1e-7 : 1e-5, 1e-7, `gelu backward n=${n}`);
      }
    });
  });
}

for (const mode of MODES) {
  test(`softmax / cross-entropy: a NaN logit poisons only its row; -Infinity logits get ~0 probability (${mode.name})`, (t) => {
    const skip = skipMode(mode);
    if (skip) return t.skip(skip);
    withKernelMode(mode, () => {
      const rows = 3;
      const cols = 13;
      const x = arr(mode, rand(rows * cols, 5, -2, 2));
      x[4] = NaN; // row 0
      x[cols + 2] = -Infinity; // row 1
      x[cols + 11] = -Infinity;
      const out = arr(mode, rows * cols);
      softmaxRows(x, out, rows, cols);
      for (let j = 0; j < cols; j++) assert.ok(Number.isNaN(out[j]!), "row 0 is NaN");
      const clean = Float64Array.from(x.subarray(cols));
      clean[2] = -Infinity;
      const ref = refSoftmax(
        clean.map((v) => (v === -Infinity ? -1e300 : v)),
        rows - 1,
        cols,
      );
      for (let i = 0; i < ref.length; i++) {
        const g = out[cols + i]!;
        if (i === 2 || i === 11) assert.ok(g >= 0 && g < 1e-36, `masked entry ${i} = ${g}`);
        else assertNear([g], [ref[i]!], mode.f64 ? 1e-12 : 1e-5, 0, `row ${1 + Math.floor(i / cols)} entry ${i % cols}`);
      }
      const loss = arr(mode, rows);
      const lse = arr(mode, rows);
      crossEntropyRows(x, Int32Array.from([0, 0, 1]), rows, cols, -1, loss, lse);
      assert.ok(Number.isNaN(loss[0]!) && Number.isNaN(lse[0]!), "row 0 loss is NaN");
      assert.ok(Number.isFinite(loss[1]!) && Number.isFinite(loss[2]!), "other rows are finite");
    });
  });
}

test("row kernels: property test (float32 kernels vs float64 reference)", (t) => {
  const modes = MODES.filter((m) => skipMode(m) === null && !m.f64);
  if (modes.length === 0) return t.skip("no float32 kernels");
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 9 }),
      fc.integer({ min: 1, max: 70 }),
      fc.double({ min: 0.1, max: 30, noNaN: true }),
      fc.integer({ min: 0, max: modes.length - 1 }),
      fc.integer({ min: 1, max: 1 << 30 }),
      (rows, cols, scale, mi, seed) => {
        const mode = modes[mi]!;
        const x = Float32Array.from(rand(rows * cols, seed, -scale, scale));
        const xs = seen(x);
        const targets = Int32Array.from({ length: rows }, (_, r) => (seed + r) % cols);
        withKernelMode(mode, () => {
          const out = new Float32Array(rows * cols);
          softmaxRows(x, out, rows, cols);
          assertNear(out, refSoftmax(xs, rows, cols), 1e-5, 1e-30, "softmax");
          const loss = new Float32Array(rows);
          const lse = new Float32Array(rows);
          crossEntropyRows(x, targets, rows, cols, -1, loss, lse);
          for (let r = 0; r < rows; r++) {
            const l = refLogSumExp(xs, r * cols, cols);
            assertNear([loss[r]!], [l - xs[r * cols + targets[r]!]!], 0, 1e-6 * Math.max(1, Math.abs(l)), "loss");
          }
          const g = Float32Array.from({ length: rows }, () => 1);
          geluTanh(x, out, rows * cols);
          assertGeluF32(out, xs, "property");
          void g;
        });
      },
    ),
    { numRuns: 120, seed: 4242 },
  );
});

test("row kernels: invalid arguments throw errors that name the function and the problem", () => {
  const x = new Float32Array(6);
  assert.throws(() => softmaxRows(x, new Float32Array(5), 2, 3), /softmaxRows: out has 5 elements, expected at least 6 \(\[2,3\]\)/);
  assert.throws(
    () => softmaxRows(x, new Float64Array(6) as unknown as Float32Array, 2, 3),
    /softmaxRows: out must be a Float32Array like the input, got Float64Array/,
  );
  assert.throws(() => logSoftmaxRows(x, x, -1, 3), /logSoftmaxRows: rows must be a non-negative integer, got -1/);
  const loss = new Float32Array(2);
  const lse = new Float32Array(2);
  assert.throws(
    () => crossEntropyRows(x, Int32Array.from([0, 3]), 2, 3, -100, loss, lse),
    /crossEntropyRows: targets\[1\] = 3 is outside \[0, 3\) and is not ignoreIndex \(-100\)/,
  );
  assert.throws(
    () => crossEntropyRows(x, Int32Array.from([0]), 2, 3, -100, loss, lse),
    /crossEntropyRows: targets has 1 elements, expected at least 2/,
  );
  assert.throws(
    () => crossEntropyBackwardRows(x, Int32Array.from([0, 1]), lse, new Float32Array(1), x, 2, 3, -100),
    /crossEntropyBackwardRows: g has 1 elements, expected at least 2/,
  );
  assert.throws(
    () => layerNormRows(x, new Float32Array(2), null, x, new Float32Array(2), new Float32Array(2), 2, 3, 1e-5),
    /layerNormRows: gamma has 2 elements, expected at least 3/,
  );
  assert.throws(
    () => layerNormRows(x, null, null, x, new Float32Array(2), new Float32Array(2), 2, 3, -1),
    /layerNormRows: eps must be a finite non-negative number, got -1/,
  );
  assert.throws(() => geluTanh(x, x, 7), /geluTanh: x has 6 elements, expected at least 7/);
  assert.throws(() => geluTanhBackward(x, x, x, 1.5), /geluTanhBackward: n must be a non-negative integer, got 1.5/);
});
