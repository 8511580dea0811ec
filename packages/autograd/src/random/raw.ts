/**
 * Counter-based, splittable pseudo-random numbers over typed arrays (JAX-style keys).
 *
 * The core is the Threefry-2x32 block function with 20 rounds (Salmon et al., "Parallel random
 * numbers: as easy as 1, 2, 3", SC'11), verified against the Random123 known-answer vectors. A key
 * is a `Uint32Array` of two words. Every function here is pure: the output for element i depends
 * only on (key, i), never on call order, on how many elements were asked for, or on any global state.
 *
 * Key derivation follows JAX's "partitionable" Threefry scheme (the default since JAX 0.5):
 *  - element i of any draw hashes the 64-bit counter i as (hi word, lo word) = (⌊i/2³²⌋, i mod 2³²);
 *  - `splitKey(key, n)[j]` and `foldIn(key, j)` are both the hash of counter (0, j);
 *  - `randomBits` returns hash₀ XOR hash₁ (32 bits); float64 draws use the 64 bits hash₀·2³² + hash₁.
 * `uniformRaw` builds floats as JAX does (mantissa bits, so float32 values are multiples of 2⁻²³ and
 * float64 values multiples of 2⁻⁵² before scaling). Normal variates use the inverse CDF (Wichura's
 * AS241) rather than JAX's erfinv, so normals are not bit-identical to JAX's.
 */

/** Floating-point output types of the samplers. */
export type RandomFloatDType = "float32" | "float64";

const ROT = [13, 15, 26, 6, 17, 29, 16, 24];
const PARITY = 0x1bd11bda;
const TWO32 = 4294967296;
const TWO_M52 = 2 ** -52;
const TWO_M23 = 2 ** -23;

/**
 * Threefry-2x32 with a given number of rounds (13, 20 and 32 are the Random123 variants); returns the
 * two output words. Most callers want `threefry2x32` (20 rounds).
 */
export function threefry2x32Rounds(key: Uint32Array, x0: number, x1: number, rounds: number): [number, number] {
  checkKey("threefry2x32Rounds", key);
  checkWord("threefry2x32Rounds", "x0", x0);
  checkWord("threefry2x32Rounds", "x1", x1);
  if (!Number.isInteger(rounds) || rounds < 0 || rounds > 64) {
    throw new Error(`threefry2x32Rounds: rounds must be an integer in [0, 64], got ${rounds}`);
  }
  const out = new Uint32Array(2);
  hash(key[0], key[1], x0 >>> 0, x1 >>> 0, rounds, out);
  return [out[0], out[1]];
}

/** Threefry-2x32 (20 rounds) of the counter (x0, x1) under `key`; returns the two output words. */
export function threefry2x32(key: Uint32Array, x0: number, x1: number): [number, number] {
  checkKey("threefry2x32", key);
  checkWord("threefry2x32", "x0", x0);
  checkWord("threefry2x32", "x1", x1);
  const out = new Uint32Array(2);
  hash(key[0], key[1], x0 >>> 0, x1 >>> 0, 20, out);
  return [out[0], out[1]];
}

/** Threefry-2x32 core; writes the output words to out[0], out[1]. */
function hash(k0: number, k1: number, x0: number, x1: number, rounds: number, out: Uint32Array): void {
  const k2 = (PARITY ^ k0 ^ k1) >>> 0;
  let a = (x0 + k0) >>> 0;
  let b = (x1 + k1) >>> 0;
  for (let r = 0; r < rounds; r++) {
    a = (a + b) >>> 0;
    const rot = ROT[r & 7];
    b = ((b << rot) | (b >>> (32 - rot))) ^ a;
    if ((r & 3) === 3) {
      const s = (r + 1) >>> 2;
      const s0 = s % 3;
      const ka = s0 === 0 ? k0 : s0 === 1 ? k1 : k2;
      const kb = s0 === 0 ? k1 : s0 === 1 ? k2 : k0;
      a = (a + ka) >>> 0;
      b = (b + kb + s) >>> 0;
    }
  }
  out[0] = a;
  out[1] = b >>> 0;
}

