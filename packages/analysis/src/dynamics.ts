/**
 * A model seen as a discrete dynamical system over depth: X_{i+1} = X_i + dt_i·g_i(X_i), with the block weights
 * used by every step, the embedding X_0 and the output head. Adapters turn the GPT-2 baseline, the DiffEqFormer
 * and a discretised DiffEqFormer of @qkvflow/models into this view.
 *
 * Time grid (one convention everywhere, as in training): a DiffEqFormer integrated with n Euler steps uses
 * dt = 1/n and evaluates step i (i = 0..n−1) at t_i = (i+1)/n with the state X_i BEFORE the step. GPT-2 layer i
 * is placed at the same normalised depth t_i = (i+1)/L with dt = 1 (its residual update is not scaled).
 */
import { add, cast, layerNorm, matmul, matmulT, mul, noGrad, reshape, slice, tensor, type Tensor } from "@qkvflow/autograd";
import type { DiffEqFormer, DiscretizedModel, Gpt2Model, LayerWeights, ModelKind } from "@qkvflow/models";
import { blockUpdate, castBlockWeights, type BlockArch, type BlockWeights } from "./block.js";

/** One step of the depth dynamics: index i, the time t_i its weights belong to, and its Euler factor dt_i. */
export interface DepthStep {
  index: number;
  t: number;
  dt: number;
}

/** What the analyses need from a model. */
export interface DynamicsModel {
  /** Architecture of the source model. */
  readonly kind: ModelKind;
  /** Width E. */
  readonly nEmbd: number;
  /** Number of heads H. */
  readonly nHead: number;
  /** LayerNorm epsilon of the blocks. */
  readonly layerNormEps: number;
  /** Vocabulary size V. */
  readonly vocabSize: number;
  /** Longest sequence the model accepts. */
  readonly blockSize: number;
  /** How a block updates the residual stream. */
  readonly arch: BlockArch;
  /** The forward pass's steps, in order. */
  readonly steps: readonly DepthStep[];
  /** The block weights used by each forward step (same order as `steps`). */
  stepWeights(): BlockWeights[];
  /** Weights generated at arbitrary times (continuous-depth models only). */
  weightsAt?: (ts: readonly number[]) => BlockWeights[];
  /** X_0 = token + position embedding of one sequence: [1, T, E] (no dropout). */
  embed(ids: readonly number[]): Tensor;
  /** ln_f then the tied unembedding: hidden [1, T, E] → logits [T, V]. */
  head(h: Tensor): Tensor;
}

/** A model accepted by `dynamicsOf`. */
export type AnalyzableModel = Gpt2Model | DiffEqFormer | DiscretizedModel;

/** Options of `dynamicsOf`. */
export interface DynamicsOptions {
  /** DiffEqFormer only: number of Euler steps n of the analysed grid (default: the model's solver steps, else nLayer). */
  steps?: number;
  /** Cast all weights and embeddings to this dtype (default 'float64', for accurate Jacobians and spectra). */
  dtype?: "float32" | "float64";
}

/** The paper's Euler grid: n steps of dt = 1/n at t_i = (i+1)/n. */
export function eulerSteps(n: number): DepthStep[] {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`eulerSteps: n = ${n}; expected a positive integer number of steps`);
  return Array.from({ length: n }, (_, i) => ({ index: i, t: (i + 1) / n, dt: 1 / n }));
}

function fromLayerWeights(w: LayerWeights): BlockWeights {
  return {
    lnAttn: { weight: w.lnA.scale, bias: w.lnA.shift },
    lnMlp: { weight: w.lnM.scale, bias: w.lnM.shift },
    qkvW: w.cAttn.W,
    qkvB: w.cAttn.b,
    attnProjW: w.attnProj.W,
    attnProjB: w.attnProj.b,
    fcW: w.cFc.W,
    fcB: w.cFc.b,
    mlpProjW: w.mlpProj.W,
    mlpProjB: w.mlpProj.b,
  };
}

/** The effective weight of a Linear given by its parameter prefix, including an unmerged LoRA adapter. */
function effectiveWeight(params: Record<string, Tensor>, prefix: string, lora: { alpha: number; rank: number; merged: boolean } | undefined): Tensor {
  const W = params[`${prefix}.weight`];
  if (!W) throw new Error(`dynamicsOf: the model has no parameter '${prefix}.weight'`);
  const A = params[`${prefix}.lora_A`], B = params[`${prefix}.lora_B`];
  if (!lora || lora.merged || !A || !B) return W;
  return add(W, mul(matmul(A, B), lora.alpha / lora.rank));
}

