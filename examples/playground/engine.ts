/**
 * What the playground computes, apart from the page: the model it trains (a small DiffEqFormer over the GPT-2
 * vocabulary, the CLI's model family and checkpoint format), one training update, the held-out perplexity at a
 * chosen depth and solver, and streaming generation. Everything here runs on whatever backend is current
 * (`setBackend`), in Node as in a browser; the page (app.ts) only schedules it and draws the results.
 */
import { noGrad, random, tensor, tidy, valueAndGrad, type Tensor } from "../../packages/autograd/src/index.js";
import { PAPER_EULER, validateConfig, type DiffEqFormerConfig, type ModelConfig } from "../../packages/models/src/config.js";
import { createEmptyModel, createModel, type AnyModel } from "../../packages/models/src/factory.js";
import { decodeModelFile, encodeModelFile } from "../../packages/models/src/io.js";
import { evaluatePerplexity } from "../../packages/train/src/evaluate.js";
import { drawIndex, nextTokenProbs } from "../../packages/train/src/generate.js";
import { AdamW } from "../../packages/train/src/optim/adamw.js";
import { defaultDecayPatterns } from "../../packages/train/src/model-backend.js";

/** The model the page starts from: a DiffEqFormer over the full GPT-2 vocabulary, small enough for a browser. */
export const PLAYGROUND_MODEL: DiffEqFormerConfig = validateConfig({
  kind: "diffeqformer",
  vocabSize: 50257,
  blockSize: 32,
  nEmbd: 32,
  nHead: 2,
  nLayer: 4,
  timeEmbedDim: 4,
  sinusoidalDim: 8,
  embdPdrop: 0,
  residPdrop: 0,
  solver: { method: PAPER_EULER },
}) as DiffEqFormerConfig;

/** Training settings of the page (AdamW as the CLI's tiny configuration: β2 0.95, decay on the embeddings only). */
export const PLAYGROUND_TRAIN = { seed: 0, batchSize: 4, seqLen: 32, lr: 1e-2, beta2: 0.95, weightDecay: 0.1, maxGradNorm: 1 } as const;

/** Held-out evaluation: windows of (at most) this many tokens, this many per batch, over the first `tokens` held-out tokens. */
export const PLAYGROUND_EVAL = { seqLen: 32, batchSize: 8, tokens: 1024 } as const;

/** Solvers offered at inference ('euler' is the paper's scheme: M steps of dt = 1/M, field at t = (i+1)/M). */
export const SOLVERS = ["euler", "midpoint", "rk4", "dopri5"] as const;
export type SolverChoice = (typeof SOLVERS)[number];

/** Vector-field evaluations per step of each fixed-step solver. */
export const STAGES: Record<Exclude<SolverChoice, "dopri5">, number> = { euler: 1, midpoint: 2, rk4: 4 };

/** Inference settings: depth M (fixed-step solvers) or tolerance (dopri5, rtol = atol). */
export interface DepthSetting {
  solver: SolverChoice;
  steps: number;
  tol: number;
}

/** The model configuration with the solver of `d` (weights unchanged). */
export function withSolver(config: ModelConfig, d: DepthSetting): ModelConfig {
  if (config.kind !== "diffeqformer") throw new Error(`withSolver: the model is a '${config.kind}' model; expected a DiffEqFormer`);
  if (!SOLVERS.includes(d.solver)) throw new Error(`withSolver: solver '${d.solver}'; expected one of ${SOLVERS.join(", ")}`);
  if (!Number.isInteger(d.steps) || d.steps < 1) throw new Error(`withSolver: steps = ${d.steps}; expected an integer >= 1`);
  if (!(d.tol > 0)) throw new Error(`withSolver: tolerance = ${d.tol}; expected a number > 0`);
  const solver =
    d.solver === "euler"
      ? { method: PAPER_EULER, steps: d.steps }
      : d.solver === "dopri5"
        ? { method: "dopri5", rtol: d.tol, atol: d.tol, maxSteps: 200 }
        : { method: d.solver, steps: d.steps };
  return validateConfig({ ...config, solver });
}