/** Hashes the counters 0..n-1 under key, filling hi[i], lo[i] with the two output words. */
function hashCounters(key: Uint32Array, n: number, hi: Uint32Array, lo: Uint32Array): void {
  const k0 = key[0];
  const k1 = key[1];
  const out = new Uint32Array(2);
  for (let i = 0; i < n; i++) {
    hash(k0, k1, Math.floor(i / TWO32), i >>> 0, 20, out);
    hi[i] = out[0];
    lo[i] = out[1];
  }
}

function checkKey(fn: string, key: Uint32Array): void {
  if (!(key instanceof Uint32Array) || key.length !== 2) {
    const what = key instanceof Uint32Array ? `Uint32Array of length ${key.length}` : typeof key;
    throw new Error(`${fn}: key must be a Uint32Array of length 2, got ${what}`);
  }
}

function checkWord(fn: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v >= TWO32) {
    throw new Error(`${fn}: ${name} must be an integer in [0, 2^32), got ${v}`);
  }
}

function checkCount(fn: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 32) {
    throw new Error(`${fn}: n must be an integer in [0, 2^32], got ${n}`);
  }
}

function checkDType(fn: string, dtype: string): void {
  if (dtype !== "float32" && dtype !== "float64") {
    throw new Error(`${fn}: dtype must be 'float32' or 'float64', got '${dtype}'`);
  }
}

/**
 * Key from an integer seed, as `jax.random.PRNGKey`: the seed is read as a signed 64-bit integer and
 * the key is [high word, low word] of its two's complement, so seeds in [0, 2³²) give [0, seed].
 * Numbers must be safe integers (|seed| < 2⁵³); pass a bigint for the full range [−2⁶³, 2⁶⁴).
 * (JAX without x64 mode treats seeds as int32, so only non-negative seeds below 2³¹ agree with it there.)
 */
export function keyFromSeed(seed: number | bigint): Uint32Array {
  let s: bigint;
  if (typeof seed === "bigint") {
    if (seed < -(1n << 63n) || seed >= 1n << 64n) {
      throw new Error(`keyFromSeed: bigint seed ${seed} is outside [-2^63, 2^64)`);
    }
    s = seed;
  } else {
    if (!Number.isSafeInteger(seed)) {
      throw new Error(`keyFromSeed: seed must be a safe integer (|seed| < 2^53) or a bigint, got ${seed}`);
    }
    s = BigInt(seed);
  }
  const u = BigInt.asUintN(64, s);
  return Uint32Array.of(Number(u >> 32n), Number(u & 0xffffffffn));
}

/** Splits a key into n independent keys; key j is the Threefry hash of counter (0, j), as in JAX. */
export function splitKey(key: Uint32Array, n: number): Uint32Array[] {
  checkKey("splitKey", key);
  if (!Number.isInteger(n) || n < 0 || n >= TWO32) {
    throw new Error(`splitKey: n must be an integer in [0, 2^32), got ${n}`);
  }
  const out = new Uint32Array(2);
  const keys: Uint32Array[] = [];
  for (let j = 0; j < n; j++) {
    hash(key[0], key[1], 0, j, 20, out);
    keys.push(Uint32Array.of(out[0], out[1]));
  }
  return keys;
}

/** Derives a new key from `key` and an integer (taken modulo 2³², like JAX's uint32 cast). */
export function foldIn(key: Uint32Array, data: number): Uint32Array {
  checkKey("foldIn", key);
  if (!Number.isInteger(data) || data < -(2 ** 31) || data >= TWO32) {
    throw new Error(`foldIn: data must be an integer in [-2^31, 2^32), got ${data}`);
  }
  const out = new Uint32Array(2);
  hash(key[0], key[1], 0, data >>> 0, 20, out);
  return Uint32Array.of(out[0], out[1]);
}

/** n random 32-bit words; element i is hash₀ XOR hash₁ of counter i, so it depends only on (key, i). */
export function randomBits(key: Uint32Array, n: number): Uint32Array {
  checkKey("randomBits", key);
  checkCount("randomBits", n);
  const hi = new Uint32Array(n);
  const lo = new Uint32Array(n);
  hashCounters(key, n, hi, lo);
  for (let i = 0; i < n; i++) hi[i] = hi[i] ^ lo[i];
  return hi;
}

