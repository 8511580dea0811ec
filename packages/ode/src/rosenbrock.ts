/**
 * Rosenbrock methods (linearly implicit Runge–Kutta methods for stiff problems) as data, and the Solver that
 * runs them: one core over a vector space (space.ts), so the same code serves tensor trees (exact Jacobians by
 * forward-mode autodiff, differentiable through the linear solves) and plain arrays (the user's Jacobian or
 * finite differences). Tableaux are in the transformed form of Hairer & Wanner (1996), Section IV.7, as used by
 * Sandu et al. (1997): with W = I/(hγ) − J, J = ∂f/∂y(t, y) and f_t = ∂f/∂t(t, y), stage i solves
 *   W·Kᵢ = f(t + αᵢh, y + Σⱼ aᵢⱼKⱼ) + Σⱼ (cᵢⱼ/h)·Kⱼ + h·γᵢ·f_t,
 * and y₁ = y + Σ mᵢKᵢ with the local error estimate Σ eᵢKᵢ. One Jacobian and one LU factorisation per step;
 * after a rejected step the Jacobian (and f_t) at the same (t, y) is reused and only W is factorised again.
 */
import type { Tensor } from "@qkvflow/autograd";
import { tensorSpace } from "./space.js";
import type { FlatField, Solver, StepResult, VectorSpace } from "./types.js";

/** A Rosenbrock method in transformed form (see the module comment). */
export interface RosenbrockTableau {
  /** Marks the tableau as a Rosenbrock method for registerSolver. */
  readonly kind: "rosenbrock";
  readonly name: string;
  /** Order of y₁. */
  readonly order: number;
  /** Order of the embedded solution behind the error estimate. */
  readonly errorOrder: number;
  /** The diagonal γ (> 0): W = I/(hγ) − J. */
  readonly gamma: number;
  /** aᵢⱼ, row i has i entries (j < i): the argument of stage i's f. */
  readonly a: readonly (readonly number[])[];
  /** cᵢⱼ, row i has i entries: the stage coupling Σ (cᵢⱼ/h)Kⱼ. */
  readonly c: readonly (readonly number[])[];
  /** αᵢ: stage i evaluates f at t + αᵢh. */
  readonly alpha: readonly number[];
  /** γᵢ: the coefficient of h·f_t in stage i (all 0 → f_t is never computed). */
  readonly gammaSum: readonly number[];
  /** mᵢ: y₁ = y + Σ mᵢKᵢ. */
  readonly m: readonly number[];
  /** eᵢ: the local error estimate Σ eᵢKᵢ. */
  readonly e: readonly number[];
}

/**
 * Rodas3 (Sandu, Verwer, Blom, Spee, Carmichael & Potra 1997): order 3 with an embedded order-2 solution,
 * 4 stages, L-stable and stiffly accurate (y₁ is the last stage's argument plus K₄), γ = 1/2.
 */
export const RODAS3: RosenbrockTableau = {
  kind: "rosenbrock",
  name: "rodas3",
  order: 3,
  errorOrder: 2,
  gamma: 0.5,
  a: [[], [0], [2, 0], [2, 0, 1]],
  c: [[], [4], [1, -1], [1, -1, -8 / 3]],
  alpha: [0, 0, 1, 1],
  gammaSum: [0.5, 1.5, 0, 0],
  m: [2, 0, 1, 1],
  e: [0, 0, 0, 1],
};

const RODAS4_A5 = [1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895];

/**
 * Rodas4 (Hairer & Wanner 1996, Section IV.7: the coefficients of their RODAS code): order 4 with an embedded
 * order-3 solution, 6 stages, L-stable and stiffly accurate (the last two stages' arguments are the embedded and
 * the final solution, so the error estimate is K₆), γ = 1/4.
 */
export const RODAS4: RosenbrockTableau = {
  kind: "rosenbrock",
  name: "rodas4",
  order: 4,
  errorOrder: 3,
  gamma: 0.25,
  a: [
    [],
    [1.544],
    [0.9466785280815826, 0.2557011698983284],
    [3.314825187068521, 2.896124015972201, 0.9986419139977817],
    RODAS4_A5,
    [...RODAS4_A5, 1],
  ],
  c: [
    [],
    [-5.6688],
    [-2.430093356833875, -0.2063599157091915],
    [-0.1073529058151375, -9.594562251023355, -20.47028614809616],
    [7.496443313967647, -10.24680431464352, -33.99990352819905, 11.7089089320616],
    [8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054],
  ],
  alpha: [0, 0.386, 0.21, 0.63, 1, 1],
  gammaSum: [0.25, -0.1043, 0.1035, -0.03620000000000023, 0, 0],
  m: [...RODAS4_A5, 1, 1],
  e: [0, 0, 0, 0, 0, 1],
};

/** All built-in Rosenbrock tableaux. */
export const BUILTIN_ROSENBROCK: readonly RosenbrockTableau[] = [RODAS3, RODAS4];

/** Whether x is a Rosenbrock tableau (by its `kind`). */
export function isRosenbrockTableau(x: unknown): x is RosenbrockTableau {
  return x !== null && typeof x === "object" && (x as RosenbrockTableau).kind === "rosenbrock";
}

function numbers(ctx: string, what: string, xs: unknown, n: number): number[] {
  if (!Array.isArray(xs) || xs.length !== n)
    throw new Error(`${ctx}: ${what} has ${Array.isArray(xs) ? xs.length : "no"} entries; expected ${n}`);
  xs.forEach((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`${ctx}: ${what}[${i}] is ${String(v)}; expected a finite number`);
  });
  return [...(xs as number[])];
}

