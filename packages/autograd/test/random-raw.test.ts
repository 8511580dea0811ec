import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  threefry2x32,
  threefry2x32Rounds,
  keyFromSeed,
  splitKey,
  foldIn,
  randomBits,
  uniformRaw,
  normalRaw,
  truncatedNormalRaw,
  bernoulliRaw,
  categoricalRaw,
  permutationRaw,
  normalQuantile,
  normalCdf,
} from "../src/random/raw.js";

const K = (a: number, b: number) => Uint32Array.of(a, b);

/** Abramowitz & Stegun 7.1.26 erf (|error| < 1.5e-7): an independent reference for the KS tests. */
function erfAS(x: number): number {
  const s = x < 0 ? -1 : 1;
  const ax = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * ax);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-ax * ax);
  return s * y;
}
const PhiRef = (x: number) => 0.5 * (1 + erfAS(x / Math.SQRT2));

/** Kolmogorov–Smirnov statistic of a sample against a CDF. */
function ksStat(sample: ArrayLike<number>, cdf: (x: number) => number): number {
  const xs = Float64Array.from(sample).sort();
  const n = xs.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = cdf(xs[i]);
    d = Math.max(d, f - i / n, (i + 1) / n - f);
  }
  return d;
}
/** KS critical value at significance 0.001 (asymptotic): 1.95/√n. */
const ksCrit = (n: number) => 1.95 / Math.sqrt(n);

function meanVar(x: ArrayLike<number>): [number, number] {
  let m = 0;
  for (let i = 0; i < x.length; i++) m += x[i];
  m /= x.length;
  let v = 0;
  for (let i = 0; i < x.length; i++) v += (x[i] - m) ** 2;
  return [m, v / (x.length - 1)];
}

describe("threefry2x32", () => {
  test("Random123 known-answer vectors (20 rounds)", () => {
    // (counter, key) → output, from Random123's kat_vectors.
    assert.deepEqual(threefry2x32(K(0, 0), 0, 0), [0x6b200159, 0x99ba4efe]);
    assert.deepEqual(threefry2x32(K(0xffffffff, 0xffffffff), 0xffffffff, 0xffffffff), [0x1cb996fc, 0xbb002be7]);
    assert.deepEqual(threefry2x32(K(0x13198a2e, 0x03707344), 0x243f6a88, 0x85a308d3), [0xc4923a9c, 0x483df7a0]);
  });

  test("Random123 known-answer vectors (13 and 32 rounds)", () => {
    assert.deepEqual(threefry2x32Rounds(K(0, 0), 0, 0, 13), [0x9d1c5ec6, 0x8bd50731]);
    assert.deepEqual(threefry2x32Rounds(K(0xffffffff, 0xffffffff), 0xffffffff, 0xffffffff, 13), [0xfd36d048, 0x2d17272c]);
    assert.deepEqual(threefry2x32Rounds(K(0x13198a2e, 0x03707344), 0x243f6a88, 0x85a308d3, 13), [0xba3e4725, 0xf27d669e]);
    assert.deepEqual(threefry2x32Rounds(K(0, 0), 0, 0, 32), [0xcee3d47e, 0xa23dfd5c]);
    assert.deepEqual(threefry2x32Rounds(K(0xffffffff, 0xffffffff), 0xffffffff, 0xffffffff, 32), [0x6e2fe0d0, 0xb1b76f82]);
  });

  test("matches JAX's published split of PRNGKey(0) (original scheme hashes counters (0,2) and (1,3))", () => {
    // jax.random.split(PRNGKey(0)) without partitionable threefry = [[4146024105, 967050713], [2718843009, 1272950319]]
    assert.deepEqual(threefry2x32(K(0, 0), 0, 2), [4146024105, 2718843009]);
    assert.deepEqual(threefry2x32(K(0, 0), 1, 3), [967050713, 1272950319]);
  });

  test("rejects malformed keys and counters", () => {
    assert.throws(() => threefry2x32(new Uint32Array(3), 0, 0), /threefry2x32: key must be a Uint32Array of length 2/);
    assert.throws(() => threefry2x32(K(0, 0), -1, 0), /x0 must be an integer in \[0, 2\^32\)/);
    assert.throws(() => threefry2x32(K(0, 0), 0, 2 ** 32), /x1 must be an integer/);
  });
});

