/**
 * Saliency baselines to compare with the Lyapunov heat maps: attention rollout over the discretised layers and
 * gradient × input.
 *
 * Attention rollout (Abnar & Zuidema 2020, adapted to Euler steps): at step i average the heads' attention
 * probabilities Ā_i [T, T] (computed from the same state X_i the forward pass uses), mix in the residual path as
 *     Â_i = (1 − α_i)·I + α_i·Ā_i,   α_i = 1/2 for GPT-2 ("add identity, renormalise": (I + Ā)/2),
 *                                     α_i = dt_i for the DiffEqFormer / discretised model (the Euler step
 *                                     X + dt·f keeps weight 1 − dt on the token itself to first order),
 * and multiply through depth, R = Â_{n−1} ⋯ Â_0. Row j of R is the saliency of every source token for query j;
 * rows of every Â_i and of R sum to 1.
 */
import { logSoftmax, mul, noGrad, reshape, slice, sum, tensor, vjp, type Tensor } from "@qkvflow/autograd";
import { trajectory, type DynamicsModel } from "./dynamics.js";
import { toFloat64 } from "./linalg.js";

/** Attention probabilities of each forward step, averaged over heads: maps[i] is [T, T] row-major. */
export function headAveragedAttention(dm: DynamicsModel, ids: readonly number[]): Float64Array[] {
  const xs = trajectory(dm, ids);
  const ws = dm.stepWeights();
  const T = ids.length;
  return noGrad(() =>
    dm.steps.map((_, i) => {
      const p = toFloat64(dm.attentionProbs(xs[i], ws[i])); // [1, H, T, T]
      const avg = new Float64Array(T * T);
      const H = dm.nHead;
      for (let h = 0; h < H; h++) for (let q = 0; q < T * T; q++) avg[q] += p[h * T * T + q] / H;
      return avg;
    }),
  );
}

/** The residual mixing weight α of a step (see the module comment). */
export function rolloutAlpha(arch: "sequential" | "parallel", dt: number): number {
  if (arch === "sequential") return 0.5;
  if (!(dt > 0 && dt <= 1)) throw new Error(`rolloutAlpha: dt = ${dt}; expected 0 < dt ≤ 1 for an Euler-scaled (parallel) block`);
  return dt;
}

/** R = Â_{n−1} ⋯ Â_0 with Â_i = (1 − α_i)·I + α_i·maps[i]; returns R [T, T] row-major. */
export function attentionRollout(maps: readonly Float64Array[], alphas: readonly number[], T: number): Float64Array {
  if (maps.length !== alphas.length)
    throw new Error(`attentionRollout: ${maps.length} maps but ${alphas.length} mixing weights; expected one per step`);
  let R = new Float64Array(T * T);
  for (let i = 0; i < T; i++) R[i * T + i] = 1;
  maps.forEach((A, s) => {
    if (A.length !== T * T) throw new Error(`attentionRollout: map ${s} has ${A.length} entries; expected ${T}×${T}`);
    const a = alphas[s];
    const next = new Float64Array(T * T);
    for (let i = 0; i < T; i++) {
      for (let k = 0; k < T; k++) {
        const hat = (i === k ? 1 - a : 0) + a * A[i * T + k];
        if (hat === 0) continue;
        for (let c = 0; c < T; c++) next[i * T + c] += hat * R[k * T + c];
      }
    }
    R = next;
  });
  return R;
}

/** Rollout saliency of every token for the query (default: the last token): row j of R. */
export function rolloutSaliency(dm: DynamicsModel, ids: readonly number[], query = ids.length - 1): number[] {
  const T = ids.length;
  if (!Number.isInteger(query) || query < 0 || query >= T) throw new Error(`rolloutSaliency: query ${query} is outside 0..${T - 1}`);
  const R = attentionRollout(
    headAveragedAttention(dm, ids),
    dm.steps.map((s) => rolloutAlpha(dm.arch, s.dt)),
    T,
  );
  return Array.from(R.subarray(query * T, (query + 1) * T));
}

/** Gradient × input of one prediction. */
export interface GradInputSaliency {
  /** The token whose log-probability was differentiated (at the query position). */
  target: number;
  /** Its log-probability log p(target | tokens ≤ j). */
  logProb: number;
  /** Σ_e x0[k, e]·∂ log p(target)/∂x0[k, e] for each token k. */
  signed: number[];
  /** |signed|. */
  abs: number[];
}

/**
 * Gradient × input at the embedding X_0 of log p(target | tokens ≤ j) at the query position j (default: the
 * last token); target defaults to the model's top prediction there. One backward pass.
 */
export function gradTimesInput(
  dm: DynamicsModel,
  ids: readonly number[],
  opts: { query?: number; target?: number } = {},
): GradInputSaliency {
  const T = ids.length;
  const j = opts.query ?? T - 1;
  if (!Number.isInteger(j) || j < 0 || j >= T) throw new Error(`gradTimesInput: query ${j} is outside 0..${T - 1}`);
  const x0 = dm.embed(ids);
  const V = dm.vocabSize;
  const forward = (x: Tensor): Tensor => {
    const xs = dm.trajectory(x);
    return logSoftmax(reshape(slice(dm.head(xs[xs.length - 1]), [j, 0], [j + 1, V]), [V]), -1);
  };
  const [lp, pull] = vjp(forward, x0);
  const lpArr = toFloat64(lp);
  let target = opts.target;
  if (target === undefined) {
    target = 0;
    for (let v = 1; v < V; v++) if (lpArr[v] > lpArr[target]) target = v;
  }
  if (!Number.isInteger(target) || target < 0 || target >= V) throw new Error(`gradTimesInput: target ${target} is outside [0, ${V})`);
  const ct = new Float64Array(V);
  ct[target] = 1;
  const g = pull(tensor(lp.dtype === "float64" ? ct : Float32Array.from(ct), { shape: [V], dtype: lp.dtype }))[0];
  const gx = toFloat64(noGrad(() => sum(mul(g, x0), [2])));
  const signed = Array.from(gx.subarray(0, T));
  return { target, logProb: lpArr[target], signed, abs: signed.map(Math.abs) };
}