/** A model of `config` holding the parameters of `from` (shared tensors, no copy). */
export function rebuild(from: AnyModel, config: ModelConfig): AnyModel {
  const m = createEmptyModel(config);
  m.loadStateDict(from.parameters(), { strict: true });
  return m;
}

/** A fresh playground model. */
export function newModel(seed: number = PLAYGROUND_TRAIN.seed, config: ModelConfig = PLAYGROUND_MODEL): AnyModel {
  return createModel(config, random.key(seed));
}

/** The model file the CLI writes into a checkpoint (model.safetensors) and reads back with --checkpoint. */
export function modelFileBytes(model: AnyModel): Uint8Array {
  return encodeModelFile(model.parameters(), model.config, { "qkvflow.source": "playground" });
}

/** A model from a model file (a checkpoint's model.safetensors, or one this page wrote), on the current backend. */
export function modelFromFile(bytes: Uint8Array, name = "model.safetensors"): AnyModel {
  const { model, modelConfig } = decodeModelFile(bytes, name);
  const config = validateConfig(modelConfig);
  const m = createEmptyModel(config);
  m.loadStateDict(model, { strict: true });
  return m;
}

/** Deterministic window starts of update `step` (mulberry32 on seed and step). */
export function batchStarts(step: number, count: number, nTokens: number, seqLen: number, seed: number): number[] {
  if (nTokens < seqLen + 1) throw new Error(`batchStarts: ${nTokens} tokens; expected at least seqLen + 1 = ${seqLen + 1}`);
  let s = (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: count }, () => Math.floor(next() * (nTokens - seqLen)));
}

/** Inputs and next-token targets [count, seqLen] of windows starting at `starts`. */
export function windows(tokens: ArrayLike<number>, starts: readonly number[], seqLen: number): { inputs: Int32Array; targets: Int32Array } {
  const inputs = new Int32Array(starts.length * seqLen);
  const targets = new Int32Array(starts.length * seqLen);
  starts.forEach((s0, b) => {
    for (let i = 0; i < seqLen; i++) {
      inputs[b * seqLen + i] = tokens[s0 + i]!;
      targets[b * seqLen + i] = tokens[s0 + i + 1]!;
    }
  });
  return { inputs, targets };
}

/** One finished update. */
export interface StepRecord {
  step: number;
  loss: number;
  gradNorm: number;
  tokens: number;
  ms: number;
}

/** Training state: the model, AdamW and the token stream. */
export class TrainSession {
  readonly opt: AdamW;
  step = 0;
  model: AnyModel;
  tokens: ArrayLike<number>;
  readonly seqLen: number;
  readonly batchSize: number;

  constructor(model: AnyModel, tokens: ArrayLike<number>, opts: { seqLen?: number; batchSize?: number } = {}) {
    this.model = model;
    this.tokens = tokens;
    const block = (model.config as { blockSize: number }).blockSize;
    this.seqLen = Math.min(opts.seqLen ?? PLAYGROUND_TRAIN.seqLen, block);
    this.batchSize = opts.batchSize ?? PLAYGROUND_TRAIN.batchSize;
    if (tokens.length < this.seqLen + 1) {
      throw new Error(`TrainSession: the training text has ${tokens.length} tokens; expected at least ${this.seqLen + 1}`);
    }
    this.opt = new AdamW({
      beta2: PLAYGROUND_TRAIN.beta2,
      weightDecay: PLAYGROUND_TRAIN.weightDecay,
      decayPatterns: defaultDecayPatterns(model.config.kind),
      maxGradNorm: PLAYGROUND_TRAIN.maxGradNorm,
    });
  }

