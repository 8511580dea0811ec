/**
 * The transformer block as the analysis sees it: plain weight tensors (no modules, no hypernetworks) and the
 * block's residual update written with autograd ops, so Jacobians, attention maps and spectra all read the
 * same weights.
 *
 * Layout: every matrix is stored [in, out] (y = x·W + b), as in @qkvflow/models. The fused `qkvW` [E, 3E] holds
 * q | k | v, each head-major (head h owns columns h·D … (h+1)·D − 1 of its third, D = E/H).
 */
import {
  add, cast, causalMask, gelu, layerNorm, matmul, matmulT, mul, reshape, slice, softmax, transpose, where,
  type Tensor,
} from "@qkvflow/autograd";

/** Scale and shift of one LayerNorm ([E] each). */
export interface LayerNormWeights {
  weight: Tensor;
  bias: Tensor;
}

/** The weights of one transformer block (one GPT-2 layer, or the DiffEqFormer's generated weights at one t). */
export interface BlockWeights {
  /** LayerNorm in front of attention (GPT-2 `ln_1`, DiffEqFormer `attn_ln` at t). */
  lnAttn: LayerNormWeights;
  /** LayerNorm in front of the MLP (GPT-2 `ln_2`, DiffEqFormer `mlp_ln` at t). */
  lnMlp: LayerNormWeights;
  /** Fused q|k|v projection [E, 3E]. */
  qkvW: Tensor;
  /** Its bias [3E] or null. */
  qkvB: Tensor | null;
  /** Attention output projection [E, E] (rows h·D … (h+1)·D − 1 belong to head h). */
  attnProjW: Tensor;
  /** Its bias [E] or null. */
  attnProjB: Tensor | null;
  /** MLP input projection [E, 4E]. */
  fcW: Tensor;
  /** Its bias [4E] or null. */
  fcB: Tensor | null;
  /** MLP output projection [4E, E]. */
  mlpProjW: Tensor;
  /** Its bias [E] or null. */
  mlpProjB: Tensor | null;
}

/**
 * How a block updates the residual stream.
 * - 'sequential' (GPT-2): g(x) = a + m(LN_m(x + a)) with a = attn(LN_a(x)).
 * - 'parallel' (DiffEqFormer vector field, discretised model): g(x) = attn(LN_a(x)) + m(LN_m(x)).
 * A step is x ← x + dt·g(x) (dt = 1 for GPT-2).
 */
