/**
 * Input checks shared by odeint, odeintAdjoint and the step-size controllers: output times, states, the
 * vector field's results, tolerances and numeric options. Every failure names the function (or controller)
 * it was given to, what was wrong and what was expected.
 */
import { treeFlatten, type Tensor } from "@qkvflow/autograd";
import { flattenTolerance } from "./state.js";
import type { FlatField, OdeintOptions, Tolerance } from "./types.js";

/** Default relative tolerance for a leaf of the given dtype. */
export function defaultRtol(dtype: string): number {
  return dtype === "float64" ? 1e-7 : 1e-4;
}
/** Default absolute tolerance for a leaf of the given dtype. */
export function defaultAtol(dtype: string): number {
  return dtype === "float64" ? 1e-9 : 1e-6;
}

/** Checks output times: finite, at least one, strictly increasing or strictly decreasing. */
export function checkTimes(fn: string, ts: ArrayLike<number>): number[] {
  if (ts === null || typeof ts !== "object" || typeof ts.length !== "number") {
    throw new Error(`${fn}: ts is ${ts === null ? "null" : typeof ts}; expected an array (or Float64Array) of times`);
  }
  const out = Array.from(ts);
  if (out.length === 0) throw new Error(`${fn}: ts is empty; expected at least the initial time`);
  for (let i = 0; i < out.length; i++) {
    if (typeof out[i] !== "number" || !Number.isFinite(out[i]))
      throw new Error(`${fn}: ts[${i}] is ${String(out[i])}; expected a finite number`);
  }
  if (out.length >= 2) {
    const dir = Math.sign(out[1] - out[0]);
    if (dir === 0)
      throw new Error(
        `${fn}: ts is not strictly monotonic: ts[0] = ts[1] = ${out[0]}; expected strictly increasing or strictly decreasing times`,
      );
    for (let i = 1; i < out.length; i++) {
      if (Math.sign(out[i] - out[i - 1]) !== dir) {
        throw new Error(
          `${fn}: ts is not strictly monotonic: ts[${i - 1}] = ${out[i - 1]}, ts[${i}] = ${out[i]} while the times ${dir > 0 ? "increase" : "decrease"} from ts[0] = ${out[0]}; expected strictly ${dir > 0 ? "increasing" : "decreasing"} times`,
        );
      }
    }
  }
  return out;
}

/** Checks the initial state's leaves: at least one, all float tensors. */
export function checkState(fn: string, leaves: readonly Tensor[], what = "y0"): void {
  if (leaves.length === 0) throw new Error(`${fn}: ${what} contains no tensors; expected a Tensor or a tree (array / object) of Tensors`);
  leaves.forEach((x, i) => {
    if (x.dtype !== "float32" && x.dtype !== "float64")
      throw new Error(`${fn}: ${what} leaf ${i} is a ${x.dtype} tensor [${x.shape.join(", ")}]; expected float32 or float64`);
  });
}

/** Wraps a tree-valued field as a flat field, checking that every result matches the state's leaves. */
export function flattenField<Y>(
  fn: string,
  f: (t: number, y: Y) => Y,
  unflatten: (leaves: readonly Tensor[]) => Y,
  like: readonly Tensor[],
): FlatField {
  if (typeof f !== "function") throw new Error(`${fn}: f is ${typeof f}; expected a function (t, y) => dy/dt`);
  return (t, y) => {
    const out = treeFlatten(f(t, unflatten(y))).leaves;
    checkDerivative(fn, out, like, t);
    return out;
  };
}

/** Throws unless `out` has one tensor per state leaf with the same shape and dtype. */
export function checkDerivative(fn: string, out: readonly Tensor[], like: readonly Tensor[], t: number): void {
  if (out.length !== like.length)
    throw new Error(`${fn}: f returned ${out.length} tensors at t = ${t}; expected ${like.length}, one per leaf of the state`);
  for (let i = 0; i < out.length; i++) {
    const o = out[i],
      s = like[i];
    if (o.dtype !== s.dtype || o.shape.length !== s.shape.length || o.shape.some((d, k) => d !== s.shape[k])) {
      throw new Error(
        `${fn}: f returned ${o.dtype} [${o.shape.join(", ")}] for leaf ${i} at t = ${t}; expected ${s.dtype} [${s.shape.join(", ")}] like the state`,
      );
    }
  }
}

