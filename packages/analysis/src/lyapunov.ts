/**
 * Finite-time Lyapunov spectra of token sensitivity along the forward pass (paper §3.2, with the reference
 * code's time/state off-by-one fixed).
 *
 * For the query token j (by default the last one) and every source token k ≤ j, with J_k(i) = ∂f_j/∂x_k the E×E
 * Jacobian of the vector field at step i (state X_i BEFORE the step, time t_i, i.e. exactly what the forward pass
 * evaluates), the tangent matrices follow the Euler-discretised variational equation
 *     Q_k ← Q_k + dt_i · J_k(i) · Q_k,   then Q_k R_k = QR(Q_k) (diag R_k ≥ 0),  S_k += log diag R_k,
 * starting from Q_k = I. The exponents are λ_k = S_k / T with T = Σ dt_i (T = 1 for the DiffEqFormer, so this
 * equals the reference's plain sum; for GPT-2, dt = 1 and T = L). For k = j this is the Benettin/QR estimate of
 * the Lyapunov spectrum of the token's own dynamics; for k ≠ j it is the reference's cross-token heuristic.
 */
import { add, mul, noGrad, stopGradient, tensor, vjp, vmap, type Tensor } from "@qkvflow/autograd";
import type { DynamicsModel } from "./dynamics.js";
import { matmulRaw, qrSquarePositive, toFloat64 } from "./linalg.js";

/** One Euler step of a vector field on states [B, T, E] (any batch B): X ← X + dt·field(X). */
export interface FieldStep {
  /** Time of the step (for reports). */
  t: number;
  /** Euler factor. */
  dt: number;
  /** The vector field at this step's time; must map [B, T, E] to [B, T, E] row by row in B. */
  field: (x: Tensor) => Tensor;
}

/** Options of `tokenLyapunov`. */
export interface LyapunovOptions {
  /** The query token j whose update is differentiated (default: the last token). */
  query?: number;
  /** Jacobian rows computed per batched backward pass (default: E, i.e. one pass per step). */
  chunk?: number;
  /** Keep log diag R of every step ([step][token][e]). */
  keepSteps?: boolean;
}

/** Lyapunov spectra of every source token k = 0..j for query j. */
export interface TokenLyapunov {
  /** Query token j. */
  query: number;
  /** Width E (length of each spectrum). */
  dim: number;
  /** Total time T = Σ dt. */
  totalTime: number;
  /** exponents[k]: the E exponents of token k, sorted descending. */
  exponents: number[][];
  /** max over the spectrum of each token (the heat-map scalar). */
  maxExponent: number[];
  /** Sum of the spectrum of each token (phase-space contraction rate). */
  sumExponent: number[];
  /** Kaplan–Yorke dimension of each token's spectrum. */
  kaplanYorke: number[];
  /** With keepSteps: logDiag[i][k][e] = log diag R after step i (not divided by T). */
  logDiag?: number[][][];
  /**
   * The running estimate over the integration time, to judge convergence: after step i the time is
   * time[i] = dt_0 + … + dt_i and maxExponent[i][k] = max_e S_k(i)[e] / time[i], the max exponent token k would
   * get if the integration stopped there (the last entry equals `maxExponent`).
   */
  running: RunningExponent;
}

/** The max exponent of each token as a function of the integration time (see `TokenLyapunov.running`). */
export interface RunningExponent {
  /** time[i] = Σ_{i' ≤ i} dt_{i'}. */
  time: number[];
  /** maxExponent[i][k]: max exponent of token k after step i. */
  maxExponent: number[][];
}

