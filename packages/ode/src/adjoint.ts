/**
 * The continuous adjoint method (Pontryagin; Chen et al. 2018): gradients of a loss of the solution with
 * respect to y0 and the parameters, from one backward-in-time solve of the augmented system
 *   y' = f(t, y, θ),   a' = −aᵀ ∂f/∂y,   g' = −aᵀ ∂f/∂θ,
 * with the same solver options, using autograd `vjp` of f at each stage. Nothing of the forward solve is
 * recorded, so memory does not grow with the number of steps.
 */
import { neg, noGrad, stopGradient, treeFlatten, vjp, zeros, add, type Tensor } from "@qkvflow/autograd";
import { controllerFromOptions, toleranceOptions } from "./controller.js";
import { customVjp } from "./custom-vjp.js";
import { resolveSolver } from "./registry.js";
import { solveFlat } from "./solve.js";
import type { FlatField, OdeintOptions, OdeStats, Tolerance } from "./types.js";
import { checkDerivative, checkOptions, checkState, checkTimes, flatStepOptionsIn, resolveTolerances } from "./validate.js";

/**
 * Options of the backward (augmented) solve; tolerances are numbers applied to all augmented leaves (also
 * those of an adaptive `stepSizeController` given here).
 */
export interface AdjointSolveOptions extends Omit<OdeintOptions, "rtol" | "atol" | "checkpoint"> {
  rtol?: number;
  atol?: number;
}

/** Options of odeintAdjoint. */
export interface AdjointOptions extends OdeintOptions {
  /**
   * Overrides for the backward solve (default: the forward options; the state and adjoint parts use the
   * forward rtol/atol per leaf, the parameter part the smallest of them).
   */
  adjoint?: AdjointSolveOptions;
  /** Called with the counters of the forward solve and, after each backward pass, of the backward solve. */
  onStats?: (phase: "forward" | "backward", stats: OdeStats) => void;
}

/** The vector field of odeintAdjoint: the parameters are an explicit argument. */
export type ParamField<Y, P> = (t: number, y: Y, params: P) => Y;

/** Result of odeintAdjointVjp. */
export interface AdjointSolution<Y, P> {
  /** The solution at every time in ts (ys[0] is y0). */
  ys: Y[];
  /** Counters of the forward solve. */
  stats: OdeStats;
  /**
   * Gradients of a loss L given ∂L/∂ys[i] for every output time (null/undefined entries count as zero):
   * returns ∂L/∂y0 and ∂L/∂params (zeros for non-float parameter leaves), plus counters of the backward solve.
   */
  backward(cotangents: readonly (Y | null | undefined)[]): { y0: Y; params: P; stats: OdeStats };
}

function isFloat(x: Tensor): boolean {
  return x.dtype === "float32" || x.dtype === "float64";
}

/**
 * Solves y' = f(t, y, params) like odeint and returns the solution with a `backward` function computing
 * gradients by the continuous adjoint method (no graph of the forward solve is kept).
 */