export type BlockArch = "sequential" | "parallel";

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Checks the shapes of a block's weights against width E; throws naming the offending entry. */
export function checkBlockWeights(fn: string, w: BlockWeights, nEmbd: number): void {
  const E = nEmbd;
  const expect: [string, Tensor | null, number[]][] = [
    ["lnAttn.weight", w.lnAttn.weight, [E]],
    ["lnAttn.bias", w.lnAttn.bias, [E]],
    ["lnMlp.weight", w.lnMlp.weight, [E]],
    ["lnMlp.bias", w.lnMlp.bias, [E]],
    ["qkvW", w.qkvW, [E, 3 * E]],
    ["qkvB", w.qkvB, [3 * E]],
    ["attnProjW", w.attnProjW, [E, E]],
    ["attnProjB", w.attnProjB, [E]],
    ["mlpProjB", w.mlpProjB, [E]],
  ];
  for (const [name, t, shape] of expect) {
    if (t === null) continue;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${fn}: ${name} is ${fmt(t.shape)}; expected ${fmt(shape)} for width E = ${E}`);
    }
  }
  const hidden = w.fcW.shape[1];
  if (w.fcW.rank !== 2 || w.fcW.shape[0] !== E) throw new Error(`${fn}: fcW is ${fmt(w.fcW.shape)}; expected [${E}, hidden]`);
  if (w.mlpProjW.rank !== 2 || w.mlpProjW.shape[0] !== hidden || w.mlpProjW.shape[1] !== E) {
    throw new Error(`${fn}: mlpProjW is ${fmt(w.mlpProjW.shape)}; expected [${hidden}, ${E}] to match fcW ${fmt(w.fcW.shape)}`);
  }
  if (w.fcB && (w.fcB.rank !== 1 || w.fcB.shape[0] !== hidden)) throw new Error(`${fn}: fcB is ${fmt(w.fcB.shape)}; expected [${hidden}]`);
}

/** Casts every tensor of a block's weights to `dtype` (float64 for accurate Jacobians and spectra). */
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

function affine(x: Tensor, W: Tensor, b: Tensor | null): Tensor {
  // x [B, T, in] → [B, T, out]
  const [B, T, inF] = x.shape;
  let y = matmul(reshape(x, [B * T, inF]), W);
  if (b) y = add(y, b);
  return reshape(y, [B, T, W.shape[1]]);
}

const maskCache = new Map<number, Tensor>();

function causal(T: number): Tensor {
  let m = maskCache.get(T);
  if (!m) {
    m = causalMask(T);
    maskCache.set(T, m);
  }
  return m;
}

/** Per-head q, k, v [B, H, T, D] of already-normalised input u [B, T, E]. */
function headsQkv(u: Tensor, w: BlockWeights, nHead: number): [Tensor, Tensor, Tensor] {
  const [B, T, E] = u.shape;
  const D = E / nHead;
  const y = affine(u, w.qkvW, w.qkvB);
  const heads = transpose(reshape(y, [B, T, 3, nHead, D]), [2, 0, 3, 1, 4]);
  const part = (i: number) => reshape(slice(heads, [i, 0, 0, 0, 0], [i + 1, B, nHead, T, D]), [B, nHead, T, D]);
  return [part(0), part(1), part(2)];
}

/** Causal attention probabilities [B, H, T, T] (rows: queries, columns: keys) of normalised input u [B, T, E]. */
export function attentionProbs(u: Tensor, w: BlockWeights, nHead: number): Tensor {
  const [q, k] = headsQkv(u, w, nHead);
  const D = u.shape[2] / nHead;
  const scores = mul(matmulT(q, k, false, true), 1 / Math.sqrt(D));
  return softmax(where(causal(u.shape[1]), scores, -1e30), -1);
}

/** Causal multi-head attention output [B, T, E] of normalised input u [B, T, E] (no dropout). */
export function attentionOut(u: Tensor, w: BlockWeights, nHead: number): Tensor {
  const [B, T, E] = u.shape;
  const [, , v] = headsQkv(u, w, nHead);
  const att = attentionProbs(u, w, nHead);
  const o = matmul(att, v);
  return affine(reshape(transpose(o, [0, 2, 1, 3]), [B, T, E]), w.attnProjW, w.attnProjB);
}

/** The GPT-2 MLP proj(gelu_tanh(fc(u))) on u [B, T, E]. */
export function mlpOut(u: Tensor, w: BlockWeights): Tensor {
  return affine(gelu(affine(u, w.fcW, w.fcB)), w.mlpProjW, w.mlpProjB);
}

/**
 * The residual update g(x) of one block on x [B, T, E] (see BlockArch); a forward step is x + dt·g(x).
 * For the DiffEqFormer with weights generated at t, g is the vector field f(X, t).
 */
export function blockUpdate(x: Tensor, w: BlockWeights, nHead: number, eps: number, arch: BlockArch): Tensor {
  if (x.rank !== 3) throw new Error(`blockUpdate: input ${fmt(x.shape)}; expected [B, T, E]`);
  const E = x.shape[2];
  if (E % nHead !== 0) throw new Error(`blockUpdate: width ${E} is not divisible by ${nHead} heads`);
  const a = attentionOut(layerNorm(x, w.lnAttn.weight, w.lnAttn.bias, eps), w, nHead);
  if (arch === "parallel") return add(a, mlpOut(layerNorm(x, w.lnMlp.weight, w.lnMlp.bias, eps), w));
  const h = add(x, a);
  return add(a, mlpOut(layerNorm(h, w.lnMlp.weight, w.lnMlp.bias, eps), w));
}
