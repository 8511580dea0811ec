/**
 * The transformer block, written once. Every model's forward pass (each GPT-2 layer, each layer of a discretised
 * DiffEqFormer, the DiffEqFormer's vector field at every t) and every analysis (trajectories, Jacobians, attention
 * maps) goes through the functions here.
 *
 * A block is given by its six sub-layers as functions (`BlockFns`): two LayerNorms, the fused q|k|v projection,
 * the attention output projection and the two MLP projections. The modules provide these functions from their
 * parameters (so an unmerged LoRA adapter runs as its own low-rank path), and `blockFns` provides them from
 * concrete weights (`BlockWeights`, e.g. generated at a time t, or cast to float64 for analysis).
 */
import {
  add,
  cast,
  causalMask,
  gelu,
  getBackend,
  keep,
  layerNorm,
  matmul,
  matmulT,
  mul,
  random,
  reshape,
  slice,
  softmax,
  transpose,
  where,
  type Backend,
  type Key,
  type Tensor,
} from "@qkvflow/autograd";
import { linear, maybeDropout } from "./layers.js";

/** Scale and shift of one LayerNorm ([E] each). */
export interface LayerNormWeights {
  weight: Tensor;
  bias: Tensor;
}

/**
 * Concrete weights of one block: one GPT-2 or discretised layer (with LoRA adapters folded in), or the
 * DiffEqFormer's generated weights at one t. Every matrix is stored [in, out] (y = x·W + b). The fused `qkvW`
 * [E, 3E] holds q | k | v, each head-major (head h owns columns h·D … (h+1)·D − 1 of its third, D = E/H).
 */
export interface BlockWeights {
  /** LayerNorm in front of attention (GPT-2 `ln_1`, discretised `ln_a`, DiffEqFormer `ln_a` at t). */
  lnAttn: LayerNormWeights;
  /** LayerNorm in front of the MLP (GPT-2 `ln_2`, discretised `ln_m`, DiffEqFormer `ln_m` at t). */
  lnMlp: LayerNormWeights;
  /** Fused q|k|v projection `attn.c_attn` [E, 3E]. */
  qkvW: Tensor;
  /** Its bias [3E] or null. */
  qkvB: Tensor | null;
  /** Attention output projection `attn.c_proj` [E, E] (rows h·D … (h+1)·D − 1 belong to head h). */
  attnProjW: Tensor;
  /** Its bias [E] or null. */
  attnProjB: Tensor | null;
  /** MLP input projection `mlp.c_fc` [E, 4E]. */
  fcW: Tensor;
  /** Its bias [4E] or null. */
  fcB: Tensor | null;
  /** MLP output projection `mlp.c_proj` [4E, E]. */
  mlpProjW: Tensor;
  /** Its bias [E] or null. */
  mlpProjB: Tensor | null;
}

/** The sub-layers of one block as functions of their input (each maps [B, T, in] to [B, T, out]). */
export interface BlockFns {
  lnAttn: (x: Tensor) => Tensor;
  lnMlp: (x: Tensor) => Tensor;
  qkv: (x: Tensor) => Tensor;
  attnProj: (x: Tensor) => Tensor;
  fc: (x: Tensor) => Tensor;
  mlpProj: (x: Tensor) => Tensor;
}

/**
 * How a block updates the residual stream x [B, T, E]:
 * - 'sequential' (GPT-2): a = attn(LN_a(x)), h = x + a, m = mlp(LN_m(h)); the layer gives h + m, and its residual
 *   update is g(x) = a + m;
 * - 'parallel' (DiffEqFormer vector field, discretised model): g(x) = attn(LN_a(x)) + mlp(LN_m(x)); a layer or
 *   Euler step gives x + dt·g(x).
 */
export type BlockArch = "sequential" | "parallel";

