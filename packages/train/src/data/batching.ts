/**
 * Language-model batches from a token stream.
 *
 * A split's tokens (documents already joined with EOS) are cut into windows of `seqLen + 1` tokens;
 * a window's input is its first `seqLen` tokens and its target the same span shifted by one.
 * Training windows start every `stride` tokens; the default `stride = seqLen + 1` makes windows
 * disjoint (no token shared), `stride = seqLen` shares each boundary token so every token after the
 * first is a target exactly once. A trailing remainder shorter than a window is not used in training.
 *
 * Training order: each epoch visits the windows in the order `permute(numWindows, epoch)`, B windows
 * per batch; the last `numWindows mod B` windows of an epoch's order are skipped (they are different
 * windows every epoch). The default permutation is NumPy's `default_rng([seed, epoch]).permutation(n)`
 * (bit-exact, see numpy-random.ts); plug in the project's RNG through `permute`. The sampler's position
 * is `{ epoch, index }`; `state()` / `restore()` make a resumed run produce exactly the batches the
 * uninterrupted run would have.
 *
 * Evaluation (`evalBatches`) visits windows in order with `stride = seqLen` by default, so every
 * token of the split except the first is predicted exactly once; the final, shorter window is
 * included, padded, with `mask` marking real targets (or dropped with `partial: 'drop'`). The last
 * batch may hold fewer than B windows (`batch` says how many).
 */
import { numpyPermutation } from "./numpy-random.js";

/** Token storage accepted by the batchers. */
export type TokenArray = Uint16Array | Int32Array | Uint32Array;

/** One batch: row-major [batch, seqLen] inputs and targets. */
export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
  batch: number;
  seqLen: number;
  /** Evaluation only: 1 where the target is real, 0 where it is padding. */
  mask?: Uint8Array;
}

/** Window order of an epoch: a permutation of [0, n). */
export type PermuteFn = (n: number, epoch: number) => Int32Array;

/** The default window order: NumPy's `default_rng([seed, epoch]).permutation(n)`. */
export function defaultPermute(seed: number): PermuteFn {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`defaultPermute: seed must be a non-negative integer, got ${seed}`);
  return (n, epoch) => numpyPermutation(n, [seed, epoch]);
}