/** Checks a Rosenbrock tableau's shapes and numbers; returns a copy. */
export function validateRosenbrock(t: RosenbrockTableau, fn = "rosenbrock"): RosenbrockTableau {
  if (!isRosenbrockTableau(t)) throw new Error(`${fn}: tableau is not a Rosenbrock tableau; expected an object with kind: 'rosenbrock'`);
  if (typeof t.name !== "string" || t.name.length === 0)
    throw new Error(`${fn}: tableau name is ${JSON.stringify(t.name)}; expected a non-empty string`);
  const ctx = `${fn} '${t.name}'`;
  if (!Number.isInteger(t.order) || t.order < 1) throw new Error(`${ctx}: order ${t.order} is invalid; expected a positive integer`);
  if (!Number.isInteger(t.errorOrder) || t.errorOrder < 0 || t.errorOrder >= t.order)
    throw new Error(`${ctx}: errorOrder ${t.errorOrder} is invalid; expected an integer in [0, order)`);
  if (typeof t.gamma !== "number" || !(t.gamma > 0) || !Number.isFinite(t.gamma))
    throw new Error(`${ctx}: gamma is ${String(t.gamma)}; expected a finite number > 0`);
  if (!Array.isArray(t.m) || t.m.length === 0) throw new Error(`${ctx}: m has no entries; expected one weight per stage`);
  const s = t.m.length;
  const rows = (what: "a" | "c") => {
    const r = t[what];
    if (!Array.isArray(r) || r.length !== s)
      throw new Error(`${ctx}: ${what} has ${Array.isArray(r) ? r.length : "no"} rows; expected ${s}`);
    return r.map((row, i) => numbers(ctx, `${what}[${i}]`, row, i));
  };
  return {
    kind: "rosenbrock",
    name: t.name,
    order: t.order,
    errorOrder: t.errorOrder,
    gamma: t.gamma,
    a: rows("a"),
    c: rows("c"),
    alpha: numbers(ctx, "alpha", t.alpha, s),
    gammaSum: numbers(ctx, "gammaSum", t.gammaSum, s),
    m: numbers(ctx, "m", t.m, s),
    e: numbers(ctx, "e", t.e, s),
  };
}

/** Whether two states are the same objects (a list of leaves: the same leaves). */
function sameState(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A Solver for a Rosenbrock method (validated here). */
export function rosenbrock(tableau: RosenbrockTableau): Solver {
  const T = validateRosenbrock(tableau);
  const s = T.m.length;
  // stage i reuses stage i−1's f value when it evaluates f at the same point
  const newF = T.a.map((row, i) => {
    if (i === 0) return true;
    const prev = T.a[i - 1];
    if (T.alpha[i] !== T.alpha[i - 1]) return true;
    for (let j = 0; j < i; j++) if ((row[j] ?? 0) !== (prev[j] ?? 0)) return true;
    return false;
  });
  const needFt = T.gammaSum.some((g) => g !== 0);
  // the Jacobian (and f_t) of the last step start, reused when a rejected step is retried from the same state
  let cache: { f: unknown; t: number; y: unknown; J: unknown; ft: unknown } | null = null;

  const stepOn = <V>(
    space: VectorSpace<V>,
    f: (t: number, y: V) => V,
    t: number,
    y: V,
    h: number,
    f0: V | null,
    needError = true,
  ): StepResult<V> => {
    let nfev = 0,
      njev = 0;
    let fy: V;
    if (f0) fy = f0;
    else {
      fy = f(t, y);
      nfev++;
    }
    let J: unknown, ft: V | null;
    if (cache && cache.f === f && cache.t === t && sameState(cache.y, y)) {
      J = cache.J;
      ft = cache.ft as V | null;
    } else {
      const r = space.jacobian(f, t, y, fy);
      J = r.J;
      nfev += r.nfev;
      njev++;
      ft = null;
      if (needFt) {
        // forward difference in t, with Hairer's increment √(u·max(1e-5, |t|))
        const d = Math.sqrt(Number.EPSILON * Math.max(1e-5, Math.abs(t)));
        const td = t + d;
        ft = space.increment(1 / (td - t), [1, -1], [f(td, y), fy]);
        nfev++;
      }
      cache = { f, t, y, J, ft };
    }
    const solve = space.factor(J, 1 / (h * T.gamma));
    const K: V[] = [];
    let fi = fy;
    for (let i = 0; i < s; i++) {
      if (i > 0 && newF[i]) {
        fi = f(t + T.alpha[i] * h, space.combine(y, 1, T.a[i], K));
        nfev++;
      }
      let rhs = fi;
      if (T.c[i].some((v) => v !== 0)) rhs = space.combine(rhs, 1 / h, T.c[i], K);
      if (T.gammaSum[i] !== 0 && ft) rhs = space.combine(rhs, h * T.gammaSum[i], [1], [ft]);
      K.push(solve(rhs));
    }
    const y1 = space.combine(y, 1, T.m, K);
    const err = needError ? space.hostIncrement(1, T.e, K) : null;
    return { y1, err, f0: fy, f1: null, nfev, njev, nlu: 1 };
  };

  return {
    name: T.name,
    order: T.order,
    errorOrder: T.errorOrder,
    adaptive: true,
    fsal: false,
    dense: false,
    implicit: true,
    step(f: FlatField, t: number, y: readonly Tensor[], h: number, f0: readonly Tensor[] | null, needError = true): StepResult {
      return stepOn(tensorSpace, f as (t: number, y: Tensor[]) => Tensor[], t, y as Tensor[], h, f0 as Tensor[] | null, needError);
    },
    stepOn,
  };
}