describe("keys", () => {
  test("keyFromSeed follows PRNGKey: [hi, lo] of the 64-bit seed", () => {
    assert.deepEqual(Array.from(keyFromSeed(0)), [0, 0]);
    assert.deepEqual(Array.from(keyFromSeed(42)), [0, 42]);
    assert.deepEqual(Array.from(keyFromSeed(2 ** 32 + 5)), [1, 5]);
    assert.deepEqual(Array.from(keyFromSeed(-1)), [0xffffffff, 0xffffffff]);
    assert.deepEqual(Array.from(keyFromSeed(2n ** 64n - 2n)), [0xffffffff, 0xfffffffe]);
    assert.deepEqual(Array.from(keyFromSeed(-(2n ** 63n))), [0x80000000, 0]);
    assert.throws(() => keyFromSeed(1.5), /keyFromSeed: seed must be a safe integer/);
    assert.throws(() => keyFromSeed(2 ** 53), /keyFromSeed: seed must be a safe integer/);
    assert.throws(() => keyFromSeed(2n ** 64n), /outside \[-2\^63, 2\^64\)/);
  });

  test("splitKey is deterministic, prefix-stable, distinct, and equals foldIn(key, j)", () => {
    const key = keyFromSeed(1234);
    const a = splitKey(key, 1000);
    const b = splitKey(key, 1000);
    assert.deepEqual(
      a.map((k) => Array.from(k)),
      b.map((k) => Array.from(k)),
    );
    const seen = new Set(a.map((k) => `${k[0]},${k[1]}`));
    seen.add(`${key[0]},${key[1]}`);
    assert.equal(seen.size, 1001);
    assert.deepEqual(
      splitKey(key, 3).map((k) => Array.from(k)),
      a.slice(0, 3).map((k) => Array.from(k)),
    );
    for (const j of [0, 1, 17, 999]) assert.deepEqual(Array.from(foldIn(key, j)), Array.from(a[j]));
    assert.deepEqual(Array.from(a[5]), threefry2x32(key, 0, 5));
    // Different parents give different children.
    assert.notDeepEqual(Array.from(splitKey(keyFromSeed(1235), 1)[0]), Array.from(a[0]));
    assert.equal(splitKey(key, 0).length, 0);
  });

  test("foldIn takes data modulo 2^32 and validates it", () => {
    const key = keyFromSeed(7);
    assert.deepEqual(Array.from(foldIn(key, -1)), Array.from(foldIn(key, 0xffffffff)));
    assert.throws(() => foldIn(key, 0.5), /foldIn: data must be an integer/);
  });
});

