/**
 * Sampling from a language model: temperature scaling, top-k filtering, one token at a time (the context
 * is the last `blockSize` tokens). Temperature 0 is greedy decoding. Draws use the project's counter-based
 * RNG (one key per position), so a seed fixes the output.
 */
import { noGrad, random, tensor, type Key } from "@qkvflow/autograd";
import type { TrainableModel } from "./model-types.js";

/** Options of `sampleTokens`. */
export interface SampleOptions {
  /** Number of tokens to generate. */
  maxNewTokens: number;
  /** Softmax temperature; 0 = greedy (default 1). */
  temperature?: number;
  /** Keep only the k most likely tokens (null or 0: all). */
  topK?: number | null;
  /** RNG key (default random.key(0)). */
  key?: Key;
  /** Stop after producing this id (e.g. GPT-2 EOS 50256). */
  stopId?: number | null;
  /** Context length limit (default: the model configuration's blockSize). */
  blockSize?: number;
  /** Called with each new token id as soon as it is drawn (for streaming output). */
  onToken?: (id: number) => void;
}

/** Next-token distribution after temperature and top-k: probabilities over the vocabulary (float64). */
export function nextTokenProbs(logits: ArrayLike<number>, temperature: number, topK: number | null): Float64Array {
  const V = logits.length;
  if (!(temperature > 0) || !Number.isFinite(temperature))
    throw new Error(`nextTokenProbs: temperature must be a finite number > 0, got ${temperature}`);
  let keepFrom = -Infinity;
  if (topK !== null && topK > 0 && topK < V) {
    const sorted = Float64Array.from(logits).sort();
    keepFrom = sorted[V - topK]!;
  }
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i]! >= keepFrom && logits[i]! > max) max = logits[i]!;
  const p = new Float64Array(V);
  let z = 0;
  for (let i = 0; i < V; i++) {
    if (logits[i]! < keepFrom) continue;
    const e = Math.exp((logits[i]! - max) / temperature);
    p[i] = e;
    z += e;
  }
  for (let i = 0; i < V; i++) p[i]! /= z;
  return p;
}

/** Index drawn from probabilities `p` with the uniform number u ∈ [0, 1) (inverse CDF). */
export function drawIndex(p: ArrayLike<number>, u: number): number {
  let c = 0;
  let last = -1;
  for (let i = 0; i < p.length; i++) {
    if (p[i]! <= 0) continue;
    c += p[i]!;
    last = i;
    if (u < c) return i;
  }
  return last;
}

/** Continues `prompt` (token ids) with sampled tokens; returns only the new tokens. */
export function sampleTokens(model: TrainableModel, prompt: readonly number[], opts: SampleOptions): number[] {
  const fn = "sampleTokens";
  if (prompt.length === 0) throw new Error(`${fn}: the prompt is empty; expected at least one token id`);
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0)
    throw new Error(`${fn}: maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
  const temperature = opts.temperature ?? 1;
  if (!(temperature >= 0) || !Number.isFinite(temperature))
    throw new Error(`${fn}: temperature must be a finite number >= 0, got ${temperature}`);
  const topK = opts.topK ?? null;
  if (topK !== null && (!Number.isInteger(topK) || topK < 0))
    throw new Error(`${fn}: topK must be a non-negative integer or null, got ${topK}`);
  const cfg = model.config as { blockSize?: number };
  const block = opts.blockSize ?? cfg.blockSize;
  if (block === undefined || !Number.isInteger(block) || block < 1)
    throw new Error(`${fn}: no blockSize in the model configuration; pass opts.blockSize`);
  const key = opts.key ?? random.key(0);
  const seq = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < opts.maxNewTokens; i++) {
    const ctx = seq.slice(-block);
    const x = tensor(Int32Array.from(ctx), { shape: [1, ctx.length], dtype: "int32" });
    const logits = noGrad(() => model.logits(x, { training: false }));
    const V = logits.shape[logits.shape.length - 1]!;
    const all = logits.data();
    const row = all.subarray(all.length - V);
    let next: number;
    if (temperature === 0) {
      next = 0;
      for (let v = 1; v < V; v++) if (row[v]! > row[next]!) next = v;
    } else {
      const p = nextTokenProbs(row, temperature, topK);
      // drawn on the host (the numbers random.uniform gives): a float64 tensor cannot live on the gpu backend
      const u = random.uniformValues(random.foldIn(key, i), 1, { dtype: "float64" })[0]!;
      next = drawIndex(p, u);
    }
    seq.push(next);
    out.push(next);
    opts.onToken?.(next);
    if (opts.stopId !== undefined && opts.stopId !== null && next === opts.stopId) break;
  }
  return out;
}