/** Options of `blockUpdate` and `blockForward`. */
export interface BlockOptions {
  /** Number of attention heads H. */
  nHead: number;
  /** Sequential (GPT-2) or parallel (DiffEqFormer) block. */
  arch: BlockArch;
  /** Dropout rate on each branch (used only when `training`; default 0). */
  rate?: number;
  /** Dropout key (split into one key per branch). */
  key?: Key | null;
  /** Whether dropout is active (default false). */
  training?: boolean;
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Block functions evaluating concrete weights. */
export function blockFns(w: BlockWeights, eps: number): BlockFns {
  return {
    lnAttn: (x) => layerNorm(x, w.lnAttn.weight, w.lnAttn.bias, eps),
    lnMlp: (x) => layerNorm(x, w.lnMlp.weight, w.lnMlp.bias, eps),
    qkv: (x) => linear(x, w.qkvW, w.qkvB),
    attnProj: (x) => linear(x, w.attnProjW, w.attnProjB),
    fc: (x) => linear(x, w.fcW, w.fcB),
    mlpProj: (x) => linear(x, w.mlpProjW, w.mlpProjB),
  };
}

/** Casts every tensor of a block's weights to `dtype` (tensors already in `dtype` are kept as they are). */
export function castBlockWeights(w: BlockWeights, dtype: "float32" | "float64"): BlockWeights {
  const c = (t: Tensor): Tensor => (t.dtype === dtype ? t : cast(t, dtype));
  const cn = (t: Tensor | null): Tensor | null => (t === null ? null : c(t));
  return {
    lnAttn: { weight: c(w.lnAttn.weight), bias: c(w.lnAttn.bias) },
    lnMlp: { weight: c(w.lnMlp.weight), bias: c(w.lnMlp.bias) },
    qkvW: c(w.qkvW),
    qkvB: cn(w.qkvB),
    attnProjW: c(w.attnProjW),
    attnProjB: cn(w.attnProjB),
    fcW: c(w.fcW),
    fcB: cn(w.fcB),
    mlpProjW: c(w.mlpProjW),
    mlpProjB: cn(w.mlpProjB),
  };
}

// The one causal-mask cache: per backend (a mask made on one backend cannot feed another), kept out of `tidy`.
const maskCache = new WeakMap<Backend, Map<number, Tensor>>();
const MASKED = -1e30;

function mask(T: number): Tensor {
  const be = getBackend();
  let byT = maskCache.get(be);
  if (!byT) {
    byT = new Map();
    maskCache.set(be, byT);
  }
  let m = byT.get(T);
  if (!m) {
    m = keep(causalMask(T));
    byT.set(T, m);
  }
  return m;
}

/** Splits the q|k|v projection y [B, T, 3E] into per-head q, k, v [B, H, T, D]. */
function heads(fn: string, y: Tensor, B: number, T: number, E: number, nHead: number): [Tensor, Tensor, Tensor] {
  if (y.rank !== 3 || y.shape[2] !== 3 * E) throw new Error(`${fn}: qkv gave ${fmt(y.shape)}; expected [${B}, ${T}, ${3 * E}]`);
  const D = E / nHead;
  // [B, T, 3, H, D] -> [3, B, H, T, D]
  const h = transpose(reshape(y, [B, T, 3, nHead, D]), [2, 0, 3, 1, 4]);
  const part = (i: number) => reshape(slice(h, [i, 0, 0, 0, 0], [i + 1, B, nHead, T, D]), [B, nHead, T, D]);
  return [part(0), part(1), part(2)];
}

function checkInput(fn: string, x: Tensor, nHead: number): [number, number, number] {
  if (x.rank !== 3) throw new Error(`${fn}: input ${fmt(x.shape)}; expected [B, T, E]`);
  const [B, T, E] = x.shape;
  if (E % nHead !== 0) throw new Error(`${fn}: width ${E} is not divisible by ${nHead} heads`);
  return [B, T, E];
}

/** softmax(QKᵀ/√D) over keys with the causal mask: [B, H, T, T]. */
function probs(q: Tensor, k: Tensor, T: number, D: number): Tensor {
  const scores = mul(matmulT(q, k, false, true), 1 / Math.sqrt(D));
  return softmax(where(mask(T), scores, MASKED), -1);
}

/**
 * Causal attention probabilities [B, H, T, T] (rows: queries, columns: keys) of the attention input u [B, T, E]
 * (already normalised), with `qkv` the fused q|k|v projection.
 */
export function attentionProbs(u: Tensor, nHead: number, qkv: (x: Tensor) => Tensor): Tensor {
  const [B, T, E] = checkInput("attentionProbs", u, nHead);
  const [q, k] = heads("attentionProbs", qkv(u), B, T, E, nHead);
  return probs(q, k, T, E / nHead);
}

/**
 * Causal multi-head self-attention softmax(QKᵀ/√d_head)·V on x [B, T, E]. `qkv` maps x to [B, T, 3E] ordered
 * q | k | v, each head-major (head h owns columns h·E/H … (h+1)·E/H − 1); `proj` maps the merged heads back to E.
 * Attention dropout is 0, as in the reference code.
 */
export function causalSelfAttention(x: Tensor, nHead: number, qkv: (x: Tensor) => Tensor, proj: (y: Tensor) => Tensor): Tensor {
  const [B, T, E] = checkInput("causalSelfAttention", x, nHead);
  const [q, k, v] = heads("causalSelfAttention", qkv(x), B, T, E, nHead);
  const o = matmul(probs(q, k, T, E / nHead), v); // [B, H, T, D]
  return proj(reshape(transpose(o, [0, 2, 1, 3]), [B, T, E]));
}

/** The GPT-2 feed-forward block proj(gelu(fc(x))) with the tanh-approximated GELU. */
export function mlpForward(x: Tensor, fc: (x: Tensor) => Tensor, proj: (h: Tensor) => Tensor): Tensor {
  return proj(gelu(fc(x)));
}

/** The two branches of a block: a = drop(attn(LN_a(x))), h (x + a when sequential, else x), m = drop(mlp(LN_m(h))). */
function branches(fn: string, x: Tensor, f: BlockFns, o: BlockOptions): { a: Tensor; h: Tensor; m: Tensor } {
  checkInput(fn, x, o.nHead);
  const rate = o.rate ?? 0,
    training = o.training ?? false;
  const [ka, km] = o.key && training && rate > 0 ? random.split(o.key, 2) : [null, null];
  const a = maybeDropout(causalSelfAttention(f.lnAttn(x), o.nHead, f.qkv, f.attnProj), rate, ka, training);
  const h = o.arch === "sequential" ? add(x, a) : x;
  const m = maybeDropout(mlpForward(f.lnMlp(h), f.fc, f.mlpProj), rate, km, training);
  return { a, h, m };
}

/**
 * The residual update g(x) of one block on x [B, T, E] (see BlockArch): attn + mlp branch outputs. For the
 * DiffEqFormer with weights generated at t this is the vector field f(X, t).
 */
export function blockUpdate(x: Tensor, f: BlockFns, o: BlockOptions): Tensor {
  const { a, m } = branches("blockUpdate", x, f, o);
  return add(a, m);
}

/**
 * One layer of a model on x [B, T, E]: sequential (GPT-2) h + m with h = x + a; parallel x + dt·g(x) (an Euler
 * step of the vector field g; `dt` defaults to 1). A sequential block has no step size: `dt` must be 1 or absent.
 */
export function blockForward(x: Tensor, f: BlockFns, o: BlockOptions & { dt?: number }): Tensor {
  if (o.arch === "sequential") {
    if (o.dt !== undefined && o.dt !== 1) {
      throw new Error(`blockForward: dt = ${o.dt} for a sequential block; expected 1 (GPT-2 residuals are not scaled)`);
    }
    const { h, m } = branches("blockForward", x, f, o);
    return add(h, m);
  }
  const { a, m } = branches("blockForward", x, f, o);
  return add(x, mul(add(a, m), o.dt ?? 1));
}
