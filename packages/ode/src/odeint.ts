/**
 * odeint: the public entry point on trees of tensors. Checks the inputs, resolves the method and the
 * step-size controller, flattens the state and solves through the driver core (solve.ts).
 */
import { treeFlatten } from "@qkvflow/autograd";
import { controllerFromOptions, toleranceOptions } from "./controller.js";
import { resolveSolver } from "./registry.js";
import { solveFlat } from "./solve.js";
import type { OdeintOptions, OdeSolution } from "./types.js";
import { checkOptions, checkState, checkTimes, flattenField, resolveTolerances } from "./validate.js";

/** Solves y' = f(t, y) from y(ts[0]) = y0 and returns the state at every time in ts (ys[0] is y0). */
export function odeint<Y>(f: (t: number, y: Y) => Y, y0: Y, ts: readonly number[] | Float64Array, options: OdeintOptions = {}): Y[] {
  return odeintWithStats(f, y0, ts, options).ys;
}

/** Like odeint, also returning counters: vector-field evaluations, accepted and rejected steps. */
export function odeintWithStats<Y>(
  f: (t: number, y: Y) => Y,
  y0: Y,
  ts: readonly number[] | Float64Array,
  options: OdeintOptions = {},
): OdeSolution<Y> {
  const fn = "odeint";
  checkOptions(fn, options);
  const solver = resolveSolver(fn, options.method);
  const times = checkTimes(fn, ts);
  const flat = treeFlatten(y0);
  checkState(fn, flat.leaves);
  const F = flattenField(fn, f, flat.unflatten, flat.leaves);
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