function checkPositiveInt(v: number, what: string, who: string): void {
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${who}: ${what} must be a positive integer, got ${v}`);
}

/** Number of full windows of seqLen + 1 tokens starting every `stride` tokens. */
export function countWindows(length: number, seqLen: number, stride: number = seqLen + 1): number {
  checkPositiveInt(seqLen, "seqLen", "countWindows");
  checkPositiveInt(stride, "stride", "countWindows");
  if (length < seqLen + 1) return 0;
  return Math.floor((length - seqLen - 1) / stride) + 1;
}

/** Serialisable sampler position (plus the configuration it belongs to, checked on restore). */
export interface SamplerState {
  epoch: number;
  index: number;
  numWindows: number;
  batchSize: number;
  seqLen: number;
  stride: number;
}

/** Options of `BatchSampler`. */
export interface BatchSamplerOptions {
  batchSize: number;
  seqLen: number;
  /** Window start spacing (default seqLen + 1: disjoint windows). */
  stride?: number;
  /** Seed of the default permutation (default 0); ignored when `permute` is given. */
  seed?: number;
  /** Window order per epoch. */
  permute?: PermuteFn;
}

/** Shuffled training batches with a serialisable position. */
export class BatchSampler {
  /** Number of windows in the token stream. */
  readonly numWindows: number;
  /** Batches per epoch (floor(numWindows / batchSize)). */
  readonly batchesPerEpoch: number;
  readonly batchSize: number;
  readonly seqLen: number;
  readonly stride: number;
  private readonly permute: PermuteFn;
  private epoch = 0;
  private index = 0;
  private orderEpoch = -1;
  private order: Int32Array = new Int32Array(0);

  /** Creates a sampler over `tokens`. */
  constructor(
    private readonly tokens: TokenArray,
    opts: BatchSamplerOptions,
  ) {
    const who = "BatchSampler";
    checkPositiveInt(opts.batchSize, "batchSize", who);
    checkPositiveInt(opts.seqLen, "seqLen", who);
    this.batchSize = opts.batchSize;
    this.seqLen = opts.seqLen;
    this.stride = opts.stride ?? opts.seqLen + 1;
    checkPositiveInt(this.stride, "stride", who);
    this.numWindows = countWindows(tokens.length, this.seqLen, this.stride);
    this.batchesPerEpoch = Math.floor(this.numWindows / this.batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new Error(
        `${who}: ${tokens.length} tokens give ${this.numWindows} windows of ${this.seqLen + 1} tokens (stride ${this.stride}), fewer than one batch of ${this.batchSize}; use a smaller batchSize/seqLen or more data`,
      );
    }
    this.permute = opts.permute ?? defaultPermute(opts.seed ?? 0);
  }

  /** Window order of `epoch` (validated once per epoch). */
  windowOrder(epoch: number): Int32Array {
    if (epoch !== this.orderEpoch) {
      const p = this.permute(this.numWindows, epoch);
      if (p.length !== this.numWindows) {
        throw new Error(`BatchSampler: permute(${this.numWindows}, ${epoch}) returned ${p.length} indices, expected ${this.numWindows}`);
      }
      const seen = new Uint8Array(this.numWindows);
      for (const w of p) {
        if (!(w >= 0 && w < this.numWindows) || seen[w] === 1) {
          throw new Error(
            `BatchSampler: permute(${this.numWindows}, ${epoch}) is not a permutation of [0, ${this.numWindows}) (bad or repeated index ${w})`,
          );
        }
        seen[w] = 1;
      }
      this.order = p;
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  /** Copies window `w` into row `row` of a batch. */
  private fill(b: Batch, row: number, w: number): void {
    const T = this.seqLen;
    const start = w * this.stride;
    const src = this.tokens;
    const o = row * T;
    for (let t = 0; t < T; t++) {
      b.inputs[o + t] = src[start + t]!;
      b.targets[o + t] = src[start + t + 1]!;
    }
  }

  /** The next batch (advances the position; moves to the next epoch after the last batch). */
  next(): Batch {
    const order = this.windowOrder(this.epoch);
    const B = this.batchSize;
    const T = this.seqLen;
    const b: Batch = { inputs: new Int32Array(B * T), targets: new Int32Array(B * T), batch: B, seqLen: T };
    for (let r = 0; r < B; r++) this.fill(b, r, order[this.index * B + r]!);
    this.index++;
    if (this.index === this.batchesPerEpoch) {
      this.index = 0;
      this.epoch++;
    }
    return b;
  }

  /** Current position (the batch `next()` will return). */
  state(): SamplerState {
    return {
      epoch: this.epoch,
      index: this.index,
      numWindows: this.numWindows,
      batchSize: this.batchSize,
      seqLen: this.seqLen,
      stride: this.stride,
    };
  }

  /** Moves to a saved position; throws when it belongs to a different configuration or data. */
  restore(s: SamplerState): void {
    const mine = this.state();
    for (const k of ["numWindows", "batchSize", "seqLen", "stride"] as const) {
      if (s[k] !== mine[k]) throw new Error(`BatchSampler.restore: state has ${k}=${s[k]}, this sampler has ${k}=${mine[k]}`);
    }
    if (!Number.isInteger(s.epoch) || s.epoch < 0)
      throw new Error(`BatchSampler.restore: epoch must be a non-negative integer, got ${s.epoch}`);
    if (!Number.isInteger(s.index) || s.index < 0 || s.index >= this.batchesPerEpoch) {
      throw new Error(`BatchSampler.restore: index must be an integer in [0, ${this.batchesPerEpoch}), got ${s.index}`);
    }
    this.epoch = s.epoch;
    this.index = s.index;
  }
}

/** Options of `evalBatches`. */
export interface EvalBatchOptions {
  batchSize: number;
  seqLen: number;
  /** Window start spacing (default seqLen: every token but the first is a target once). */
  stride?: number;
  /** The final shorter window: `pad` (default; masked) or `drop`. */
  partial?: "pad" | "drop";
  /** Id used for padding (default 50256, GPT-2 EOS). */
  padId?: number;
}

/** Number of evaluation windows `evalBatches` yields (including a padded partial one). */
export function countEvalWindows(length: number, opts: Omit<EvalBatchOptions, "batchSize">): number {
  const T = opts.seqLen;
  const stride = opts.stride ?? T;
  const full = countWindows(length, T, stride);
  if ((opts.partial ?? "pad") === "drop") return full;
  const nextStart = full * stride;
  return nextStart + 1 < length ? full + 1 : full;
}

/** Evaluation batches over a whole split, in order (see the module comment). */
export function* evalBatches(tokens: TokenArray, opts: EvalBatchOptions): Generator<Batch> {
  const who = "evalBatches";
  checkPositiveInt(opts.batchSize, "batchSize", who);
  checkPositiveInt(opts.seqLen, "seqLen", who);
  const T = opts.seqLen;
  const stride = opts.stride ?? T;
  checkPositiveInt(stride, "stride", who);
  if (stride > T + 1) throw new Error(`${who}: stride ${stride} > seqLen + 1 = ${T + 1} would skip tokens`);
  const padId = opts.padId ?? 50256;
  const total = countEvalWindows(tokens.length, { seqLen: T, stride, partial: opts.partial ?? "pad" });
  for (let first = 0; first < total; first += opts.batchSize) {
    const B = Math.min(opts.batchSize, total - first);
    const b: Batch = { inputs: new Int32Array(B * T), targets: new Int32Array(B * T), batch: B, seqLen: T, mask: new Uint8Array(B * T) };
    for (let r = 0; r < B; r++) {
      const start = (first + r) * stride;
      const o = r * T;
      for (let t = 0; t < T; t++) {
        const i = start + t;
        const real = i + 1 < tokens.length;
        b.inputs[o + t] = i < tokens.length ? tokens[i]! : padId;
        b.targets[o + t] = real ? tokens[i + 1]! : padId;
        b.mask![o + t] = real ? 1 : 0;
      }
    }
    yield b;
  }
}
