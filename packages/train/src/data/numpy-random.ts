/**
 * A bit-exact re-implementation of the parts of NumPy's random module that dataset splits depend on:
 * `np.random.SeedSequence`, the `PCG64` bit generator (XSL-RR 128/64, NumPy's default) and
 * `Generator.permutation(n)` (Fisher–Yates from the end, with NumPy's masked-rejection
 * `random_interval`). With these, `hfTrainTestSplit` reproduces Hugging Face `datasets`'
 * `Dataset.train_test_split(test_size, seed)` index sets exactly (that method draws
 * `np.random.default_rng(seed).permutation(n)`, puts the first `ceil(test_size * n)` indices in
 * the test split and the rest, in permutation order, in the train split).
 *
 * The 128-bit LCG is computed on eight 16-bit limbs held in doubles, so no BigInt is needed on the
 * hot path (a permutation of the 8 M OpenWebText rows takes about 1.5 s on one core).
 */

const MASK32 = 0xffffffff;
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const XSHIFT = 16;
const POOL_SIZE = 4;

/** Splits a non-negative safe integer into little-endian 32-bit words, as NumPy's `_int_to_uint32_array` does. */
function intToUint32Words(n: number, who: string): number[] {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new Error(`${who}: entropy values must be non-negative safe integers, got ${n}`);
  }
  if (n === 0) return [0];
  const out: number[] = [];
  let v = n;
  while (v > 0) {
    out.push(v % 0x100000000);
    v = Math.floor(v / 0x100000000);
  }
  return out;
}

/** Runs NumPy's SeedSequence on `entropy` and returns `nWords` 32-bit words of `generate_state`. */
export function seedSequenceState(entropy: number | readonly number[], nWords: number): Uint32Array {
  const who = "seedSequenceState";
  if (!Number.isInteger(nWords) || nWords < 0) throw new Error(`${who}: nWords must be a non-negative integer, got ${nWords}`);
  const words: number[] = typeof entropy === "number" ? intToUint32Words(entropy, who) : entropy.flatMap((v) => intToUint32Words(v, who));
  const pool = new Uint32Array(POOL_SIZE);
  let hashConst = INIT_A;
  const hashmix = (value: number): number => {
    let v = (value ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_A) >>> 0;
    v = Math.imul(v, hashConst) >>> 0;
    return (v ^ (v >>> XSHIFT)) >>> 0;
  };
  const mix = (x: number, y: number): number => {
    const r = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    return (r ^ (r >>> XSHIFT)) >>> 0;
  };
  for (let i = 0; i < POOL_SIZE; i++) pool[i] = hashmix(i < words.length ? words[i]! : 0);
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst]!, hashmix(pool[src]!));
    }
  }
  for (let src = POOL_SIZE; src < words.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst]!, hashmix(words[src]!));
  }
  const out = new Uint32Array(nWords);
  let hc = INIT_B;
  for (let i = 0; i < nWords; i++) {
    let v = (pool[i % POOL_SIZE]! ^ hc) >>> 0;
    hc = Math.imul(hc, MULT_B) >>> 0;
    v = Math.imul(v, hc) >>> 0;
    out[i] = (v ^ (v >>> XSHIFT)) >>> 0;
  }
  return out;
}

/** Converts a 128-bit BigInt to eight little-endian 16-bit limbs. */
function toLimbs(x: bigint): number[] {
  const out: number[] = [];
  for (let i = 0; i < 8; i++) out.push(Number((x >> BigInt(16 * i)) & 0xffffn));
  return out;
}

/** From four little-endian 32-bit words to eight 16-bit limbs. */
function wordsToLimbs(w: readonly number[]): number[] {
  const out: number[] = [];
  for (const x of w) out.push(x & 0xffff, x >>> 16);
  return out;
}

const INV_2_16 = 1 / 65536;
const PCG_MULT = Float64Array.from(toLimbs((2549297995355413924n << 64n) + 4865540595714422341n));

/** NumPy's PCG64 bit generator (128-bit LCG with the XSL-RR output function). */
export class Pcg64 {
  private readonly s = new Float64Array(8);
  private readonly inc = new Float64Array(8);
  private readonly scratch = new Float64Array(8);
  private hasUint32 = false;
  private bufferedUint32 = 0;

  /** Seeds like `np.random.PCG64(seed)` / `np.random.default_rng(seed)`. */
  constructor(seed: number | readonly number[]) {
    const w = seedSequenceState(seed, 8);
    // generate_state(4, uint64) -> v0..v3 (v_k = w[2k] | w[2k+1] << 32); state = v0 << 64 | v1; seq = v2 << 64 | v3.
    const initState = wordsToLimbs([w[2]!, w[3]!, w[0]!, w[1]!]);
    const initSeq = wordsToLimbs([w[6]!, w[7]!, w[4]!, w[5]!]);
    // inc = (initseq << 1) | 1 (mod 2^128)
    let carry = 0;
    for (let i = 0; i < 8; i++) {
      const v = initSeq[i]! * 2 + carry;
      this.inc[i] = v & 0xffff;
      carry = v >>> 16;
    }
    this.inc[0] = this.inc[0]! | 1;
    this.s.fill(0);
    this.step();
    carry = 0;
    for (let i = 0; i < 8; i++) {
      const v = this.s[i]! + initState[i]! + carry;
      this.s[i] = v % 65536;
      carry = Math.floor(v / 65536);
    }
    this.step();
  }

