/**
 * The driver: time stepping between output times, fixed steps or adaptive steps with a PI controller and
 * dense output, per-step checkpointing, statistics and input checks. Solvers only provide single steps.
 */
import { checkpoint, noGrad, treeFlatten, type Tensor } from "@qkvflow/autograd";
import { resolveSolver } from "./registry.js";
import { errorRatio, firstNonFinite, flattenTolerance, hermite, hostValues, scaledRms, tensorLike } from "./state.js";
import type { FlatField, OdeintOptions, OdeSolution, OdeStats, Solver, Tolerance } from "./types.js";

/** Default relative tolerance for a leaf of the given dtype. */
function defaultRtol(dtype: string): number {
  return dtype === "float64" ? 1e-7 : 1e-4;
}
/** Default absolute tolerance for a leaf of the given dtype. */
function defaultAtol(dtype: string): number {
  return dtype === "float64" ? 1e-9 : 1e-6;
}

/** Internal: a fully resolved problem on flat leaves. */
export interface FlatProblem {
  /** Name used in error messages. */
  fn: string;
  f: FlatField;
  y0: Tensor[];
  ts: number[];
  rtol: number[];
  atol: number[];
  solver: Solver;
  opts: OdeintOptions;
}

/** Checks output times: finite, at least one, strictly increasing or strictly decreasing. */
export function checkTimes(fn: string, ts: ArrayLike<number>): number[] {
  if (ts === null || typeof ts !== "object" || typeof ts.length !== "number") {
    throw new Error(`${fn}: ts is ${ts === null ? "null" : typeof ts}; expected an array (or Float64Array) of times`);
  }
  const out = Array.from(ts);
  if (out.length === 0) throw new Error(`${fn}: ts is empty; expected at least the initial time`);
  for (let i = 0; i < out.length; i++) {
    if (typeof out[i] !== "number" || !Number.isFinite(out[i])) throw new Error(`${fn}: ts[${i}] is ${String(out[i])}; expected a finite number`);
  }
  if (out.length >= 2) {
    const dir = Math.sign(out[1] - out[0]);
    if (dir === 0) throw new Error(`${fn}: ts is not strictly monotonic: ts[0] = ts[1] = ${out[0]}; expected strictly increasing or strictly decreasing times`);
    for (let i = 1; i < out.length; i++) {
      if (Math.sign(out[i] - out[i - 1]) !== dir) {
        throw new Error(`${fn}: ts is not strictly monotonic: ts[${i - 1}] = ${out[i - 1]}, ts[${i}] = ${out[i]} while the times ${dir > 0 ? "increase" : "decrease"} from ts[0] = ${out[0]}; expected strictly ${dir > 0 ? "increasing" : "decreasing"} times`);
      }
    }
  }
  return out;
}

/** Checks the initial state's leaves: at least one, all float tensors. */
export function checkState(fn: string, leaves: readonly Tensor[], what = "y0"): void {
  if (leaves.length === 0) throw new Error(`${fn}: ${what} contains no tensors; expected a Tensor or a tree (array / object) of Tensors`);
  leaves.forEach((x, i) => {
    if (x.dtype !== "float32" && x.dtype !== "float64") throw new Error(`${fn}: ${what} leaf ${i} is a ${x.dtype} tensor [${x.shape.join(", ")}]; expected float32 or float64`);
  });
}

/** Wraps a tree-valued field as a flat field, checking that every result matches the state's leaves. */
export function flattenField<Y>(fn: string, f: (t: number, y: Y) => Y, unflatten: (leaves: readonly Tensor[]) => Y, like: readonly Tensor[]): FlatField {
  if (typeof f !== "function") throw new Error(`${fn}: f is ${typeof f}; expected a function (t, y) => dy/dt`);
  return (t, y) => {
    const out = treeFlatten(f(t, unflatten(y))).leaves;
    checkDerivative(fn, out, like, t);
    return out;
  };
}