/** Kaplan–Yorke dimension of a spectrum: k + S_k/|λ_{k+1}| with S_k the largest non-negative partial sum. */
export function kaplanYorke(spectrum: readonly number[]): number {
  const s = [...spectrum].sort((a, b) => b - a);
  let sum = 0;
  for (let k = 0; k < s.length; k++) {
    if (sum + s[k] < 0) return k === 0 ? 0 : k + sum / Math.abs(s[k]);
    sum += s[k];
  }
  return s.length;
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * Jacobian blocks J_k = ∂f_j/∂x_k (k = 0..j, each E×E row-major) of a field on x [1, T, E], plus f(x) [1, T, E].
 * Rows by reverse mode over vmap: one forward pass and its pullback, mapped over a batch of c cotangents (the
 * cotangent b selects output (0, j, r0 + b)), so one batched backward pass yields c rows of every J_k.
 */
export function fieldJacobianBlocks(
  field: (x: Tensor) => Tensor,
  x: Tensor,
  query: number,
  chunk?: number,
): { blocks: Float64Array[]; value: Tensor } {
  if (x.rank !== 3 || x.shape[0] !== 1) throw new Error(`fieldJacobianBlocks: state ${fmt(x.shape)}; expected [1, T, E]`);
  const [, T, E] = x.shape;
  if (!Number.isInteger(query) || query < 0 || query >= T) throw new Error(`fieldJacobianBlocks: query ${query} is outside 0..${T - 1}`);
  const c = Math.max(1, Math.min(E, chunk ?? E));
  const blocks = Array.from({ length: query + 1 }, () => new Float64Array(E * E));
  const [out, pull] = vjp(field, x);
  if (out.rank !== 3 || out.shape[0] !== 1 || out.shape[1] !== T || out.shape[2] !== E) {
    throw new Error(`fieldJacobianBlocks: the field returned ${fmt(out.shape)} for input ${fmt(x.shape)}; expected the same shape`);
  }
  const rowsOf = vmap((u: Tensor) => pull(u)[0]);
  for (let r0 = 0; r0 < E; r0 += c) {
    const n = Math.min(c, E - r0);
    const ctArr = out.dtype === "float64" ? new Float64Array(n * T * E) : new Float32Array(n * T * E);
    for (let b = 0; b < n; b++) ctArr[b * T * E + query * E + r0 + b] = 1;
    const g = toFloat64(rowsOf(tensor(ctArr, { shape: [n, 1, T, E], dtype: out.dtype })));
    for (let b = 0; b < n; b++) {
      const row = r0 + b;
      for (let k = 0; k <= query; k++) {
        const src = b * T * E + k * E;
        blocks[k].set(g.subarray(src, src + E), row * E);
      }
    }
  }
  return { blocks, value: noGrad(() => stopGradient(out)) };
}

/**
 * Finite-time Lyapunov spectra of each source token for query j along the Euler steps from x0 [1, T, E] (or
 * [T, E]). The state used at step i is X_i (before the step), advanced with X_{i+1} = X_i + dt_i·f_i(X_i).
 */
export function tokenLyapunov(steps: readonly FieldStep[], x0: Tensor, opts: LyapunovOptions = {}): TokenLyapunov {
  let x = x0.rank === 2 ? x0.reshape([1, ...x0.shape]) : x0;
  if (x.rank !== 3 || x.shape[0] !== 1) throw new Error(`tokenLyapunov: initial state ${fmt(x0.shape)}; expected [T, E] or [1, T, E]`);
  if (steps.length === 0) throw new Error("tokenLyapunov: no steps; expected at least one FieldStep");
  const [, T, E] = x.shape;
  const j = opts.query ?? T - 1;
  if (!Number.isInteger(j) || j < 0 || j >= T) throw new Error(`tokenLyapunov: query ${j} is outside 0..${T - 1}`);
  const K = j + 1;
  const Q: Float64Array[] = [];
  const S: Float64Array[] = [];
  for (let k = 0; k < K; k++) {
    const q = new Float64Array(E * E);
    for (let e = 0; e < E; e++) q[e * E + e] = 1;
    Q.push(q);
    S.push(new Float64Array(E));
  }
  const logDiag: number[][][] | undefined = opts.keepSteps ? [] : undefined;
  const running: RunningExponent = { time: [], maxExponent: [] };
  let totalTime = 0;
  for (const [i, st] of steps.entries()) {
    if (!(st.dt > 0) || !Number.isFinite(st.dt))
      throw new Error(`tokenLyapunov: step ${i} has dt = ${st.dt}; expected a finite positive step`);
    totalTime += st.dt;
    const { blocks, value } = fieldJacobianBlocks(st.field, x, j, opts.chunk);
    const stepLogs: number[][] = [];
    for (let k = 0; k < K; k++) {
      const jq = matmulRaw(blocks[k], Q[k], E, E, E);
      const m = new Float64Array(E * E);
      for (let p = 0; p < m.length; p++) m[p] = Q[k][p] + st.dt * jq[p];
      const [q, d] = qrSquarePositive(m, E);
      Q[k] = q;
      const logs = Array.from(d, (v) => Math.log(Math.max(v, 1e-300)));
      logs.forEach((l, e) => (S[k][e] += l));
      if (logDiag) stepLogs.push(logs);
    }
    if (logDiag) logDiag.push(stepLogs);
    running.time.push(totalTime);
    running.maxExponent.push(S.map((sk) => sk.reduce((m, v) => Math.max(m, v), -Infinity) / totalTime));
    x = noGrad(() => add(x, mul(value, st.dt)));
  }
  const exponents = S.map((s) => Array.from(s, (v) => v / totalTime).sort((a, b) => b - a));
  return {
    query: j,
    dim: E,
    totalTime,
    exponents,
    maxExponent: exponents.map((s) => s[0]),
    sumExponent: exponents.map((s) => s.reduce((a, b) => a + b, 0)),
    kaplanYorke: exponents.map(kaplanYorke),
    ...(logDiag ? { logDiag } : {}),
    running,
  };
}

/** The model's forward steps as vector-field steps (field g_i with the weights of step i). */
export function modelFieldSteps(dm: DynamicsModel): FieldStep[] {
  const ws = dm.stepWeights();
  return dm.steps.map((s, i) => ({ t: s.t, dt: s.dt, field: (x: Tensor) => dm.update(x, ws[i]) }));
}

/** Token Lyapunov spectra of one sequence of token ids through a model (query: the last token by default). */
export function sentenceLyapunov(dm: DynamicsModel, ids: readonly number[], opts: LyapunovOptions = {}): TokenLyapunov {
  return tokenLyapunov(modelFieldSteps(dm), dm.embed(ids), opts);
}