/** Largest float strictly below x in the given precision (x finite). */
function nextDown(x: number, dtype: RandomFloatDType): number {
  if (dtype === "float64") {
    if (x === 0) return -Number.MIN_VALUE;
    const f = new Float64Array([x]);
    const b = new BigInt64Array(f.buffer);
    b[0] += x > 0 ? -1n : 1n;
    return f[0];
  }
  if (x === 0) return -(2 ** -149);
  const f = new Float32Array([x]);
  const u = new Int32Array(f.buffer);
  u[0] += x > 0 ? -1 : 1;
  return f[0];
}

/** Open-interval uniforms (m + ½)·2⁻⁵² from the 64 hash bits of counters 0..n-1. */
function openUniform64(key: Uint32Array, n: number): Float64Array {
  const hi = new Uint32Array(n);
  const lo = new Uint32Array(n);
  hashCounters(key, n, hi, lo);
  const u = new Float64Array(n);
  for (let i = 0; i < n; i++) u[i] = (hi[i] * 1048576 + (lo[i] >>> 12) + 0.5) * TWO_M52;
  return u;
}

/** Uniform floats in [low, high) (bounds rounded to dtype first); float32 uses 23, float64 52 random mantissa bits. */
export function uniformRaw(key: Uint32Array, n: number, dtype: "float32", low?: number, high?: number): Float32Array;
export function uniformRaw(key: Uint32Array, n: number, dtype: "float64", low?: number, high?: number): Float64Array;
export function uniformRaw(key: Uint32Array, n: number, dtype: RandomFloatDType, low?: number, high?: number): Float32Array | Float64Array;
export function uniformRaw(key: Uint32Array, n: number, dtype: RandomFloatDType, low = 0, high = 1): Float32Array | Float64Array {
  const fn = "uniformRaw";
  checkKey(fn, key);
  checkCount(fn, n);
  checkDType(fn, dtype);
  const lo = dtype === "float32" ? Math.fround(low) : low;
  const hiB = dtype === "float32" ? Math.fround(high) : high;
  if (!Number.isFinite(lo) || !Number.isFinite(hiB) || !(lo < hiB)) {
    throw new Error(`${fn}: need finite bounds with low < high (after rounding to ${dtype}), got low=${low}, high=${high}`);
  }
  const width = hiB - lo;
  const top = nextDown(hiB, dtype);
  const hi = new Uint32Array(n);
  const lw = new Uint32Array(n);
  hashCounters(key, n, hi, lw);
  if (dtype === "float32") {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = ((hi[i] ^ lw[i]) >>> 9) * TWO_M23;
      const v = Math.fround(u * width + lo);
      out[i] = v >= hiB ? top : v < lo ? lo : v;
    }
    return out;
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = (hi[i] * 1048576 + (lw[i] >>> 12)) * TWO_M52;
    const v = u * width + lo;
    out[i] = v >= hiB ? top : v < lo ? lo : v;
  }
  return out;
}

// Wichura (1988), algorithm AS241 (PPND16): coefficients, lowest degree first.
const AS241_A = [
  3.387132872796366608, 133.14166789178437745, 1971.5909503065514427, 13731.693765509461125, 45921.953931549871457, 67265.770927008700853,
  33430.575583588128105, 2509.0809287301226727,
];
const AS241_B = [
  1, 42.313330701600911252, 687.1870074920579083, 5394.1960214247511077, 21213.794301586595867, 39307.89580009271061, 28729.085735721942674,
  5226.495278852854561,
];
const AS241_C = [
  1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055, 3.64784832476320460504, 1.27045825245236838258,
  0.24178072517745061177, 0.0227238449892691845833, 7.7454501427834140764e-4,
];
const AS241_D = [
  1, 2.05319162663775882187, 1.6763848301838038494, 0.68976733498510000455, 0.14810397642748007459, 0.0151986665636164571966,
  5.475938084995344946e-4, 1.05075007164441684324e-9,
];
const AS241_E = [
  6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358, 0.29656057182850489123, 0.026532189526576123093,
  0.0012426609473880784386, 2.71155556874348757815e-5, 2.01033439929228813265e-7,
];
const AS241_F = [
  1, 0.59983220655588793769, 0.13692988092273580531, 0.0148753612908506148525, 7.868691311456132591e-4, 1.8463183175100546818e-5,
  1.4215117583164458887e-7, 2.04426310338993978564e-15,
];

function poly(c: readonly number[], x: number): number {
  let s = 0;
  for (let i = c.length - 1; i >= 0; i--) s = s * x + c[i];
  return s;
}