/** Throws unless `out` has one tensor per state leaf with the same shape and dtype. */
export function checkDerivative(fn: string, out: readonly Tensor[], like: readonly Tensor[], t: number): void {
  if (out.length !== like.length) throw new Error(`${fn}: f returned ${out.length} tensors at t = ${t}; expected ${like.length}, one per leaf of the state`);
  for (let i = 0; i < out.length; i++) {
    const o = out[i], s = like[i];
    if (o.dtype !== s.dtype || o.shape.length !== s.shape.length || o.shape.some((d, k) => d !== s.shape[k])) {
      throw new Error(`${fn}: f returned ${o.dtype} [${o.shape.join(", ")}] for leaf ${i} at t = ${t}; expected ${s.dtype} [${s.shape.join(", ")}] like the state`);
    }
  }
}

/** Per-leaf tolerances from an option (number or tree), with dtype-dependent defaults. */
export function resolveTolerances(fn: string, state: unknown, leaves: readonly Tensor[], rtol: Tolerance | undefined, atol: Tolerance | undefined): { rtol: number[]; atol: number[] } {
  const r = rtol === undefined ? leaves.map((l) => defaultRtol(l.dtype)) : flattenTolerance(fn, "rtol", rtol, 0, state);
  const a = atol === undefined ? leaves.map((l) => defaultAtol(l.dtype)) : flattenTolerance(fn, "atol", atol, 0, state);
  for (let i = 0; i < r.length; i++) {
    if (r[i] === 0 && a[i] === 0) throw new Error(`${fn}: rtol and atol are both 0 for state leaf ${i}; expected at least one of them > 0`);
  }
  return { rtol: r, atol: a };
}

function positive(fn: string, name: string, v: number | undefined, integer = false): void {
  if (v === undefined) return;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new Error(`${fn}: ${name} is ${String(v)}; expected a ${integer ? "positive integer" : "finite number > 0"}`);
  }
}

/** Checks numeric options. */
export function checkOptions(fn: string, o: OdeintOptions): void {
  if (o === null || typeof o !== "object") throw new Error(`${fn}: options is ${String(o)}; expected an object`);
  positive(fn, "dt", o.dt);
  positive(fn, "steps", o.steps, true);
  if (o.dt !== undefined && o.steps !== undefined) throw new Error(`${fn}: both dt (${o.dt}) and steps (${o.steps}) are given; expected at most one`);
  positive(fn, "firstStep", o.firstStep);
  positive(fn, "maxStep", o.maxStep);
  positive(fn, "maxSteps", o.maxSteps, true);
  positive(fn, "safety", o.safety);
  positive(fn, "factorMin", o.factorMin);
  positive(fn, "factorMax", o.factorMax);
  if (o.safety !== undefined && o.safety > 1) throw new Error(`${fn}: safety is ${o.safety}; expected a factor in (0, 1]`);
  if (o.factorMin !== undefined && o.factorMin >= 1) throw new Error(`${fn}: factorMin is ${o.factorMin}; expected a factor in (0, 1)`);
  if (o.factorMax !== undefined && o.factorMax <= 1) throw new Error(`${fn}: factorMax is ${o.factorMax}; expected a factor > 1`);
  for (const k of ["pcoeff", "icoeff"] as const) {
    const v = o[k];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v) || v < 0)) throw new Error(`${fn}: ${k} is ${String(v)}; expected a finite number >= 0`);
  }
  if ((o.pcoeff ?? 0) + (o.icoeff ?? 1) <= 0) throw new Error(`${fn}: pcoeff + icoeff is 0; expected a positive sum (the controller needs a response to the error)`);
  if (o.checkFinite !== undefined && !["step", "output", "off"].includes(o.checkFinite)) {
    throw new Error(`${fn}: checkFinite is ${JSON.stringify(o.checkFinite)}; expected 'step', 'output' or 'off'`);
  }
}

/** Solves y' = f(t, y) from y(ts[0]) = y0 and returns the state at every time in ts (ys[0] is y0). */
export function odeint<Y>(f: (t: number, y: Y) => Y, y0: Y, ts: readonly number[] | Float64Array, options: OdeintOptions = {}): Y[] {
  return odeintWithStats(f, y0, ts, options).ys;
}

