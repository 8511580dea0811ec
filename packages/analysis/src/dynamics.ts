/**
 * A model seen as a discrete dynamical system over depth: X_{i+1} = X_i + dt_i·g_i(X_i), with the block weights
 * used by every step, the embedding X_0 and the output head. The view is the model's own (`dynamics()` of
 * @qkvflow/models): its block forward, its per-step weights (LoRA adapters folded in), its embedding and head.
 *
 * Time grid (one convention everywhere, as in training; `eulerGrid` of @qkvflow/models): a DiffEqFormer
 * integrated with n Euler steps uses dt = 1/n and evaluates step i (i = 0..n−1) at t_i = (i+1)/n with the state
 * X_i BEFORE the step. GPT-2 layer i is placed at the same normalised depth t_i = (i+1)/L with dt = 1 (its
 * residual update is not scaled).
 */
import { noGrad, slice, type Tensor } from "@qkvflow/autograd";
import type { AnyModel, DepthDynamics, DepthStep, DynamicsOptions } from "@qkvflow/models";

/** One step of the depth dynamics: index i, the time t_i its weights belong to, and its Euler factor dt_i. */
export type { DepthStep, DynamicsOptions };

/** What the analyses need from a model: its forward pass as depth dynamics (see DepthDynamics). */
export type DynamicsModel = DepthDynamics;

/** A model accepted by `dynamicsOf`. */
export type AnalyzableModel = AnyModel;

/** The dynamics view of a GPT-2, DiffEqFormer or discretised model (weights are read now, once; float64 by default). */
export function dynamicsOf(model: AnalyzableModel, opts: DynamicsOptions = {}): DynamicsModel {
  return model.dynamics(opts);
}

/** The forward trajectory X_0 … X_n ([1, T, E] each) of one sequence, X_{i+1} = X_i + dt_i·g_i(X_i). */
export function trajectory(dm: DynamicsModel, ids: readonly number[]): Tensor[] {
  return noGrad(() => dm.trajectory(dm.embed(ids)));
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