  /** state = state * MULT + inc (mod 2^128), schoolbook on 16-bit limbs (partial sums stay below 2^53). */
  private step(): void {
    const s = this.s;
    const t = this.scratch;
    const inc = this.inc;
    const m = PCG_MULT;
    let carry = 0;
    for (let k = 0; k < 8; k++) {
      let acc = carry + inc[k]!;
      for (let i = 0; i <= k; i++) acc += s[i]! * m[k - i]!;
      carry = Math.floor(acc * INV_2_16);
      t[k] = acc - carry * 65536;
    }
    s.set(t);
  }

  /** Next 64-bit output as [low 32 bits, high 32 bits]. */
  next64Words(): [number, number] {
    this.step();
    const s = this.s;
    const lo32 = (s[0]! + s[1]! * 65536) >>> 0;
    const lohi32 = (s[2]! + s[3]! * 65536) >>> 0;
    const hilo32 = (s[4]! + s[5]! * 65536) >>> 0;
    const hihi32 = (s[6]! + s[7]! * 65536) >>> 0;
    const xl = (lo32 ^ hilo32) >>> 0;
    const xh = (lohi32 ^ hihi32) >>> 0;
    const rot = s[7]! >>> 10; // top 6 bits of the 128-bit state
    if (rot === 0) return [xl, xh];
    if (rot === 32) return [xh, xl];
    if (rot < 32) {
      return [((xl >>> rot) | (xh << (32 - rot))) >>> 0, ((xh >>> rot) | (xl << (32 - rot))) >>> 0];
    }
    const r = rot - 32;
    return [((xh >>> r) | (xl << (32 - r))) >>> 0, ((xl >>> r) | (xh << (32 - r))) >>> 0];
  }

  /** Next 64-bit output as a BigInt (NumPy's `random_raw()`). */
  nextUint64(): bigint {
    const [lo, hi] = this.next64Words();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** Next 32-bit output; like NumPy it uses the low half of a 64-bit draw first, then the high half. */
  nextUint32(): number {
    if (this.hasUint32) {
      this.hasUint32 = false;
      return this.bufferedUint32;
    }
    const [lo, hi] = this.next64Words();
    this.hasUint32 = true;
    this.bufferedUint32 = hi;
    return lo;
  }

  /** Uniform integer in [0, max] by masked rejection (NumPy's `random_interval`, max < 2^32). */
  interval(max: number): number {
    if (max === 0) return 0;
    if (!Number.isInteger(max) || max < 0 || max > MASK32) {
      throw new Error(`Pcg64.interval: max must be an integer in [0, 2^32-1], got ${max}`);
    }
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    let v: number;
    do {
      v = (this.nextUint32() & mask) >>> 0;
    } while (v > max);
    return v;
  }
}

/** Same result as `np.random.default_rng(seed).permutation(n)` (as Int32Array). */
export function numpyPermutation(n: number, seed: number | readonly number[]): Int32Array {
  if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff) {
    throw new Error(`numpyPermutation: n must be an integer in [0, 2^31-1], got ${n}`);
  }
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  const rng = new Pcg64(seed);
  for (let i = n - 1; i >= 1; i--) {
    const j = rng.interval(i);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

/** Row indices of a held-out split. */
export interface HeldOutSplit {
  /** Train indices in the order Hugging Face's `train_test_split` returns them. */
  train: Int32Array;
  /** Test indices in the order Hugging Face's `train_test_split` returns them. */
  test: Int32Array;
}

/**
 * Reproduces Hugging Face `datasets` `Dataset.train_test_split(test_size=testSize, seed, shuffle=True)`:
 * `n_test = ceil(testSize * n)`, `n_train = n - n_test`, permutation from `np.random.default_rng(seed)`.
 */
export function hfTrainTestSplit(n: number, testSize: number, seed: number): HeldOutSplit {
  if (!(testSize > 0 && testSize < 1)) throw new Error(`hfTrainTestSplit: testSize must be in (0, 1), got ${testSize}`);
  if (!Number.isInteger(n) || n < 2) throw new Error(`hfTrainTestSplit: need at least 2 rows, got n=${n}`);
  const nTest = Math.ceil(testSize * n);
  const nTrain = n - nTest;
  if (nTrain <= 0) throw new Error(`hfTrainTestSplit: n=${n} with testSize=${testSize} leaves an empty train split`);
  const perm = numpyPermutation(n, seed);
  return { test: perm.slice(0, nTest), train: perm.slice(nTest) };
}