/** Like odeint, also returning counters: vector-field evaluations, accepted and rejected steps. */
export function odeintWithStats<Y>(f: (t: number, y: Y) => Y, y0: Y, ts: readonly number[] | Float64Array, options: OdeintOptions = {}): OdeSolution<Y> {
  const fn = "odeint";
  checkOptions(fn, options);
  const solver = resolveSolver(fn, options.method);
  const times = checkTimes(fn, ts);
  const flat = treeFlatten(y0);
  checkState(fn, flat.leaves);
  const F = flattenField(fn, f, flat.unflatten, flat.leaves);
  const tol = resolveTolerances(fn, y0, flat.leaves, options.rtol, options.atol);
  const { ys, stats } = solveFlat({ fn, f: F, y0: flat.leaves, ts: times, rtol: tol.rtol, atol: tol.atol, solver, opts: options });
  return { ys: ys.map((leaves, i) => (i === 0 ? y0 : flat.unflatten(leaves))), stats };
}

/** Whether a solve with these options takes fixed steps. */
export function usesFixedSteps(solver: Solver, o: OdeintOptions): boolean {
  return o.dt !== undefined || o.steps !== undefined || !solver.adaptive;
}

interface Attempt {
  y1: Tensor[];
  err: Tensor[] | null;
  f0: Tensor[] | null;
  f1: Tensor[] | null;
  outs: Tensor[][];
  nfev: number;
}

/** Internal: the driver on flat states. ys[i] holds the leaves at ts[i]. */
export function solveFlat(p: FlatProblem): { ys: Tensor[][]; stats: OdeStats } {
  const { fn, f, solver, opts, ts } = p;
  const stats: OdeStats = { nfev: 0, accepted: 0, rejected: 0 };
  const ys: Tensor[][] = [p.y0];
  if (ts.length === 1) return { ys, stats };

  const bad0 = firstNonFinite(p.y0);
  if (bad0) throw new Error(`${fn}: the initial state is not finite at t = ${ts[0]} (leaf ${bad0.leaf}, element ${bad0.index} is ${bad0.value}); expected finite values`);

  const attempt = (t: number, y: readonly Tensor[], h: number, f0: readonly Tensor[] | null, thetas: readonly number[], needError: boolean): Attempt => {
    let nfev = 0;
    const run = (yl: Tensor[], f0l: Tensor[] | null) => {
      const r = solver.step(f, t, yl, h, f0l, needError);
      let extra = 0;
      let f1 = r.f1;
      let f0u = r.f0 ?? f0l;
      const outs: Tensor[][] = [];
      for (const th of thetas) {
        if (r.interpolate) outs.push(r.interpolate(th));
        else {
          if (!f0u) {
            f0u = f(t, yl);
            extra++;
          }
          if (!f1) {
            f1 = f(t + h, r.y1);
            extra++;
          }
          outs.push(hermite(yl, f0u, r.y1, f1, h, th));
        }
      }
      nfev = r.nfev + extra;
      return { y1: r.y1, err: r.err, f0: f0u, f1, outs };
    };
    const res = opts.checkpoint ? checkpoint(run)([...y], f0 ? [...f0] : null) : run([...y], f0 ? [...f0] : null);
    return { ...res, nfev };
  };

  if (usesFixedSteps(solver, opts)) return fixedSteps(p, attempt, stats, ys);
  return adaptiveSteps(p, attempt, stats, ys);
}

type AttemptFn = (t: number, y: readonly Tensor[], h: number, f0: readonly Tensor[] | null, thetas: readonly number[], needError: boolean) => Attempt;

