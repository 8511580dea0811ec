/**
 * The sinusoidal time embedding e(t) of DiffEqFormer and the paper's time grid.
 */
import { tensor, type Tensor } from "@qkvflow/autograd";
import type { ModelDType } from "./config.js";

/** Scale applied to t inside the sinusoids (reference default). */
export const TIME_SCALE = 1000;
/** Longest period of the sinusoid frequencies (reference default). */
export const MAX_PERIOD = 10000;

/**
 * e(t) = [t, sin(1000·t·f_0 … f_{S−1}), cos(1000·t·f_0 … f_{S−1})] with f_k = exp(−ln(10000)·k/S), for each t:
 * a constant tensor [n, 2S+1] (computed in float64, then stored in `dtype`).
 */
export function timeEmbedding(ts: readonly number[], S: number, dtype: ModelDType = "float32"): Tensor {
  if (!Number.isInteger(S) || S <= 0) throw new Error(`timeEmbedding: S = ${S}; expected a positive integer`);
  for (const t of ts) if (!Number.isFinite(t)) throw new Error(`timeEmbedding: time ${t} is not finite`);
  const n = ts.length,
    w = 2 * S + 1;
  const out = dtype === "float32" ? new Float32Array(n * w) : new Float64Array(n * w);
  for (let i = 0; i < n; i++) {
    const t = ts[i];
    out[i * w] = t;
    for (let k = 0; k < S; k++) {
      const a = TIME_SCALE * t * Math.exp((-Math.log(MAX_PERIOD) * k) / S);
      out[i * w + 1 + k] = Math.sin(a);
      out[i * w + 1 + S + k] = Math.cos(a);
    }
  }
  return tensor(out, { shape: [n, w], dtype });
}

/**
 * The paper's time grid on [0, 1] with n steps of dt = 1/n: step i evaluates the vector field at t_i = (i+1)/n
 * (the right end of the step) on the state before the step, X_{i+1} = X_i + dt·f(X_i, t_i) (solver method
 * 'euler-right-time'). GPT-2 and discretised layers sit at the same normalised depths. The one definition of
 * this grid: the models' forward passes, `discretize` and the analyses all use it.
 */
export function eulerGrid(n: number): number[] {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`eulerGrid: n = ${n}; expected a positive integer number of steps`);
  return Array.from({ length: n }, (_, i) => (i + 1) / n);
}