/** Per-leaf tolerances from an option (number or tree), with dtype-dependent defaults. */
export function resolveTolerances(
  fn: string,
  state: unknown,
  leaves: readonly Tensor[],
  rtol: Tolerance | undefined,
  atol: Tolerance | undefined,
): { rtol: number[]; atol: number[] } {
  const r = rtol === undefined ? leaves.map((l) => defaultRtol(l.dtype)) : flattenTolerance(fn, "rtol", rtol, 0, state);
  const a = atol === undefined ? leaves.map((l) => defaultAtol(l.dtype)) : flattenTolerance(fn, "atol", atol, 0, state);
  for (let i = 0; i < r.length; i++) {
    if (r[i] === 0 && a[i] === 0) throw new Error(`${fn}: rtol and atol are both 0 for state leaf ${i}; expected at least one of them > 0`);
  }
  return { rtol: r, atol: a };
}

/** Throws unless v (when given) is a finite number > 0, or a positive integer. */
export function checkPositive(where: string, name: string, v: number | undefined, integer = false): void {
  if (v === undefined) return;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new Error(`${where}: ${name} is ${String(v)}; expected a ${integer ? "positive integer" : "finite number > 0"}`);
  }
}

/** Throws unless v (when given) is a finite number >= 0. */
export function checkNonNegative(where: string, name: string, v: number | undefined): void {
  if (v === undefined) return;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
    throw new Error(`${where}: ${name} is ${String(v)}; expected a finite number >= 0`);
}

/** Checks a fixed-step specification: dt > 0 or steps a positive integer, not both. */
export function checkFixedStep(where: string, o: { dt?: number; steps?: number }): void {
  checkPositive(where, "dt", o.dt);
  checkPositive(where, "steps", o.steps, true);
  if (o.dt !== undefined && o.steps !== undefined)
    throw new Error(`${where}: both dt (${o.dt}) and steps (${o.steps}) are given; expected at most one`);
}

/** Checks the step-change limits: safety in (0, 1], factorMin in (0, 1), factorMax > 1. */
export function checkFactors(where: string, o: { safety?: number; factorMin?: number; factorMax?: number }): void {
  checkPositive(where, "safety", o.safety);
  checkPositive(where, "factorMin", o.factorMin);
  checkPositive(where, "factorMax", o.factorMax);
  if (o.safety !== undefined && o.safety > 1) throw new Error(`${where}: safety is ${o.safety}; expected a factor in (0, 1]`);
  if (o.factorMin !== undefined && o.factorMin >= 1) throw new Error(`${where}: factorMin is ${o.factorMin}; expected a factor in (0, 1)`);
  if (o.factorMax !== undefined && o.factorMax <= 1) throw new Error(`${where}: factorMax is ${o.factorMax}; expected a factor > 1`);
}

/**
 * Checks controller coefficients (each a finite number; diffrax-style coefficients may be negative) and that
 * the exponent of the current error they give, the sum of those present (icoeff defaults to 1, the others to
 * 0), is positive.
 */
export function checkCoefficients(
  where: string,
  o: { pcoeff?: number; icoeff?: number; dcoeff?: number },
  names: readonly ("pcoeff" | "icoeff" | "dcoeff")[],
): void {
  for (const k of names) {
    const v = o[k];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v)))
      throw new Error(`${where}: ${k} is ${String(v)}; expected a finite number`);
  }
  const sum = names.reduce((s, k) => s + (o[k] ?? (k === "icoeff" ? 1 : 0)), 0);
  if (!(sum > 0))
    throw new Error(
      `${where}: ${names.join(" + ")} is ${sum}; expected a positive sum (the exponent of the current error: the controller must shrink the step when the error grows)`,
    );
}