function fixedSteps(p: FlatProblem, attempt: AttemptFn, stats: OdeStats, ys: Tensor[][]): { ys: Tensor[][]; stats: OdeStats } {
  const { fn, solver, opts, ts } = p;
  const check = opts.checkFinite ?? "output";
  let y: Tensor[] = p.y0;
  let f0: Tensor[] | null = null;
  let total = 0;
  for (let i = 1; i < ts.length; i++) {
    const span = ts[i] - ts[i - 1];
    const n = opts.steps ?? (opts.dt !== undefined ? Math.max(1, Math.ceil((Math.abs(span) / opts.dt) * (1 - 1e-12))) : 1);
    const h = span / n;
    for (let k = 0; k < n; k++) {
      const t = ts[i - 1] + (k * span) / n;
      if (opts.maxSteps !== undefined && total >= opts.maxSteps) {
        throw new Error(`${fn}: maximum number of steps (${opts.maxSteps}) exceeded at t = ${t} before reaching t = ${ts[ts.length - 1]} (fixed step h = ${h}); raise maxSteps or use a larger dt`);
      }
      const r = attempt(t, y, h, f0, [], false);
      total++;
      stats.nfev += r.nfev;
      stats.accepted++;
      y = r.y1;
      f0 = solver.fsal ? r.f1 : null;
      if (check === "step") {
        const bad = firstNonFinite(y);
        if (bad) throw new Error(`${fn}: non-finite state at t = ${k === n - 1 ? ts[i] : t + h} (leaf ${bad.leaf}, element ${bad.index} is ${bad.value}) after one ${solver.name} step of h = ${h} from t = ${t}, where the state was finite; expected finite values (try a smaller step)`);
      }
    }
    if (check === "output") {
      const bad = firstNonFinite(y);
      if (bad) throw new Error(`${fn}: non-finite state at t = ${ts[i]} (leaf ${bad.leaf}, element ${bad.index} is ${bad.value}); it was finite at t = ${ts[i - 1]} (${n} ${solver.name} steps of h = ${h} in between; checkFinite: 'step' locates the step); expected finite values (try a smaller step)`);
    }
    ys.push(y);
  }
  return { ys, stats };
}

/**
 * First step size (absolute value) from the initial derivative, as in Hairer, Nørsett & Wanner (1993),
 * Section II.4; costs one vector-field evaluation, done without gradient.
 */
function initialStep(p: FlatProblem, f0: readonly Tensor[], dir: number, stats: OdeStats): number {
  const { f, y0, ts, rtol, atol, solver } = p;
  const t0 = ts[0];
  return noGrad(() => {
    const y0v = y0.map(hostValues), f0v = f0.map(hostValues);
    const d0 = scaledRms(y0v, y0, rtol, atol);
    const d1 = scaledRms(f0v, y0, rtol, atol);
    let h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : (0.01 * d0) / d1;
    h0 = Math.min(h0, Math.abs(ts[ts.length - 1] - t0));
    const y1 = y0.map((leaf, l) => {
      const a = y0v[l], b = f0v[l];
      const v = new Float64Array(a.length);
      for (let i = 0; i < a.length; i++) v[i] = a[i] + dir * h0 * b[i];
      return tensorLike(v, leaf);
    });
    const f1 = f(t0 + dir * h0, y1);
    stats.nfev++;
    const diff = f1.map((x, l) => {
      const a = hostValues(x), b = f0v[l];
      const v = new Float64Array(a.length);
      for (let i = 0; i < a.length; i++) v[i] = a[i] - b[i];
      return v;
    });
    const d2 = scaledRms(diff, y0, rtol, atol) / h0;
    const m = Math.max(d1, d2);
    const h1 = m <= 1e-15 ? Math.max(1e-6, h0 * 1e-3) : Math.pow(0.01 / m, 1 / (solver.order + 1));
    const h = Math.min(100 * h0, h1);
    return Number.isFinite(h) && h > 0 ? h : h0;
  });
}