export function odeintAdjointVjp<Y, P>(
  f: ParamField<Y, P>,
  y0: Y,
  ts: readonly number[] | Float64Array,
  params: P,
  options: AdjointOptions = {},
): AdjointSolution<Y, P> {
  const fn = "odeintAdjoint";
  checkOptions(fn, options);
  if (typeof f !== "function") throw new Error(`${fn}: f is ${typeof f}; expected a function (t, y, params) => dy/dt`);
  const solver = resolveSolver(fn, options.method);
  const times = checkTimes(fn, ts);
  const yFlat = treeFlatten(y0);
  checkState(fn, yFlat.leaves);
  const nY = yFlat.leaves.length;
  const pFlat = treeFlatten(params);
  const pLeaves = pFlat.leaves.map((x) => stopGradient(x));
  const pFloatIdx: number[] = [];
  pLeaves.forEach((x, i) => {
    if (isFloat(x)) pFloatIdx.push(i);
  });
  const spec = toleranceOptions(options);
  const tol = resolveTolerances(fn, y0, yFlat.leaves, spec.rtol, spec.atol);
  const controller = controllerFromOptions(fn, solver, options);
  const { adjoint: adjOpts, onStats, ...fwdOpts } = options;

  const paramsWith = (floatLeaves: readonly Tensor[]): P => {
    const all = [...pLeaves];
    pFloatIdx.forEach((pi, k) => (all[pi] = floatLeaves[k]));
    return pFlat.unflatten(all);
  };
  const flatF = (t: number, yl: readonly Tensor[], pl: readonly Tensor[]): Tensor[] => {
    const out = treeFlatten(f(t, yFlat.unflatten(yl), paramsWith(pl))).leaves;
    checkDerivative(fn, out, yFlat.leaves, t);
    return out;
  };
  const pFloat = pFloatIdx.map((i) => pLeaves[i]);

  const fwd = noGrad(() =>
    solveFlat({
      fn,
      f: (t, y) => flatF(t, y, pFloat),
      y0: yFlat.leaves.map((x) => stopGradient(x)),
      ts: times,
      rtol: tol.rtol,
      atol: tol.atol,
      solver,
      controller,
      opts: fwdOpts,
    }),
  );
  onStats?.("forward", fwd.stats);
  const ys = fwd.ys.map((leaves, i) => (i === 0 ? y0 : yFlat.unflatten(leaves)));

  const backward = (cotangents: readonly (Y | null | undefined)[]) => {
    const bfn = "odeintAdjoint (backward solve)";
    if (!Array.isArray(cotangents) || cotangents.length !== times.length) {
      throw new Error(
        `${bfn}: got ${Array.isArray(cotangents) ? cotangents.length : typeof cotangents} cotangents; expected ${times.length}, one per output time`,
      );
    }
    const cts: (Tensor[] | null)[] = cotangents.map((c, i) => {
      if (c === null || c === undefined) return null;
      const leaves = treeFlatten(c).leaves;
      try {
        checkDerivative(bfn, leaves, yFlat.leaves, times[i]);
      } catch (e) {
        throw new Error(`${bfn}: cotangent ${i} does not match the state: ${(e as Error).message}`);
      }
      return leaves;
    });
    const o: AdjointSolveOptions = adjOpts ?? {};
    const bopts = backwardOptions(bfn, fwdOpts, o);
    checkOptions(bfn, bopts);
    const bsolver = resolveSolver(bfn, bopts.method);
    // an implicit method differentiates augF (forward mode) for its Jacobian, so the state may not be detached there
    const detach = bsolver.implicit ? (x: Tensor) => x : (x: Tensor) => stopGradient(x);
    const augF: FlatField = (t, z) => {
      const yl = z.slice(0, nY).map(detach);
      const al = z.slice(nY, 2 * nY);
      const [fy, pull] = vjp((yy: Tensor[], pp: Tensor[]) => flatF(t, yy, pp), yl, pFloat);
      const [gy, gp] = pull(al);
      return [...fy.map(detach), ...gy.map((x) => neg(x)), ...gp.map((x) => neg(x))];
    };
    const bcontroller = controllerFromOptions(bfn, bsolver, bopts);
    const bspec = o.stepSizeController !== undefined ? toleranceOptions(o) : { rtol: o.rtol, atol: o.atol };
    const oRtol = augmentedTolerance(bfn, "rtol", bspec.rtol),
      oAtol = augmentedTolerance(bfn, "atol", bspec.atol);
    const minR = Math.min(...tol.rtol),
      minA = Math.min(...tol.atol);
    const rtol = [
      ...(oRtol !== undefined ? new Array<number>(2 * nY).fill(oRtol) : [...tol.rtol, ...tol.rtol]),
      ...pFloat.map(() => oRtol ?? minR),
    ];
    const atol = [
      ...(oAtol !== undefined ? new Array<number>(2 * nY).fill(oAtol) : [...tol.atol, ...tol.atol]),
      ...pFloat.map(() => oAtol ?? minA),
    ];
    const stats: OdeStats = { nfev: 0, accepted: 0, rejected: 0 };

    const N = times.length;
    let a: Tensor[] = cts[N - 1] ?? yFlat.leaves.map((x) => zeros(x.shape, x.dtype));
    let g: Tensor[] = pFloat.map((x) => zeros(x.shape, x.dtype));
    for (let i = N - 1; i >= 1; i--) {
      const z0 = [...fwd.ys[i], ...a, ...g];
      const run = () =>
        solveFlat({
          fn: bfn,
          f: augF,
          y0: z0,
          ts: [times[i], times[i - 1]],
          rtol,
          atol,
          solver: bsolver,
          controller: bcontroller,
          opts: bopts,
        });
      const sol = run();
      stats.nfev += sol.stats.nfev;
      stats.accepted += sol.stats.accepted;
      stats.rejected += sol.stats.rejected;
      if (sol.stats.njev !== undefined) stats.njev = (stats.njev ?? 0) + sol.stats.njev;
      if (sol.stats.nlu !== undefined) stats.nlu = (stats.nlu ?? 0) + sol.stats.nlu;
      const z1 = sol.ys[1];
      a = z1.slice(nY, 2 * nY);
      g = z1.slice(2 * nY);
      const c = cts[i - 1];
      if (c) a = a.map((x, l) => add(x, c[l]));
    }
    onStats?.("backward", stats);
    const pg = pLeaves.map((x) => zeros(x.shape, x.dtype));
    pFloatIdx.forEach((pi, k) => (pg[pi] = g[k]));
    return { y0: yFlat.unflatten(a), params: pFlat.unflatten(pg), stats };
  };
  return { ys, stats: fwd.stats, backward };
}

