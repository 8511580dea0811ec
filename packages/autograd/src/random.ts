import * as raw from "./random/raw.js";
import { getBackend } from "./backend/registry.js";
import { checkShape, sizeOf } from "./shape.js";
import { Tensor } from "./tensor.js";
import { requireFloat } from "./ops/util.js";

/**
 * Seeded, splittable, counter-based random numbers (Threefry-2x32, as in JAX). A key is an immutable value;
 * the same key always gives the same numbers, whatever else was drawn before. Derive new keys with `split`
 * or `foldIn` instead of reusing one. `dropout` uses the two words as a Philox-4x32-10 key instead (its stream is
 * documented in `random/philox.ts`).
 */
export class Key {
  /** @internal two 32-bit words */
  readonly words: Uint32Array;
  constructor(words: Uint32Array) {
    if (words.length !== 2) throw new Error(`random.Key: got ${words.length} words; expected 2`);
    this.words = Uint32Array.from(words);
  }
  /** Serialisable form: two unsigned 32-bit integers. */
  toJSON(): [number, number] {
    return [this.words[0], this.words[1]];
  }
  /** Restores a key from `toJSON()` output. */
  static fromJSON(v: readonly number[]): Key {
    if (!Array.isArray(v) || v.length !== 2 || v.some((x) => !Number.isInteger(x) || x < 0 || x > 0xffffffff)) {
      throw new Error(`random.Key.fromJSON: got ${JSON.stringify(v)}; expected two unsigned 32-bit integers`);
    }
    return new Key(Uint32Array.from(v));
  }
}

type FloatDType = "float32" | "float64";

function mk(data: Float32Array | Float64Array | Int32Array | Uint8Array, shape: number[], dtype: Tensor["dtype"]): Tensor {
  const be = getBackend();
  return new Tensor(be.fromArray(data, dtype), shape, dtype, be);
}

/** A key from an integer seed. */
export function key(seed: number): Key {
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`random.key: seed ${seed} is invalid; expected a non-negative integer`);
  return new Key(raw.keyFromSeed(seed));
}

/** n independent keys derived from `k`. */
export function split(k: Key, n = 2): Key[] {
  return raw.splitKey(k.words, n).map((w) => new Key(w));
}

/** A key derived from `k` and an integer (e.g. a step number). */
export function foldIn(k: Key, data: number): Key {
  return new Key(raw.foldIn(k.words, data));
}

/** Uniform values in [low, high). */
export function uniform(k: Key, shape: readonly number[], opts: { dtype?: FloatDType; low?: number; high?: number } = {}): Tensor {
  const s = checkShape("random.uniform", shape);
  const dtype = opts.dtype ?? "float32";
  return mk(raw.uniformRaw(k.words, sizeOf(s), dtype, opts.low ?? 0, opts.high ?? 1), s, dtype);
}

/**
 * The numbers `uniform(k, [n], opts)` holds, as a host array instead of a tensor: no backend is involved, so a
 * float64 draw works whatever the backend (the gpu backend has no float64 tensors), e.g. for sampling on the host.
 */
export function uniformValues(
  k: Key,
  n: number,
  opts: { dtype?: FloatDType; low?: number; high?: number } = {},
): Float32Array | Float64Array {
  if (!Number.isInteger(n) || n < 0) throw new Error(`random.uniformValues: n is ${n}; expected a non-negative integer`);
  return raw.uniformRaw(k.words, n, opts.dtype ?? "float32", opts.low ?? 0, opts.high ?? 1);
}

/** Standard normal values (times `std`, plus `mean`). */
export function normal(k: Key, shape: readonly number[], opts: { dtype?: FloatDType; mean?: number; std?: number } = {}): Tensor {
  const s = checkShape("random.normal", shape);
  const dtype = opts.dtype ?? "float32";
  const v = raw.normalRaw(k.words, sizeOf(s), dtype);
  const m = opts.mean ?? 0,
    sd = opts.std ?? 1;
  if (m !== 0 || sd !== 1) for (let i = 0; i < v.length; i++) v[i] = m + sd * v[i];
  return mk(v, s, dtype);
}

/** Normal values truncated to [lower, upper] standard deviations, then scaled by `std`. */
export function truncatedNormal(
  k: Key,
  shape: readonly number[],
  opts: { dtype?: FloatDType; lower?: number; upper?: number; std?: number } = {},
): Tensor {
  const s = checkShape("random.truncatedNormal", shape);
  const dtype = opts.dtype ?? "float32";
  const v = raw.truncatedNormalRaw(k.words, sizeOf(s), dtype, opts.lower ?? -2, opts.upper ?? 2);
  const sd = opts.std ?? 1;
  if (sd !== 1) for (let i = 0; i < v.length; i++) v[i] *= sd;
  return mk(v, s, dtype);
}

/** Boolean mask, true with probability p. */
export function bernoulli(k: Key, p: number, shape: readonly number[]): Tensor {
  const s = checkShape("random.bernoulli", shape);
  if (!(p >= 0 && p <= 1)) throw new Error(`random.bernoulli: p = ${p}; expected a probability in [0, 1]`);
  return mk(raw.bernoulliRaw(k.words, sizeOf(s), p), s, "bool");
}

/** Samples class indices from logits along the last axis (one int32 per row). */
export function categorical(k: Key, logits: Tensor): Tensor {
  requireFloat("random.categorical", logits);
  const C = logits.shape[logits.rank - 1];
  const rows = logits.size / C;
  const data = logits.data() as Float32Array | Float64Array;
  return mk(raw.categoricalRaw(k.words, data, rows, C), logits.shape.slice(0, -1), "int32");
}

/** A uniformly random permutation of 0..n−1 (int32). */
export function permutation(k: Key, n: number): Tensor {
  if (!Number.isInteger(n) || n < 0) throw new Error(`random.permutation: n = ${n}; expected a non-negative integer`);
  return mk(raw.permutationRaw(k.words, n), [n], "int32");
}