  /** The batch of the next update. */
  nextBatch(): { inputs: Int32Array; targets: Int32Array } {
    const starts = batchStarts(this.step, this.batchSize, this.tokens.length, this.seqLen, PLAYGROUND_TRAIN.seed);
    return windows(this.tokens, starts, this.seqLen);
  }

  /** One AdamW update on the next batch; returns its loss (before the update). */
  update(): StepRecord {
    const t0 = performance.now();
    const { inputs, targets } = this.nextBatch();
    const shape = [this.batchSize, this.seqLen];
    const model = this.model;
    const params = model.parameters();
    const { loss, grads } = tidy(() => {
      const x = tensor(inputs, { shape, dtype: "int32" });
      const y = tensor(targets, { shape, dtype: "int32" });
      const f = (p: Record<string, Tensor>): Tensor => {
        model.setParameters(p);
        return model.loss(x, y, { training: true, key: random.foldIn(random.key(PLAYGROUND_TRAIN.seed), this.step) });
      };
      let loss: Tensor, grads: Record<string, Tensor>;
      try {
        [loss, grads] = valueAndGrad(f)(params) as [Tensor, Record<string, Tensor>];
      } finally {
        model.setParameters(params);
      }
      return { loss, grads };
    });
    const value = loss.item();
    // AdamW keeps its moments, so the update runs outside the scope that releases intermediates
    const upd = this.opt.step(params, grads, PLAYGROUND_TRAIN.lr);
    model.setParameters(upd.params);
    this.step++;
    return { step: this.step, loss: value, gradNorm: upd.gradNorm, tokens: this.batchSize * this.seqLen, ms: performance.now() - t0 };
  }
}

/**
 * Held-out perplexity of `model` integrated with the depth setting `d` (the CLI's `evaluatePerplexity` over all of
 * `tokens`), and the vector-field evaluations of one forward pass (the last batch's).
 */
export function heldOut(
  model: AnyModel,
  tokens: ArrayLike<number>,
  d: DepthSetting,
): { ppl: number; loss: number; evaluations: number; tokens: number } {
  const m = rebuild(model, withSolver(model.config, d));
  const ev = { seqLen: Math.min(PLAYGROUND_EVAL.seqLen, m.config.blockSize), batchSize: PLAYGROUND_EVAL.batchSize };
  const r = evaluatePerplexity(m, Int32Array.from(tokens), ev);
  const evaluations = (m as { lastEvaluations?: number }).lastEvaluations ?? 0;
  return { ppl: r.ppl, loss: r.loss, evaluations, tokens: r.tokens };
}

/** Logits [T, V] of one sequence (flat, float32 as computed). */
export function logitsOf(model: AnyModel, ids: readonly number[]): Float32Array {
  const x = tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: "int32" });
  const y = noGrad(() => model.logits(x, { training: false }));
  return Float32Array.from(y.data());
}

/** Sampling settings; temperature 0 is greedy. */
export interface SampleSettings {
  temperature: number;
  topK: number;
  seed: number;
}

/** The next token after `context` (the last blockSize tokens are used), drawn as `sampleTokens` of @qkvflow/train does. */
export function nextToken(model: AnyModel, context: readonly number[], i: number, s: SampleSettings): number {
  const ctx = context.slice(-model.config.blockSize);
  const x = tensor(Int32Array.from(ctx), { shape: [1, ctx.length], dtype: "int32" });
  const logits = noGrad(() => model.logits(x, { training: false }));
  const V = logits.shape[logits.shape.length - 1]!;
  const all = logits.data();
  const row = all.subarray(all.length - V);
  if (s.temperature === 0) {
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
    return best;
  }
  const p = nextTokenProbs(row, s.temperature, s.topK > 0 ? s.topK : null);
  // the number sampleTokens draws, on the host (a float64 tensor cannot live on the gpu backend)
  const u = random.uniformValues(random.foldIn(random.key(s.seed), i), 1, { dtype: "float64" })[0]!;
  return drawIndex(p, u);
}