/** Standard normal quantile Φ⁻¹(p) for p in [0, 1] (AS241, about 1e-16 relative accuracy). */
export function normalQuantile(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new Error(`normalQuantile: p must be in [0, 1], got ${p}`);
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (q * poly(AS241_A, r)) / poly(AS241_B, r);
  }
  let r = Math.sqrt(-Math.log(q < 0 ? p : 1 - p));
  let x: number;
  if (r <= 5) {
    r -= 1.6;
    x = poly(AS241_C, r) / poly(AS241_D, r);
  } else {
    r -= 5;
    x = poly(AS241_E, r) / poly(AS241_F, r);
  }
  return q < 0 ? -x : x;
}

/** Complementary error function erfc(z), accurate to ~1e-15 relative for z ≥ 0 (series / continued fraction). */
function erfc(z: number): number {
  if (Number.isNaN(z)) return NaN;
  if (z < 0) return 2 - erfc(-z);
  if (z < 3) {
    // erf(z) = 2/√π · e^{−z²} · Σ_k (2z²)^k · z / (1·3·…·(2k+1)): all terms positive.
    const z2 = 2 * z * z;
    let term = z;
    let sum = z;
    for (let k = 1; k < 200; k++) {
      term *= z2 / (2 * k + 1);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z) * sum;
  }
  if (z > 27) return 0;
  // erfc(z) = e^{−z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), evaluated bottom-up.
  let f = z;
  for (let k = 120; k >= 1; k--) f = z + k / 2 / f;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}

/** Standard normal CDF Φ(x), accurate in relative terms in the lower tail. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/**
 * Standard normal variates by inversion: z_i = Φ⁻¹(u_i) with u_i = (m_i + ½)·2⁻⁵² from 52 hash bits
 * of counter i, so |z| < 8.3. float32 output is the float64 value rounded.
 */
export function normalRaw(key: Uint32Array, n: number, dtype: "float32"): Float32Array;
export function normalRaw(key: Uint32Array, n: number, dtype: "float64"): Float64Array;
export function normalRaw(key: Uint32Array, n: number, dtype: RandomFloatDType): Float32Array | Float64Array;
export function normalRaw(key: Uint32Array, n: number, dtype: RandomFloatDType): Float32Array | Float64Array {
  const fn = "normalRaw";
  checkKey(fn, key);
  checkCount(fn, n);
  checkDType(fn, dtype);
  const u = openUniform64(key, n);
  const out = dtype === "float32" ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = normalQuantile(u[i]);
  return out;
}

/**
 * Standard normal variates conditioned on [lower, upper] (infinite bounds allowed), by inversion of
 * Φ on the side of the interval where Φ is accurate (the interval is mirrored to the negative side
 * when lower + upper > 0). If both bounds lie beyond 37 standard deviations on the same side the
 * tail is sampled from the Rayleigh approximation x = √(a² − 2·log(1 − u·(1 − e^{−(b²−a²)/2}))),
 * whose relative density error is O(1/a²); an interval too narrow for Φ to resolve is sampled uniformly.
 * Results are clamped to [lower, upper] after rounding.
 */
export function truncatedNormalRaw(key: Uint32Array, n: number, dtype: "float32", lower: number, upper: number): Float32Array;
export function truncatedNormalRaw(key: Uint32Array, n: number, dtype: "float64", lower: number, upper: number): Float64Array;
export function truncatedNormalRaw(
  key: Uint32Array,
  n: number,
  dtype: RandomFloatDType,
  lower: number,
  upper: number,
): Float32Array | Float64Array;
export function truncatedNormalRaw(
  key: Uint32Array,
  n: number,
  dtype: RandomFloatDType,
  lower: number,
  upper: number,
): Float32Array | Float64Array {
  const fn = "truncatedNormalRaw";
  checkKey(fn, key);
  checkCount(fn, n);
  checkDType(fn, dtype);
  if (Number.isNaN(lower) || Number.isNaN(upper) || !(lower < upper)) {
    throw new Error(`${fn}: need lower < upper, got lower=${lower}, upper=${upper}`);
  }
  const flip = lower + upper > 0;
  const a = flip ? -upper : lower; // a < b, and the interval leans negative
  const b = flip ? -lower : upper;
  const pa = normalCdf(a);
  const pb = normalCdf(b);
  const u = openUniform64(key, n);
  const out = dtype === "float32" ? new Float32Array(n) : new Float64Array(n);
  const lo = dtype === "float32" ? Math.fround(lower) : lower;
  const hiB = dtype === "float32" ? Math.fround(upper) : upper;
  // Tail parameters on the positive side: y in [A, B] with A = −b, B = −a.
  const A = -b;
  const mode = pb - pa > 0 ? "invert" : A > 30 ? "tail" : "narrow";
  const B = -a;
  const tailMass = B === Infinity ? 1 : -Math.expm1(-0.5 * (B - A) * (B + A));
  for (let i = 0; i < n; i++) {
    let x: number;
    if (mode === "invert") {
      x = normalQuantile(pa + u[i] * (pb - pa));
    } else if (mode === "tail") {
      x = -Math.sqrt(A * A - 2 * Math.log1p(-u[i] * tailMass));
    } else {
      // Interval too narrow for Φ to resolve: the density is flat to first order across it.
      x = a + u[i] * (b - a);
    }
    if (flip) x = -x;
    if (dtype === "float32") x = Math.fround(x);
    out[i] = x < lo ? lo : x > hiB ? hiB : x;
  }
  return out;
}

