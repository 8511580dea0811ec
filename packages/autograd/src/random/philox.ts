/**
 * Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a counter-based
 * generator that turns one 128-bit counter and a 64-bit key into four 32-bit words with ten rounds of two
 * 32×32→64-bit multiplications. Dropout draws its mask from it, four elements per hash, inside one pass
 * that also writes the dropped output.
 *
 * The dropout stream of a key (k0, k1) and n elements, a pure function of (key, n):
 *  - block j (j = 0, 1, …, ⌈n/4⌉ − 1) is Philox-4x32-10 under key (k0, k1) of the counter
 *    (j mod 2³², ⌊j/2³²⌋, 0, 0); its output words w0..w3 belong to elements 4j, 4j+1, 4j+2, 4j+3 (words past
 *    n are unused);
 *  - element i is dropped when its word is below t = round(rate·2³²), so P(drop) = t/2³² (within 2⁻³³ of rate);
 *  - a kept element becomes x·s with s = 1/(1 − rate), rounded to the element type (float32 → fround), and the
 *    product is rounded once to the element type; a dropped one becomes 0.
 * Nothing depends on the backend, on threads or on how the work is split, so the mask is the same everywhere.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
/** Philox-4x32 multipliers and key increments (Weyl constants). */
export const PHILOX_M0 = M0;
export const PHILOX_M1 = M1;
const M0_HI = M0 >>> 16;
const M0_LO = M0 & 0xffff;
const M1_HI = M1 >>> 16;
const M1_LO = M1 & 0xffff;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
export const PHILOX_W0 = W0;
export const PHILOX_W1 = W1;
const TWO32 = 4294967296;

/**
 * Philox-4x32 with `rounds` rounds (10 is the standard variant) of counter (c0, c1, c2, c3) under key (k0, k1);
 * returns the four output words. The hot loops below inline the same rounds.
 */
export function philox4x32Rounds(
  key: Uint32Array | readonly number[],
  ctr: readonly number[],
  rounds = 10,
): [number, number, number, number] {
  if (key.length !== 2 || ctr.length !== 4)
    throw new Error(`philox4x32: got a key of ${key.length} and a counter of ${ctr.length} words; expected 2 and 4`);
  for (const w of [...key, ...ctr]) {
    if (!Number.isInteger(w) || w < 0 || w >= TWO32) throw new Error(`philox4x32: word ${w} is not an unsigned 32-bit integer`);
  }
  if (!Number.isInteger(rounds) || rounds < 0 || rounds > 64)
    throw new Error(`philox4x32: rounds must be an integer in [0, 64], got ${rounds}`);
  let k0 = key[0],
    k1 = key[1];
  let c0 = ctr[0],
    c1 = ctr[1],
    c2 = ctr[2],
    c3 = ctr[3];
  for (let r = 0; r < rounds; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = Math.floor((c0 * M0_HI + Math.floor((c0 * M0_LO) / 65536)) / 65536);
    const lo0 = Math.imul(c0, M0) >>> 0;
    const hi1 = Math.floor((c2 * M1_HI + Math.floor((c2 * M1_LO) / 65536)) / 65536);
    const lo1 = Math.imul(c2, M1) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  return [c0, c1, c2, c3];
}

/** Philox-4x32-10 of counter `ctr` under `key`. */
export function philox4x32(key: Uint32Array | readonly number[], ctr: readonly number[]): [number, number, number, number] {
  return philox4x32Rounds(key, ctr, 10);
}

/** The drop threshold of `rate`: element i is dropped when its word is below it. */
export function dropThreshold(rate: number): number {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate ${rate} is invalid; expected 0 <= rate < 1`);
  return Math.round(rate * TWO32);
}

/**
 * Fills `words[b·4 .. b·4+3]` with the stream's block b for b in [from, to): the raw words of the dropout
 * stream (out must hold 4·(to − from) words).
 */
export function philoxStream(k0: number, k1: number, from: number, to: number, words: Uint32Array): void {
  for (let j = from, o = 0; j < to; j++, o += 4) {
    const w = philox4x32([k0 >>> 0, k1 >>> 0], [j % TWO32, Math.floor(j / TWO32), 0, 0]);
    words[o] = w[0];
    words[o + 1] = w[1];
    words[o + 2] = w[2];
    words[o + 3] = w[3];
  }
}

/** The keep mask of the dropout stream: 1 where element i is kept, 0 where dropped (n elements). */
export function dropoutKeepMask(k0: number, k1: number, n: number, rate: number): Uint8Array {
  // the fused pass on ones with scale 1 writes exactly the mask
  const ones = new Float32Array(n).fill(1);
  const kept = new Float32Array(n);
  dropoutInto(ones, kept, k0, k1, rate, 1);
  return Uint8Array.from(kept);
}

/**
 * out[i] = x[i]·s where the dropout stream of (k0, k1) keeps element i, 0 where it drops it (see the file comment),
 * over elements [begin, end) with begin a multiple of 4. One pass: four elements per Philox hash, rounds inlined.
 * `scale` must already be rounded to the element type.
 */
export function dropoutInto(
  x: Float32Array | Float64Array,
  out: Float32Array | Float64Array,
  k0: number,
  k1: number,
  rate: number,
  scale: number,
  begin = 0,
  end = x.length,
): void {
  if (begin % 4 !== 0) throw new Error(`dropoutInto: begin ${begin} must be a multiple of 4`);
  const t = dropThreshold(rate);
  const key0 = k0 >>> 0,
    key1 = k1 >>> 0;
  for (let i = begin; i < end; i += 4) {
    const j = i / 4;
    let c0 = j % TWO32,
      c1 = Math.floor(j / TWO32),
      c2 = 0,
      c3 = 0;
    let a = key0,
      b = key1;
    for (let r = 0; r < 10; r++) {
      const hi0 = Math.floor((c0 * M0_HI + Math.floor((c0 * M0_LO) / 65536)) / 65536);
      const lo0 = Math.imul(c0, M0) >>> 0;
      const hi1 = Math.floor((c2 * M1_HI + Math.floor((c2 * M1_LO) / 65536)) / 65536);
      const lo1 = Math.imul(c2, M1) >>> 0;
      c0 = (hi1 ^ c1 ^ a) >>> 0;
      c1 = lo1;
      c2 = (hi0 ^ c3 ^ b) >>> 0;
      c3 = lo0;
      a = (a + W0) >>> 0;
      b = (b + W1) >>> 0;
    }
    if (i + 3 < end) {
      out[i] = c0 >= t ? x[i] * scale : 0;
      out[i + 1] = c1 >= t ? x[i + 1] * scale : 0;
      out[i + 2] = c2 >= t ? x[i + 2] * scale : 0;
      out[i + 3] = c3 >= t ? x[i + 3] * scale : 0;
    } else {
      const w = [c0, c1, c2, c3];
      for (let r = 0; i + r < end; r++) out[i + r] = w[r] >= t ? x[i + r] * scale : 0;
    }
  }
}