/**
 * Options of the backward solve: the forward options with the overrides in `o`. Flat step options in `o`
 * merge with the forward ones; a `stepSizeController` in `o` replaces the forward step control. When the
 * forward solve uses a controller, `o` overrides it with a controller (or only the tolerances rtol / atol).
 */
function backwardOptions(bfn: string, fwd: OdeintOptions, o: AdjointSolveOptions): OdeintOptions {
  if (o === null || typeof o !== "object")
    throw new Error(`${bfn}: options.adjoint is ${String(o)}; expected an object of backward-solve options`);
  if (o.stepSizeController !== undefined) {
    const base: Record<string, unknown> = { ...fwd };
    for (const k of flatStepOptionsIn(fwd)) delete base[k];
    return { ...(base as OdeintOptions), ...o, checkpoint: false };
  }
  if (fwd.stepSizeController !== undefined) {
    const flat = flatStepOptionsIn(o).filter((k) => k !== "rtol" && k !== "atol");
    if (flat.length > 0) {
      throw new Error(
        `${bfn}: options.adjoint gives the step options ${flat.join(", ")} but the forward solve uses a stepSizeController; expected options.adjoint.stepSizeController for the backward solve (or only rtol / atol)`,
      );
    }
    const { rtol: _r, atol: _a, ...rest } = o;
    return { ...fwd, ...rest, checkpoint: false };
  }
  return { ...fwd, ...o, checkpoint: false };
}

/** A tolerance of the augmented backward state: undefined (use the forward ones) or one number for all leaves. */
function augmentedTolerance(bfn: string, name: string, v: Tolerance | undefined): number | undefined {
  if (v === undefined || typeof v === "number") return v;
  throw new Error(
    `${bfn}: the backward solve's ${name} is a tree; expected one number (the augmented state [y, a, ∂L/∂params] does not have the state's structure)`,
  );
}

/**
 * Solves y' = f(t, y, params) and returns the state at every time in ts; under grad / vjp the gradients with
 * respect to y0 and params come from the continuous adjoint method (one backward solve, memory independent
 * of the number of steps). Every tensor f depends on that needs a gradient must be inside `params`
 * (tensors closed over by f get none). Reverse mode, first order only.
 */
export function odeintAdjoint<Y, P>(
  f: ParamField<Y, P>,
  y0: Y,
  ts: readonly number[] | Float64Array,
  params: P,
  options: AdjointOptions = {},
): Y[] {
  let sol: AdjointSolution<Y, P> | null = null;
  const wrapped = customVjp(
    (y: Y, p: P): Y[] => {
      sol = odeintAdjointVjp(f, y, ts, p, options);
      return sol.ys;
    },
    (ct: Y[], _args: [Y, P]): [Y, P] => {
      const r = sol!.backward(ct);
      return [r.y0, r.params];
    },
    "odeintAdjoint",
  );
  return wrapped(y0, params);
}
