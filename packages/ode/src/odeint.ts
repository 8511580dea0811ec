/**
 * odeint: the public entry point, on trees of tensors or on plain arrays (Float64Array / number[]). Checks the
 * inputs, resolves the method and the step-size controller, and solves through the driver core (solve.ts) on
 * the matching vector space (space.ts): the same solver core and controller for both kinds of state.
 */
import { treeFlatten } from "@qkvflow/autograd";
import { controllerFromOptions, toleranceOptions } from "./controller.js";
import { resolveSolver } from "./registry.js";
import { solveCore, solveFlat } from "./solve.js";
import { arraySpace, type ArraySpace } from "./space.js";
import type { ArrayField, OdeintOptions, OdeSolution, Solver, Tolerance } from "./types.js";
import { checkOptions, checkState, checkTimes, defaultAtol, defaultRtol, flattenField, resolveTolerances } from "./validate.js";

/** A plain-array state: a Float64Array or an array of numbers. */
export type ArrayState = Float64Array | readonly number[];

/**
 * Solves y' = f(t, y) from y(ts[0]) = y0 and returns the state at every time in ts (ys[0] is y0 for tensor
 * states, a copy for plain arrays). Plain arrays: f(t, y, dydt) on Float64Arrays; ys are Float64Arrays for a
 * Float64Array y0 and number[] for a number[] y0.
 */
export function odeint(f: ArrayField, y0: Float64Array, ts: readonly number[] | Float64Array, options?: OdeintOptions): Float64Array[];
export function odeint(f: ArrayField, y0: readonly number[], ts: readonly number[] | Float64Array, options?: OdeintOptions): number[][];
export function odeint<Y>(f: (t: number, y: Y) => Y, y0: Y, ts: readonly number[] | Float64Array, options?: OdeintOptions): Y[];
// biome-ignore lint/suspicious/noExplicitAny: the implementation serves all overloads
export function odeint(f: any, y0: any, ts: readonly number[] | Float64Array, options: OdeintOptions = {}): any[] {
  return odeintWithStats(f, y0, ts, options).ys;
}

/** Like odeint, also returning counters: vector-field evaluations, accepted and rejected steps (and njev, nlu for implicit methods). */
export function odeintWithStats(
  f: ArrayField,
  y0: Float64Array,
  ts: readonly number[] | Float64Array,
  options?: OdeintOptions,
): OdeSolution<Float64Array>;
export function odeintWithStats(
  f: ArrayField,
  y0: readonly number[],
  ts: readonly number[] | Float64Array,
  options?: OdeintOptions,
): OdeSolution<number[]>;
export function odeintWithStats<Y>(
  f: (t: number, y: Y) => Y,
  y0: Y,
  ts: readonly number[] | Float64Array,
  options?: OdeintOptions,
): OdeSolution<Y>;
export function odeintWithStats<Y>(
  // biome-ignore lint/suspicious/noExplicitAny: the implementation serves all overloads
  f: any,
  y0: Y,
  ts: readonly number[] | Float64Array,
  options: OdeintOptions = {},
): OdeSolution<Y> {
  const fn = "odeint";
  checkOptions(fn, options);
  const solver = resolveSolver(fn, options.method);
  const times = checkTimes(fn, ts);
  if (isArrayState(y0)) return solveArray(fn, f as ArrayField, y0, times, solver, options) as unknown as OdeSolution<Y>;
  if (options.jac !== undefined)
    throw new Error(
      `${fn}: options.jac is given for a tensor state; expected it only with plain-array states (tensor states get exact Jacobians from autodiff)`,
    );
  const flat = treeFlatten(y0);
  checkState(fn, flat.leaves);
  const F = flattenField(fn, f as (t: number, y: Y) => Y, flat.unflatten, flat.leaves);
  const spec = toleranceOptions(options);
  const tol = resolveTolerances(fn, y0, flat.leaves, spec.rtol, spec.atol);
  const controller = controllerFromOptions(fn, solver, options);
  const { ys, stats } = solveFlat({
    fn,
    f: F,
    y0: flat.leaves,
    ts: times,
    rtol: tol.rtol,
    atol: tol.atol,
    solver,
    controller,
    opts: options,
  });
  return { ys: ys.map((leaves, i) => (i === 0 ? y0 : flat.unflatten(leaves))), stats };
}

/** Whether y0 is a plain-array state (a Float64Array, or a non-empty array of numbers). */
export function isArrayState(y0: unknown): y0 is ArrayState {
  if (y0 instanceof Float64Array) return true;
  return Array.isArray(y0) && y0.length > 0 && y0.every((v) => typeof v === "number");
}

