/**
 * The parallel block of DiffEqFormer: f(X) = drop(Attn(LN_a(X))) + drop(FFN(LN_m(X))); attention and FFN read the
 * same X and their outputs are summed. Shared by the ODE vector field and the discretised model.
 */
import { add, layerNorm, random, type Key, type Tensor } from "@qkvflow/autograd";
import { causalSelfAttention, linear, maybeDropout, mlpForward } from "./layers.js";

/** The sub-layers of one parallel block as functions of their input. */
export interface ParallelBlockFns {
  lnA: (x: Tensor) => Tensor;
  lnM: (x: Tensor) => Tensor;
  qkv: (x: Tensor) => Tensor;
  attnProj: (x: Tensor) => Tensor;
  fc: (x: Tensor) => Tensor;
  mlpProj: (x: Tensor) => Tensor;
}

/** Concrete weights of one block at one time (or one discretised layer). */
export interface LayerWeights {
  /** ln_a: γ [E] and β [E]. */
  lnA: { scale: Tensor; shift: Tensor };
  /** ln_m: γ [E] and β [E]. */
  lnM: { scale: Tensor; shift: Tensor };
  /** attn.c_attn: W [E, 3E], b [3E]. */
  cAttn: { W: Tensor; b: Tensor };
  /** attn.c_proj: W [E, E], b [E]. */
  attnProj: { W: Tensor; b: Tensor };
  /** mlp.c_fc: W [E, 4E], b [4E]. */
  cFc: { W: Tensor; b: Tensor };
  /** mlp.c_proj: W [4E, E], b [E]. */
  mlpProj: { W: Tensor; b: Tensor };
}

/** Block functions evaluating concrete weights. */
export function fnsFromWeights(w: LayerWeights, eps: number): ParallelBlockFns {
  return {
    lnA: (x) => layerNorm(x, w.lnA.scale, w.lnA.shift, eps),
    lnM: (x) => layerNorm(x, w.lnM.scale, w.lnM.shift, eps),
    qkv: (x) => linear(x, w.cAttn.W, w.cAttn.b),
    attnProj: (x) => linear(x, w.attnProj.W, w.attnProj.b),
    fc: (x) => linear(x, w.cFc.W, w.cFc.b),
    mlpProj: (x) => linear(x, w.mlpProj.W, w.mlpProj.b),
  };
}

/** f(X) = drop(attn(lnA(X))) + drop(mlp(lnM(X))) for X [B, T, E]; dropout keys are split from `key`. */
export function parallelField(x: Tensor, f: ParallelBlockFns, nHead: number, rate: number, key: Key | null, training: boolean): Tensor {
  const [ka, km] = key && training && rate > 0 ? random.split(key, 2) : [null, null];
  const a = maybeDropout(causalSelfAttention(f.lnA(x), nHead, f.qkv, f.attnProj), rate, ka, training);
  const m = maybeDropout(mlpForward(f.lnM(x), f.fc, f.mlpProj), rate, km, training);
  return add(a, m);
}