describe("samplers", () => {
  const key = keyFromSeed(20240601);

  test("randomBits: counter-based (element i depends only on key and i) and call-order independent", () => {
    const long = randomBits(key, 1000);
    const short = randomBits(key, 10);
    assert.deepEqual(Array.from(short), Array.from(long.subarray(0, 10)));
    const [h0, h1] = threefry2x32(key, 0, 123);
    assert.equal(long[123], (h0 ^ h1) >>> 0);
    const u1 = uniformRaw(key, 50, "float64");
    normalRaw(foldIn(key, 1), 100, "float32");
    permutationRaw(foldIn(key, 2), 10);
    const u2 = uniformRaw(key, 50, "float64");
    assert.deepEqual(Array.from(u1), Array.from(u2));
    // Each bit is fair: about half of 32·N bits set.
    let ones = 0;
    for (const w of long) for (let b = 0; b < 32; b++) ones += (w >>> b) & 1;
    const n = 32 * long.length;
    assert.ok(Math.abs(ones - n / 2) < 4 * Math.sqrt(n / 4));
  });

  test("uniform float64: mean, variance, KS, range", () => {
    const n = 100_000;
    const u = uniformRaw(key, n, "float64");
    const [m, v] = meanVar(u);
    assert.ok(Math.abs(m - 0.5) < 4 * Math.sqrt(1 / 12 / n), `mean ${m}`);
    assert.ok(Math.abs(v - 1 / 12) < 0.002, `var ${v}`);
    assert.ok(ksStat(u, (x) => Math.min(1, Math.max(0, x))) < ksCrit(n));
    assert.ok(u.every((x) => x >= 0 && x < 1));
    // 52 random mantissa bits: every value is a multiple of 2^-52.
    assert.ok(u.every((x) => Number.isInteger(x * 2 ** 52)));
  });

  test("uniform float32 on [-2, 3): KS, range, 23-bit grid before scaling", () => {
    const n = 100_000;
    const u = uniformRaw(key, n, "float32", -2, 3);
    assert.ok(u instanceof Float32Array);
    assert.ok(u.every((x) => x >= -2 && x < 3));
    assert.ok(ksStat(u, (x) => Math.min(1, Math.max(0, (x + 2) / 5))) < ksCrit(n));
    const unit = uniformRaw(key, 1000, "float32");
    assert.ok(unit.every((x) => Number.isInteger(x * 2 ** 23)));
    // The float32 draw is built from randomBits: mantissa = bits >>> 9.
    const bits = randomBits(key, 1000);
    for (let i = 0; i < 1000; i++) assert.equal(unit[i], (bits[i] >>> 9) / 2 ** 23);
  });

  test("uniform stays below high even when rounding would reach it", () => {
    const hi = 1 + 2 ** -23; // the float32 right after 1
    const u = uniformRaw(key, 1000, "float32", 1, hi);
    assert.ok(u.every((x) => x === 1));
    const d = uniformRaw(key, 1000, "float64", 1, 1 + 2 ** -52);
    assert.ok(d.every((x) => x === 1));
    assert.throws(() => uniformRaw(key, 3, "float64", 2, 2), /uniformRaw: need finite bounds with low < high/);
    assert.throws(() => uniformRaw(key, 3, "int32" as "float32"), /uniformRaw: dtype must be 'float32' or 'float64'/);
    assert.throws(() => uniformRaw(key, -1, "float32"), /uniformRaw: n must be an integer/);
  });

  test("normal quantile and CDF match published values", () => {
    const q: [number, number][] = [
      [0.5, 0],
      [0.975, 1.959963984540054],
      [0.001, -3.090232306167813],
      [1e-10, -6.361340902404056],
      [0.8413447460685429, 1],
    ];
    for (const [p, x] of q) assert.ok(Math.abs(normalQuantile(p) - x) < 1e-14 * Math.max(1, Math.abs(x)), `Φ⁻¹(${p})`);
    const c: [number, number][] = [
      [1, 0.8413447460685429],
      [-1, 0.15865525393145707],
      [2, 0.9772498680518208],
      [-5, 2.866515718791939e-7],
      [-10, 7.619853024160527e-24],
    ];
    for (const [x, p] of c) assert.ok(Math.abs(normalCdf(x) - p) < 1e-13 * p, `Φ(${x}) = ${normalCdf(x)}`);
    // Round trip Φ(Φ⁻¹(p)) = p; the relative error grows like x²·ε in the far tail.
    for (const p of [1e-300, 1e-20, 0.01, 0.3, 0.7, 0.99]) {
      const x = normalQuantile(p);
      assert.ok(Math.abs(normalCdf(x) - p) < 1e-14 * (4 + x * x) * p, `round trip at ${p}`);
    }
    assert.throws(() => normalQuantile(1.5), /normalQuantile: p must be in \[0, 1\]/);
  });

  test("normal float64: mean, variance, KS; float32 is the rounded float64 draw", () => {
    const n = 100_000;
    const z = normalRaw(key, n, "float64");
    const [m, v] = meanVar(z);
    assert.ok(Math.abs(m) < 4 / Math.sqrt(n), `mean ${m}`);
    assert.ok(Math.abs(v - 1) < 4 * Math.sqrt(2 / n), `var ${v}`);
    assert.ok(ksStat(z, PhiRef) < ksCrit(n));
    const z32 = normalRaw(key, 1000, "float32");
    for (let i = 0; i < 1000; i++) assert.equal(z32[i], Math.fround(z[i]));
  });

  test("truncated normal: support, KS against the truncated CDF, tails, mirror symmetry", () => {
    const n = 40_000;
    for (const [a, b] of [
      [-1, 1],
      [0.5, 2.5],
      [-Infinity, -1],
      [3, 5],
    ] as [number, number][]) {
      const x = truncatedNormalRaw(key, n, "float64", a, b);
      assert.ok(x.every((v) => v >= a && v <= b));
      const pa = PhiRef(a);
      const pb = PhiRef(b);
      assert.ok(ksStat(x, (t) => (PhiRef(t) - pa) / (pb - pa)) < ksCrit(n), `KS on [${a}, ${b}]`);
    }
    // Far tail [8, ∞): the mean is the inverse Mills ratio, 1/R(8) with R(a) ≈ 1/a − 1/a³ + 3/a⁵ − 15/a⁷ + 105/a⁹.
    const a = 8;
    const mills = 1 / a - 1 / a ** 3 + 3 / a ** 5 - 15 / a ** 7 + 105 / a ** 9;
    const far = truncatedNormalRaw(key, 20_000, "float64", a, Infinity);
    assert.ok(far.every((v) => v >= a));
    assert.ok(Math.abs(meanVar(far)[0] - 1 / mills) < 0.005, `tail mean ${meanVar(far)[0]} vs ${1 / mills}`);
    // Beyond the range of Φ (Rayleigh tail): mean ≈ a + 1/a.
    const veryFar = truncatedNormalRaw(key, 20_000, "float64", 40, Infinity);
    assert.ok(veryFar.every((v) => v >= 40));
    assert.ok(Math.abs(meanVar(veryFar)[0] - (40 + 1 / 40)) < 0.002);
    // Mirror symmetry: [2, ∞) is exactly the negation of (−∞, −2] for the same key.
    const pos = truncatedNormalRaw(key, 1000, "float64", 2, Infinity);
    const neg = truncatedNormalRaw(key, 1000, "float64", -Infinity, -2);
    for (let i = 0; i < 1000; i++) assert.equal(pos[i], -neg[i]);
    const f32 = truncatedNormalRaw(key, 1000, "float32", -0.1, 0.1);
    assert.ok(f32 instanceof Float32Array && f32.every((v) => v >= Math.fround(-0.1) && v <= Math.fround(0.1)));
    const tiny = truncatedNormalRaw(key, 100, "float64", 0, 1e-20);
    assert.ok(tiny.every((v) => v >= 0 && v <= 1e-20));
    assert.throws(() => truncatedNormalRaw(key, 3, "float64", 1, 1), /truncatedNormalRaw: need lower < upper/);
  });

  test("bernoulli frequency, per-element probabilities, validation", () => {
    const n = 100_000;
    const p = 0.3;
    const x = bernoulliRaw(key, n, p);
    const k = x.reduce((s, v) => s + v, 0);
    assert.ok(Math.abs(k - n * p) < 4 * Math.sqrt(n * p * (1 - p)), `count ${k}`);
    const probs = Float64Array.from({ length: 1000 }, (_, i) => (i % 2 === 0 ? 0 : 1));
    const y = bernoulliRaw(key, 1000, probs);
    for (let i = 0; i < 1000; i++) assert.equal(y[i], i % 2);
    assert.throws(() => bernoulliRaw(key, 3, 1.5), /bernoulliRaw: p must be in \[0, 1\], got 1.5/);
    assert.throws(() => bernoulliRaw(key, 3, new Float64Array(2)), /bernoulliRaw: p has 2 entries, expected n=3/);
  });

  test("categorical frequencies match softmax(logits) (chi-square), -Infinity never drawn", () => {
    const logits = [0, 1, 2, -Infinity, -1];
    const cols = logits.length;
    const rows = 30_000;
    const all = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) all[r * cols + c] = logits[c];
    const draws = categoricalRaw(key, all, rows, cols);
    const counts = new Array(cols).fill(0);
    for (const d of draws) counts[d]++;
    assert.equal(counts[3], 0);
    const z = logits.reduce((s, l) => s + Math.exp(l), 0);
    let chi2 = 0;
    for (const c of [0, 1, 2, 4]) {
      const e = (rows * Math.exp(logits[c])) / z;
      chi2 += (counts[c] - e) ** 2 / e;
    }
    assert.ok(chi2 < 16.27, `chi² = ${chi2} (df 3, p = 0.001 critical value 16.27)`); // df = 3
    // float32 logits and a one-hot row.
    const hot = categoricalRaw(key, Float32Array.from([-Infinity, 5, -Infinity]), 1, 3);
    assert.equal(hot[0], 1);
    assert.throws(
      () => categoricalRaw(key, new Float64Array(5), 2, 3),
      /categoricalRaw: logits has 5 entries, expected rows×cols = 2×3 = 6/,
    );
    assert.throws(() => categoricalRaw(key, Float64Array.from([-Infinity, -Infinity]), 1, 2), /row 0 has all logits -Infinity/);
    assert.throws(() => categoricalRaw(key, Float64Array.from([NaN, 0]), 1, 2), /logits\[0, 0\] is NaN/);
  });

  test("permutation is a permutation and uniform over the 6 orders of n = 3 (chi-square)", () => {
    const p = permutationRaw(key, 1000);
    assert.deepEqual(
      Array.from(p).sort((a, b) => a - b),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.notDeepEqual(
      Array.from(p.subarray(0, 20)),
      Array.from({ length: 20 }, (_, i) => i),
    );
    const trials = 12_000;
    const counts = new Map<string, number>();
    const keys = splitKey(key, trials);
    for (const k of keys) {
      const s = Array.from(permutationRaw(k, 3)).join("");
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    assert.equal(counts.size, 6);
    let chi2 = 0;
    for (const c of counts.values()) chi2 += (c - trials / 6) ** 2 / (trials / 6);
    assert.ok(chi2 < 20.52, `chi² = ${chi2} (df 5, p = 0.001 critical value 20.52)`);
    assert.deepEqual(Array.from(permutationRaw(key, 0)), []);
    assert.throws(() => permutationRaw(key, -2), /permutationRaw: n must be an integer/);
  });
});