/** A tolerance value: a finite number >= 0 (`where` locates it in the option). */
function checkArrayTolerance(fn: string, what: string, v: unknown, where: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
    throw new Error(`${fn}: ${what}${where} is ${String(v)}; expected a finite number >= 0`);
  return v;
}

/** One tolerance per element of an n-element plain state: a number, or an array of n numbers (each >= 0). */
function arrayTolerance(fn: string, what: string, tol: Tolerance | undefined, fallback: number, n: number): number[] {
  if (tol === undefined) return new Array<number>(n).fill(fallback);
  if (typeof tol === "number") return new Array<number>(n).fill(checkArrayTolerance(fn, what, tol, ""));
  if (Array.isArray(tol) || ArrayBuffer.isView(tol)) {
    const a = tol as ArrayLike<unknown>;
    if (a.length !== n) throw new Error(`${fn}: ${what} has ${a.length} entries; expected a number or ${n} numbers, one per state element`);
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = checkArrayTolerance(fn, what, a[i], `[${i}]`);
    return out;
  }
  throw new Error(`${fn}: ${what} is ${typeof tol}; expected a number or an array of ${n} numbers for a plain-array state`);
}

/**
 * The user's f(t, y, dydt) as the solver core calls it, f(t, y) → dy/dt, with dydt a buffer of the space (reused
 * once the solver is done with a value): a returned array is copied into it. (Made here rather than as a named
 * closure inside solveArray: a solve creates it once, and nothing else.)
 */
function spaceField(fn: string, f: ArrayField, space: ArraySpace): (t: number, y: Float64Array) => Float64Array {
  const n = space.n;
  return (t, y) => {
    const out = space.alloc();
    const r = f(t, y, out);
    if (r === undefined || r === null) return out;
    if (typeof r !== "object" || typeof (r as ArrayLike<number>).length !== "number")
      throw new Error(`${fn}: f returned ${typeof r} at t = ${t}; expected nothing (dydt filled in) or an array of ${n} numbers`);
    if (r.length !== n) throw new Error(`${fn}: f returned ${r.length} numbers at t = ${t}; expected ${n}, one per state element`);
    for (let i = 0; i < n; i++) out[i] = r[i];
    return out;
  };
}

function solveArray(
  fn: string,
  f: ArrayField,
  y0: ArrayState,
  times: number[],
  solver: Solver,
  options: OdeintOptions,
): OdeSolution<Float64Array | number[]> {
  if (typeof f !== "function") throw new Error(`${fn}: f is ${typeof f}; expected a function (t, y, dydt) => void | dy/dt`);
  if (options.checkpoint)
    throw new Error(
      `${fn}: checkpoint is set for a plain-array state; expected it only with tensor states (plain arrays keep no autodiff graph)`,
    );
  if (options.jac !== undefined && typeof options.jac !== "function")
    throw new Error(`${fn}: options.jac is ${typeof options.jac}; expected a function (t, y, J) => void | J`);
  const stepOn = solver.stepOn;
  if (!stepOn)
    throw new Error(
      `${fn}: method '${solver.name}' has no stepOn (a step on any vector space), which plain-array states need; expected a built-in method, a tableau, or a Solver with stepOn`,
    );
  const n = y0.length;
  const start = Float64Array.from(y0);
  const spec = toleranceOptions(options);
  const rtol = arrayTolerance(fn, "rtol", spec.rtol, defaultRtol("float64"), n);
  const atol = arrayTolerance(fn, "atol", spec.atol, defaultAtol("float64"), n);
  const space = arraySpace(
    n,
    options.jac,
    fn,
    atol.map((a) => (a > 0 ? a : 1e-5)),
  );
  const field = spaceField(fn, f, space);
  for (let i = 0; i < n; i++) {
    if (rtol[i] === 0 && atol[i] === 0)
      throw new Error(`${fn}: rtol and atol are both 0 for state element ${i}; expected at least one of them > 0`);
  }
  const controller = controllerFromOptions(fn, solver, options);
  const { ys, stats } = solveCore(
    space,
    { fn, f: field, y0: start, ts: times, rtol, atol, solver, controller, opts: options },
    (ff, t, y, h, f0, needError) => stepOn(space, ff, t, y, h, f0, needError),
  );
  const out = y0 instanceof Float64Array ? ys : ys.map((y) => Array.from(y));
  return { ys: out, stats };
}