function layerWeightsByName(params: Record<string, Tensor>, i: number, kind: "gpt2" | "discretized", lora: { alpha: number; rank: number; merged: boolean } | undefined): BlockWeights {
  const p = `h.${i}`;
  const lnA = kind === "gpt2" ? "ln_1" : "ln_a";
  const lnM = kind === "gpt2" ? "ln_2" : "ln_m";
  const opt = (name: string): Tensor | null => params[name] ?? null;
  return {
    lnAttn: { weight: params[`${p}.${lnA}.weight`], bias: params[`${p}.${lnA}.bias`] },
    lnMlp: { weight: params[`${p}.${lnM}.weight`], bias: params[`${p}.${lnM}.bias`] },
    qkvW: effectiveWeight(params, `${p}.attn.c_attn`, lora),
    qkvB: opt(`${p}.attn.c_attn.bias`),
    attnProjW: effectiveWeight(params, `${p}.attn.c_proj`, lora),
    attnProjB: opt(`${p}.attn.c_proj.bias`),
    fcW: effectiveWeight(params, `${p}.mlp.c_fc`, lora),
    fcB: opt(`${p}.mlp.c_fc.bias`),
    mlpProjW: effectiveWeight(params, `${p}.mlp.c_proj`, lora),
    mlpProjB: opt(`${p}.mlp.c_proj.bias`),
  };
}

/** Builds the dynamics view of a GPT-2, DiffEqFormer or discretised model (weights are read now, once). */
export function dynamicsOf(model: AnalyzableModel, opts: DynamicsOptions = {}): DynamicsModel {
  const c = model.config;
  const dtype = opts.dtype ?? "float64";
  const cw = (w: BlockWeights) => castBlockWeights(w, dtype);
  const params = model.parameters();
  const castT = (t: Tensor): Tensor => (t.dtype === dtype ? t : cast(t, dtype));
  const wte = castT(params["wte.weight"]);
  const wpe = castT(params["wpe.weight"]);
  const lnFw = castT(params["ln_f.weight"]);
  const lnFb = castT(params["ln_f.bias"]);
  const E = c.nEmbd;
  const embed = (ids: readonly number[]): Tensor => {
    const T = ids.length;
    if (T < 1 || T > c.blockSize) throw new Error(`embed: sequence length ${T} is outside 1..${c.blockSize} (the model's blockSize)`);
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`embed: token id ${id} at position ${i} is outside [0, ${c.vocabSize})`);
    });
    const rows = new Float64Array(T * E);
    const we = wte.data(), pe = wpe.data();
    for (let i = 0; i < T; i++) for (let e = 0; e < E; e++) rows[i * E + e] = we[ids[i] * E + e] + pe[i * E + e];
    const arr = dtype === "float64" ? rows : Float32Array.from(rows);
    return tensor(arr, { shape: [1, T, E], dtype });
  };
  const head = (h: Tensor): Tensor => {
    const x = reshape(layerNorm(h, lnFw, lnFb, c.layerNormEps), [-1, E]);
    return matmulT(x, wte, false, true);
  };
  const base = { kind: c.kind, nEmbd: E, nHead: c.nHead, layerNormEps: c.layerNormEps, vocabSize: c.vocabSize, blockSize: c.blockSize, embed, head };
  if (c.kind === "diffeqformer") {
    const ode = model as DiffEqFormer;
    const n = opts.steps ?? (c.solver.method === "euler" ? c.solver.steps ?? c.nLayer : c.nLayer);
    const steps = eulerSteps(n);
    const weightsAt = (ts: readonly number[]): BlockWeights[] => noGrad(() => ode.weightsAt(ts).map((w) => cw(fromLayerWeights(w))));
    let cache: BlockWeights[] | null = null;
    return {
      ...base,
      arch: "parallel",
      steps,
      stepWeights: () => (cache ??= weightsAt(steps.map((s) => s.t))),
      weightsAt,
    };
  }
  if (opts.steps !== undefined) throw new Error(`dynamicsOf: option steps = ${opts.steps} applies only to a DiffEqFormer; this model is '${c.kind}' with fixed layers`);
  const L = c.nLayer;
  const kind = c.kind;
  const dt = kind === "discretized" ? c.dt : 1;
  const steps = Array.from({ length: L }, (_, i) => ({ index: i, t: (i + 1) / L, dt }));
  const ws = noGrad(() => Array.from({ length: L }, (_, i) => cw(layerWeightsByName(params, i, kind, c.lora))));
  return { ...base, arch: kind === "gpt2" ? "sequential" : "parallel", steps, stepWeights: () => ws };
}

/** The forward trajectory X_0 … X_n ([1, T, E] each) of one sequence, X_{i+1} = X_i + dt_i·g_i(X_i). */
export function trajectory(dm: DynamicsModel, ids: readonly number[]): Tensor[] {
  const ws = dm.stepWeights();
  return noGrad(() => {
    const xs = [dm.embed(ids)];
    dm.steps.forEach((s, i) => {
      const x = xs[xs.length - 1];
      xs.push(add(x, mul(blockUpdate(x, ws[i], dm.nHead, dm.layerNormEps, dm.arch), s.dt)));
    });
    return xs;
  });
}

/** Next-token logits [T, V] of one sequence through the dynamics view (for checks against the model itself). */
export function logitsOf(dm: DynamicsModel, ids: readonly number[]): Tensor {
  const xs = trajectory(dm, ids);
  return noGrad(() => dm.head(xs[xs.length - 1]));
}

/** Row `i` of a [T, V] logits tensor as a plain array. */
export function logitsRow(logits: Tensor, i: number): number[] {
  const V = logits.shape[1];
  return Array.from(slice(logits, [i, 0], [i + 1, V]).data() as ArrayLike<number>);
}
