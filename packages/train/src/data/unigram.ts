/**
 * Unigram baseline perplexity.
 *
 * The model: p(w) = (c(w) + alpha) / (N + alpha * V), with c(w) the count of id w in the training
 * tokens, N their number, V the vocabulary size (50 257 for GPT-2) and alpha = 1 (add-one / Laplace
 * smoothing, so ids never seen in training keep a non-zero probability). Perplexity of an evaluation
 * stream x_1..x_M is exp(-(1/M) * sum_i log p(x_i)); every evaluation token counts, EOS included.
 * This is the number a model must beat to have learned anything beyond token frequencies.
 */
import { GPT2_VOCAB_SIZE } from "./tokenizer.js";
import type { TokenArray } from "./batching.js";

/** Unigram evaluation result. */
export interface UnigramResult {
  perplexity: number;
  /** Mean negative log-likelihood per token, in nats. */
  crossEntropy: number;
  /** Mean negative log-likelihood per token, in bits. */
  bitsPerToken: number;
  /** Number of evaluation tokens. */
  tokens: number;
  /** Number of training tokens. */
  trainTokens: number;
  vocabSize: number;
  alpha: number;
}

/** Options of the unigram model. */
export interface UnigramOptions {
  /** Vocabulary size V (default 50 257). */
  vocabSize?: number;
  /** Additive smoothing constant (default 1, Laplace). */
  alpha?: number;
}

/** Counts of every id in [0, vocabSize); throws on ids outside it. */
export function unigramCounts(tokens: TokenArray, vocabSize: number = GPT2_VOCAB_SIZE): Float64Array {
  if (!Number.isInteger(vocabSize) || vocabSize <= 0)
    throw new Error(`unigramCounts: vocabSize must be a positive integer, got ${vocabSize}`);
  const counts = new Float64Array(vocabSize);
  for (let i = 0; i < tokens.length; i++) {
    const id = tokens[i]!;
    if (id >= vocabSize) throw new Error(`unigramCounts: token ${id} at position ${i} is outside the vocabulary [0, ${vocabSize})`);
    counts[id]!++;
  }
  return counts;
}

/** Perplexity of `evalTokens` under the add-alpha unigram model estimated on `trainTokens`. */
export function unigramPerplexity(trainTokens: TokenArray, evalTokens: TokenArray, opts: UnigramOptions = {}): UnigramResult {
  const V = opts.vocabSize ?? GPT2_VOCAB_SIZE;
  const alpha = opts.alpha ?? 1;
  if (!(alpha >= 0) || !Number.isFinite(alpha)) throw new Error(`unigramPerplexity: alpha must be a finite number >= 0, got ${alpha}`);
  if (evalTokens.length === 0) throw new Error("unigramPerplexity: evalTokens is empty, expected at least one token");
  const counts = unigramCounts(trainTokens, V);
  const denom = trainTokens.length + alpha * V;
  if (!(denom > 0)) throw new Error("unigramPerplexity: no training tokens and alpha = 0 give no distribution");
  const logDenom = Math.log(denom);
  let nll = 0;
  for (let i = 0; i < evalTokens.length; i++) {
    const id = evalTokens[i]!;
    if (id >= V) throw new Error(`unigramPerplexity: eval token ${id} at position ${i} is outside the vocabulary [0, ${V})`);
    const c = counts[id]! + alpha;
    if (c === 0) {
      throw new Error(
        `unigramPerplexity: eval token ${id} at position ${i} never occurs in training and alpha = 0, so its probability is 0`,
      );
    }
    nll += logDenom - Math.log(c);
  }
  const crossEntropy = nll / evalTokens.length;
  return {
    perplexity: Math.exp(crossEntropy),
    crossEntropy,
    bitsPerToken: crossEntropy / Math.LN2,
    tokens: evalTokens.length,
    trainTokens: trainTokens.length,
    vocabSize: V,
    alpha,
  };
}