function adaptiveSteps(p: FlatProblem, attempt: AttemptFn, stats: OdeStats, ys: Tensor[][]): { ys: Tensor[][]; stats: OdeStats } {
  const { fn, f, solver, opts, ts, rtol, atol } = p;
  const N = ts.length;
  const t0 = ts[0], tEnd = ts[N - 1];
  const dir = Math.sign(tEnd - t0);
  const k = (solver.errorOrder ?? solver.order - 1) + 1;
  const pco = opts.pcoeff ?? 0, ico = opts.icoeff ?? 1;
  const safety = opts.safety ?? 0.9;
  const facMin = opts.factorMin ?? 0.2, facMax = opts.factorMax ?? 10;
  const maxSteps = opts.maxSteps ?? 10000;
  const maxStep = opts.maxStep ?? Infinity;
  const span = Math.abs(tEnd - t0);

  let t = t0;
  let y: Tensor[] = p.y0;
  let f0: Tensor[] | null = f(t0, y);
  stats.nfev++;
  const badF = firstNonFinite(f0);
  if (badF) throw new Error(`${fn}: f(t0, y0) is not finite at t = ${t0} (leaf ${badF.leaf}, element ${badF.index} is ${badF.value}); expected a finite derivative at the initial state`);
  let h = Math.min(opts.firstStep ?? initialStep(p, f0, dir, stats), maxStep);
  let prevErr = 1;
  let next = 1;
  let nonFiniteRun = 0;
  let lastRatio = NaN;

  while (next < N) {
    if (stats.accepted + stats.rejected >= maxSteps) {
      throw new Error(`${fn}: maximum number of steps (${maxSteps}) exceeded at t = ${t} before reaching t = ${tEnd} (${stats.accepted} accepted, ${stats.rejected} rejected, last h = ${h}); raise maxSteps or loosen rtol/atol (the problem may be stiff)`);
    }
    const target = opts.denseOutput === false ? ts[next] : tEnd;
    let hs = dir * h;
    let t1 = t + hs;
    if (dir * (t1 - target) >= 0) {
      hs = target - t;
      t1 = target;
    }
    if (!(Math.abs(hs) > 16 * Number.EPSILON * Math.max(Math.abs(t), span))) {
      const why = nonFiniteRun > 0
        ? "the state or its derivative kept evaluating to NaN/Inf"
        : `the controller shrank h below the resolution of t (last error ratio ${lastRatio.toPrecision(3)}; ${stats.accepted} accepted, ${stats.rejected} rejected steps)`;
      throw new Error(`${fn}: step size underflow at t = ${t} (h = ${hs}) before reaching t = ${tEnd}: ${why}; the problem may be stiff or singular there, or rtol/atol too strict`);
    }
    const thetas: number[] = [];
    for (let j = next; j < N && dir * (ts[j] - t1) < 0; j++) thetas.push((ts[j] - t) / hs);
    const r = attempt(t, y, hs, f0, thetas, true);
    stats.nfev += r.nfev;
    if (!r.err) throw new Error(`${fn}: adaptive solver '${solver.name}' returned no error estimate at t = ${t}; expected err from step() when needError is true`);
    const ratio = errorRatio(r.err, y, r.y1, rtol, atol);
    lastRatio = ratio;
    if (Number.isFinite(ratio) && ratio <= 1) {
      stats.accepted++;
      nonFiniteRun = 0;
      let o = 0;
      while (next < N && dir * (ts[next] - t1) < 0) ys[next++] = r.outs[o++];
      while (next < N && ts[next] === t1) ys[next++] = r.y1;
      t = t1;
      y = r.y1;
      f0 = r.f1;
      let factor = ratio === 0 ? facMax : safety * Math.pow(ratio, -(pco + ico) / k) * Math.pow(prevErr, pco / k);
      factor = Math.min(facMax, Math.max(facMin, factor));
      prevErr = Math.max(ratio, 1e-4);
      h = Math.min(Math.abs(hs) * factor, maxStep);
    } else {
      stats.rejected++;
      f0 = r.f0;
      let factor: number;
      if (!Number.isFinite(ratio)) {
        nonFiniteRun++;
        if (nonFiniteRun > 40) {
          const bad = firstNonFinite(r.y1);
          throw new Error(`${fn}: non-finite state at t = ${t}: a ${solver.name} step to t = ${t1} produced NaN/Inf${bad ? ` (leaf ${bad.leaf}, element ${bad.index} is ${bad.value})` : ""} in ${nonFiniteRun} consecutive attempts down to h = ${hs}; expected f to stay finite near the solution`);
        }
        factor = facMin;
      } else {
        factor = Math.min(safety, Math.max(facMin, safety * Math.pow(ratio, -1 / k)));
      }
      h = Math.abs(hs) * factor;
    }
  }
  return { ys, stats };
}