/** n Bernoulli draws (1 with probability p, else 0); p is a scalar or one probability per element. */
export function bernoulliRaw(key: Uint32Array, n: number, p: number | Float64Array): Uint8Array {
  const fn = "bernoulliRaw";
  checkKey(fn, key);
  checkCount(fn, n);
  if (typeof p === "number") {
    if (!(p >= 0 && p <= 1)) throw new Error(`${fn}: p must be in [0, 1], got ${p}`);
  } else {
    if (p.length !== n) throw new Error(`${fn}: p has ${p.length} entries, expected n=${n}`);
    for (let i = 0; i < n; i++) {
      if (!(p[i] >= 0 && p[i] <= 1)) throw new Error(`${fn}: p[${i}] must be in [0, 1], got ${p[i]}`);
    }
  }
  const u = openUniform64(key, n);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = u[i] < (typeof p === "number" ? p : p[i]) ? 1 : 0;
  return out;
}

/**
 * One category per row drawn from softmax(logits[row]) by the Gumbel-max trick: argmax_c of
 * logits[r, c] − log(−log u), with u from counter r·cols + c. −Infinity logits are never chosen.
 */
export function categoricalRaw(key: Uint32Array, logits: Float32Array | Float64Array, rows: number, cols: number): Int32Array {
  const fn = "categoricalRaw";
  checkKey(fn, key);
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols < 1) {
    throw new Error(`${fn}: need integer rows ≥ 0 and cols ≥ 1, got rows=${rows}, cols=${cols}`);
  }
  if (logits.length !== rows * cols) {
    throw new Error(`${fn}: logits has ${logits.length} entries, expected rows×cols = ${rows}×${cols} = ${rows * cols}`);
  }
  checkCount(fn, rows * cols);
  const u = openUniform64(key, rows * cols);
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = -1;
    let bestVal = -Infinity;
    for (let c = 0; c < cols; c++) {
      const l = logits[r * cols + c];
      if (Number.isNaN(l) || l === Infinity) {
        throw new Error(`${fn}: logits[${r}, ${c}] is ${l}; expected finite values or -Infinity`);
      }
      if (l === -Infinity) continue;
      const v = l - Math.log(-Math.log(u[r * cols + c]));
      if (best < 0 || v > bestVal) {
        best = c;
        bestVal = v;
      }
    }
    if (best < 0) throw new Error(`${fn}: row ${r} has all logits -Infinity; expected at least one finite logit`);
    out[r] = best;
  }
  return out;
}

/**
 * Uniform random permutation of 0..n-1: indices sorted by their 64-bit hash (counter i), ties (probability
 * about n²/2⁶⁵) broken by index.
 */
export function permutationRaw(key: Uint32Array, n: number): Int32Array {
  const fn = "permutationRaw";
  checkKey(fn, key);
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 31 - 1) {
    throw new Error(`${fn}: n must be an integer in [0, 2^31 - 1], got ${n}`);
  }
  const hi = new Uint32Array(n);
  const lo = new Uint32Array(n);
  hashCounters(key, n, hi, lo);
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  idx.sort((p, q) => hi[p] - hi[q] || lo[p] - lo[q] || p - q);
  return idx;
}