/** Throws naming the first key of `o` that is not in `known`. */
export function checkKnownKeys(where: string, o: object, known: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw new Error(`${where}: unknown option '${k}'; expected one of ${known.join(", ")}`);
  }
}

/** The options that are a shorthand for a step-size controller (deprecated in favour of `stepSizeController`). */
export const FLAT_STEP_OPTIONS = [
  "dt",
  "steps",
  "rtol",
  "atol",
  "firstStep",
  "maxStep",
  "maxSteps",
  "pcoeff",
  "icoeff",
  "safety",
  "factorMin",
  "factorMax",
] as const;

/** The flat step options present (not undefined) in o. */
export function flatStepOptionsIn(o: object): string[] {
  const rec = o as Record<string, unknown>;
  return FLAT_STEP_OPTIONS.filter((k) => rec[k] !== undefined);
}

/** Checks a `stepSizeController` value: an object of kind 'fixed' or 'adaptive' with the methods of its kind. */
export function checkController(fn: string, c: unknown): void {
  const what = "stepSizeController";
  if (c === null || typeof c !== "object") {
    throw new Error(
      `${fn}: ${what} is ${c === null ? "null" : typeof c}; expected a ConstantStepSize, a PIDController or another object implementing StepSizeController`,
    );
  }
  const o = c as Record<string, unknown>;
  if (o.kind === "fixed") {
    if (typeof o.stepsBetween !== "function")
      throw new Error(`${fn}: ${what} of kind 'fixed' has no stepsBetween method; expected stepsBetween(t0, t1) → number of steps`);
    if (o.maxSteps !== undefined) checkPositive(`${fn}: ${what}`, "maxSteps", o.maxSteps as number, true);
  } else if (o.kind === "adaptive") {
    for (const m of ["init", "adapt"]) {
      if (typeof o[m] !== "function")
        throw new Error(`${fn}: ${what} of kind 'adaptive' has no ${m} method; expected init(start) and adapt(step, state)`);
    }
    if (o.maxSteps === undefined) throw new Error(`${fn}: ${what} of kind 'adaptive' has no maxSteps; expected a positive integer`);
    checkPositive(`${fn}: ${what}`, "maxSteps", o.maxSteps as number, true);
  } else {
    throw new Error(
      `${fn}: ${what}.kind is ${JSON.stringify(o.kind)}; expected 'fixed' (e.g. ConstantStepSize) or 'adaptive' (e.g. PIDController)`,
    );
  }
}

/** Checks the options object of odeint / odeintAdjoint (the flat step options, the controller, checkFinite). */
export function checkOptions(fn: string, o: OdeintOptions): void {
  if (o === null || typeof o !== "object") throw new Error(`${fn}: options is ${String(o)}; expected an object`);
  checkFixedStep(fn, o);
  checkPositive(fn, "firstStep", o.firstStep);
  checkPositive(fn, "maxStep", o.maxStep);
  checkPositive(fn, "maxSteps", o.maxSteps, true);
  checkFactors(fn, o);
  checkCoefficients(fn, o, ["pcoeff", "icoeff"]);
  if (o.checkFinite !== undefined && !["step", "output", "off"].includes(o.checkFinite)) {
    throw new Error(`${fn}: checkFinite is ${JSON.stringify(o.checkFinite)}; expected 'step', 'output' or 'off'`);
  }
  if (o.stepSizeController !== undefined) {
    checkController(fn, o.stepSizeController);
    const flat = flatStepOptionsIn(o);
    if (flat.length > 0) {
      throw new Error(
        `${fn}: options give both stepSizeController and the step options ${flat.join(", ")}; expected one or the other (set them on the controller, e.g. new PIDController({ rtol, atol }) or new ConstantStepSize({ steps }))`,
      );
    }
  }
}
