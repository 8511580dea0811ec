/**
 * Perplexity = exp(mean token negative log-likelihood) over a split: windows of seqLen tokens every
 * seqLen tokens (so every token but the first is predicted exactly once), the final shorter window padded
 * (padding id 0; its targets are ignored, and causal models never let real positions see it), or only the first `maxBatches` batches when capped.
 */
import { noGrad, tensor } from "@qkvflow/autograd";
import { countEvalWindows, evalBatches, type TokenArray } from "./data/index.js";
import { IGNORE_INDEX, type TrainableModel } from "./model-types.js";

/** Options of `evaluatePerplexity`. */
export interface EvalOptions {
  /** Tokens per window. */
  seqLen: number;
  /** Windows per batch. */
  batchSize: number;
  /** Evaluate only the first N batches (default: all). */
  maxBatches?: number | null;
  /** Called after each batch with (done, total). */
  onBatch?: (done: number, total: number) => void;
}

/** Result of an evaluation. */
export interface EvalResult {
  /** Mean negative log-likelihood per predicted token (nats). */
  loss: number;
  /** exp(loss). */
  ppl: number;
  /** Number of predicted tokens. */
  tokens: number;
  /** Number of batches evaluated. */
  batches: number;
}

/** Perplexity of `model` on `tokens` (no dropout, no gradients). */
export function evaluatePerplexity(model: TrainableModel, tokens: TokenArray, opts: EvalOptions): EvalResult {
  const { seqLen, batchSize } = opts;
  const cap = opts.maxBatches ?? null;
  if (cap !== null && (!Number.isInteger(cap) || cap < 1))
    throw new Error(`evaluatePerplexity: maxBatches must be a positive integer or null, got ${cap}`);
  if (tokens.length < 2) throw new Error(`evaluatePerplexity: the split has ${tokens.length} token(s); expected at least 2`);
  const windows = countEvalWindows(tokens.length, { seqLen });
  const totalBatches = Math.ceil(windows / batchSize);
  const total = cap === null ? totalBatches : Math.min(cap, totalBatches);
  let nll = 0;
  let count = 0;
  let done = 0;
  for (const b of evalBatches(tokens, { batchSize, seqLen, padId: 0 })) {
    if (done >= total) break;
    const targets = Int32Array.from(b.targets);
    let real = 0;
    for (let i = 0; i < targets.length; i++) {
      if (b.mask![i] === 1) real++;
      else targets[i] = IGNORE_INDEX;
    }
    if (real > 0) {
      const x = tensor(b.inputs, { shape: [b.batch, b.seqLen], dtype: "int32" });
      const y = tensor(targets, { shape: [b.batch, b.seqLen], dtype: "int32" });
      const mean = noGrad(() => model.loss(x, y, { training: false })).item();
      nll += mean * real;
      count += real;
    }
    done++;
    opts.onBatch?.(done, total);
  }
  const loss = nll / count;
  return { loss, ppl: Math.exp(loss), tokens: count, batches: done };
}
