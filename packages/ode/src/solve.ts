/**
 * The driver core, written once over a vector space of states (space.ts): time stepping between output times
 * with fixed or adaptive steps, dense output, per-step checkpointing (tensor states), statistics and failures.
 * Solvers provide single steps; a step-size controller (controller.ts) chooses the steps. `solveFlat` runs it on
 * lists of tensor leaves (odeint on trees, odeintAdjoint), `solveCore` on any space (plain arrays).
 */
import { checkpoint, type Tensor } from "@qkvflow/autograd";
import { tensorSpace } from "./space.js";
import type {
  AdaptiveStepSizeController,
  FixedStepSizeController,
  FlatField,
  OdeintOptions,
  OdeStats,
  Solver,
  StepResult,
  StepSizeController,
  VectorSpace,
} from "./types.js";

/** A fully resolved problem on flat leaves. */
export type FlatProblem = CoreProblem<Tensor[]>;

/** A fully resolved problem on states of type V. */
export interface CoreProblem<V> {
  /** Name used in error messages. */
  fn: string;
  f: (t: number, y: V) => V;
  y0: V;
  ts: number[];
  /** Per-leaf tolerances of the error norm (used by adaptive controllers). */
  rtol: number[];
  atol: number[];
  solver: Solver;
  controller: StepSizeController;
  /** The driver's own options: denseOutput, checkpoint, checkFinite. */
  opts: Pick<OdeintOptions, "denseOutput" | "checkpoint" | "checkFinite">;
}

interface Attempt<V> {
  y1: V;
  err: V | null;
  f0: V | null;
  f1: V | null;
  outs: V[];
  nfev: number;
  njev: number;
  nlu: number;
}

/** Internal: the driver on flat tensor states. ys[i] holds the leaves at ts[i]. */
export function solveFlat(p: FlatProblem): { ys: Tensor[][]; stats: OdeStats } {
  const { solver } = p;
  // a solver's own `step` on tensor leaves (custom solvers may have only that)
  const step = (f: (t: number, y: Tensor[]) => Tensor[], t: number, y: Tensor[], h: number, f0: Tensor[] | null, needError: boolean) =>
    solver.step(f as FlatField, t, y, h, f0, needError);
  return solveCore(tensorSpace, p, step);
}

/** One step of the problem's solver on the space's states. */
export type CoreStep<V> = (f: (t: number, y: V) => V, t: number, y: V, h: number, f0: V | null, needError: boolean) => StepResult<V>;

/** Internal: the driver on any vector space. ys[i] is the state at ts[i]. */
export function solveCore<V>(space: VectorSpace<V>, p: CoreProblem<V>, step: CoreStep<V>): { ys: V[]; stats: OdeStats } {
  const { fn, f, solver, opts, ts } = p;
  const stats: OdeStats = { nfev: 0, accepted: 0, rejected: 0 };
  if (solver.implicit) {
    stats.njev = 0;
    stats.nlu = 0;
  }
  const ys: V[] = [p.y0];
  if (ts.length === 1) return { ys, stats };

  const bad0 = space.firstNonFinite(p.y0);
  if (bad0)
    throw new Error(
      `${fn}: the initial state is not finite at t = ${ts[0]} (leaf ${bad0.leaf}, element ${bad0.index} is ${bad0.value}); expected finite values`,
    );

  const attempt: AttemptFn<V> = opts.checkpoint && space.kind === "tensor" ? checkpointed(space, f, step) : reusedAttempt(space, f, step);

  const c = p.controller;
  return c.kind === "fixed" ? fixedSteps(space, p, c, attempt, stats, ys) : adaptiveSteps(space, p, c, attempt, stats, ys);
}

const NO_OUTPUTS: readonly number[] = [];

/** attemptStep into one Attempt record per solve (the driver reads a record before the next attempt). */
function reusedAttempt<V>(space: VectorSpace<V>, f: (t: number, y: V) => V, step: CoreStep<V>): AttemptFn<V> {
  const out: Attempt<V> = { y1: null as V, err: null, f0: null, f1: null, outs: [], nfev: 0, njev: 0, nlu: 0 };
  return (t, y, h, f0, thetas, needError) => attemptStep(space, f, step, t, y, h, f0, thetas, needError, out);
}

/** One step attempt with the outputs inside it (the solver's continuous extension, or cubic Hermite), written into `out`. */
function attemptStep<V>(
  space: VectorSpace<V>,
  f: (t: number, y: V) => V,
  step: CoreStep<V>,
  t: number,
  y: V,
  h: number,
  f0: V | null,
  thetas: readonly number[],
  needError: boolean,
  out: Attempt<V>,
): Attempt<V> {
  const r = step(f, t, y, h, f0, needError);
  let nfev = r.nfev;
  let f1 = r.f1;
  let f0u = r.f0 ?? f0;
  const outs: V[] = thetas.length === 0 ? (NO_OUTPUTS as unknown as V[]) : [];
  for (let i = 0; i < thetas.length; i++) {
    const th = thetas[i];
    if (r.interpolate) outs.push(r.interpolate(th));
    else {
      if (!f0u) {
        f0u = f(t, y);
        nfev++;
      }
      if (!f1) {
        f1 = f(t + h, r.y1);
        nfev++;
      }
      outs.push(space.hermite(y, f0u, r.y1, f1, h, th));
    }
  }
  if (r.temporaries && space.release) {
    for (const v of r.temporaries) if (v !== r.y1 && v !== f0u && v !== f1 && v !== r.f0) space.release(v);
  }
  out.y1 = r.y1;
  out.err = r.err;
  out.f0 = f0u;
  out.f1 = f1;
  out.outs = outs;
  out.nfev = nfev;
  out.njev = r.njev ?? 0;
  out.nlu = r.nlu ?? 0;
  return out;
}

/** attemptStep wrapped in autograd `checkpoint` (tensor states): the step's intermediates are recomputed in the backward pass. */
function checkpointed<V>(space: VectorSpace<V>, f: (t: number, y: V) => V, step: CoreStep<V>): AttemptFn<V> {
  return (t, y, h, f0, thetas, needError) => {
    let counts = { nfev: 0, njev: 0, nlu: 0 };
    const run = (yl: Tensor[], f0l: Tensor[] | null) => {
      const a = attemptStep(space, f, step, t, yl as unknown as V, h, f0l as unknown as V | null, thetas, needError, {} as Attempt<V>);
      counts = { nfev: a.nfev, njev: a.njev, nlu: a.nlu };
      return { y1: a.y1, err: a.err, f0: a.f0, f1: a.f1, outs: a.outs } as unknown as Record<string, Tensor[] | Tensor[][] | null>;
    };
    const res = checkpoint(run)([...(y as unknown as Tensor[])], f0 ? [...(f0 as unknown as Tensor[])] : null) as unknown as Attempt<V>;
    return { y1: res.y1, err: res.err, f0: res.f0, f1: res.f1, outs: res.outs, ...counts };
  };
}

type AttemptFn<V> = (t: number, y: V, h: number, f0: V | null, thetas: readonly number[], needError: boolean) => Attempt<V>;

function count<V>(stats: OdeStats, r: Attempt<V>): void {
  stats.nfev += r.nfev;
  if (stats.njev !== undefined) stats.njev += r.njev;
  if (stats.nlu !== undefined) stats.nlu += r.nlu;
}

function fixedSteps<V>(
  space: VectorSpace<V>,
  p: CoreProblem<V>,
  ctrl: FixedStepSizeController,
  attempt: AttemptFn<V>,
  stats: OdeStats,
  ys: V[],
): { ys: V[]; stats: OdeStats } {
  const { fn, solver, opts, ts } = p;
  const check = opts.checkFinite ?? "output";
  let y: V = p.y0;
  let f0: V | null = null;
  let total = 0;
  for (let i = 1; i < ts.length; i++) {
    const span = ts[i] - ts[i - 1];
    const n = ctrl.stepsBetween(ts[i - 1], ts[i]);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`${fn}: the ${ctrl.name} gave ${n} steps from t = ${ts[i - 1]} to t = ${ts[i]}; expected a positive integer`);
    const h = span / n;
    for (let k = 0; k < n; k++) {
      const t = ts[i - 1] + (k * span) / n;
      if (ctrl.maxSteps !== undefined && total >= ctrl.maxSteps) {
        throw new Error(
          `${fn}: maximum number of steps (${ctrl.maxSteps}) exceeded at t = ${t} before reaching t = ${ts[ts.length - 1]} (fixed step h = ${h}); raise maxSteps or use a larger dt`,
        );
      }
      const r = attempt(t, y, h, f0, NO_OUTPUTS, false);
      total++;
      count(stats, r);
      stats.accepted++;
      y = r.y1;
      f0 = solver.fsal ? r.f1 : null;
      if (check === "step") {
        const bad = space.firstNonFinite(y);
        if (bad)
          throw new Error(
            `${fn}: non-finite state at t = ${k === n - 1 ? ts[i] : t + h} (leaf ${bad.leaf}, element ${bad.index} is ${bad.value}) after one ${solver.name} step of h = ${h} from t = ${t}, where the state was finite; expected finite values (try a smaller step)`,
          );
      }
    }
    if (check === "output") {
      const bad = space.firstNonFinite(y);
      if (bad)
        throw new Error(
          `${fn}: non-finite state at t = ${ts[i]} (leaf ${bad.leaf}, element ${bad.index} is ${bad.value}); it was finite at t = ${ts[i - 1]} (${n} ${solver.name} steps of h = ${h} in between; checkFinite: 'step' locates the step); expected finite values (try a smaller step)`,
        );
    }
    ys.push(y);
  }
  return { ys, stats };
}

function adaptiveSteps<V>(
  space: VectorSpace<V>,
  p: CoreProblem<V>,
  ctrl: AdaptiveStepSizeController,
  attempt: AttemptFn<V>,
  stats: OdeStats,
  ys: V[],
): { ys: V[]; stats: OdeStats } {
  const { fn, f, solver, opts, ts, rtol, atol } = p;
  const N = ts.length;
  const t0 = ts[0],
    tEnd = ts[N - 1];
  const dir = Math.sign(tEnd - t0);
  const maxSteps = ctrl.maxSteps;

  let t = t0;
  let y: V = p.y0;
  let f0: V | null = f(t0, y);
  stats.nfev++;
  const badF = space.firstNonFinite(f0);
  if (badF)
    throw new Error(
      `${fn}: f(t0, y0) is not finite at t = ${t0} (leaf ${badF.leaf}, element ${badF.index} is ${badF.value}); expected a finite derivative at the initial state`,
    );
  const counted = countedField(f, stats);
  const errorOrder = solver.errorOrder ?? solver.order - 1;
  const start = ctrl.init({ f: counted, t0, tEnd, y0: p.y0, f0, rtol, atol, order: solver.order, errorOrder, space });
  let h = start.h;
  let cstate = start.state;
  checkStepSize(fn, ctrl, h, t0, "first step");
  let next = 1;
  let nonFiniteRun = 0;
  let yIsOutput = true; // y0 is ys[0]
  let lastRatio = NaN;

  while (next < N) {
    if (stats.accepted + stats.rejected >= maxSteps) {
      throw new Error(
        `${fn}: maximum number of steps (${maxSteps}) exceeded at t = ${t} before reaching t = ${tEnd} (${stats.accepted} accepted, ${stats.rejected} rejected, last h = ${h}); raise maxSteps or loosen rtol/atol (the problem may be stiff)`,
      );
    }
    const target = opts.denseOutput === false ? ts[next] : tEnd;
    let hs = dir * h;
    let t1 = t + hs;
    if (dir * (t1 - target) >= 0) {
      hs = target - t;
      t1 = target;
    }
    if (!(Math.abs(hs) > 16 * Number.EPSILON * Math.max(Math.abs(t), Math.abs(t1)))) {
      const why =
        nonFiniteRun > 0
          ? "the state or its derivative kept evaluating to NaN/Inf"
          : `the controller shrank h below the resolution of t (last error ratio ${lastRatio.toPrecision(3)}; ${stats.accepted} accepted, ${stats.rejected} rejected steps)`;
      throw new Error(
        `${fn}: step size underflow at t = ${t} (h = ${hs}) before reaching t = ${tEnd}: ${why}; the problem may be stiff or singular there, or rtol/atol too strict`,
      );
    }
    let thetas: readonly number[] = NO_OUTPUTS;
    if (dir * (ts[next] - t1) < 0) {
      const th: number[] = [];
      for (let j = next; j < N && dir * (ts[j] - t1) < 0; j++) th.push((ts[j] - t) / hs);
      thetas = th;
    }
    const r = attempt(t, y, hs, f0, thetas, true);
    count(stats, r);
    if (!r.err)
      throw new Error(
        `${fn}: adaptive solver '${solver.name}' returned no error estimate at t = ${t}; expected err from step() when needError is true`,
      );
    const ratio = space.errorRatio(r.err, y, r.y1, rtol, atol);
    space.release?.(r.err);
    lastRatio = ratio;
    const d = ctrl.adapt({ t, h: Math.abs(hs), ratio }, cstate);
    if (d.failure !== undefined) {
      throw new Error(
        `${fn}: the ${ctrl.name} stopped at t = ${t} before reaching t = ${tEnd}: ${d.failure} (${stats.accepted} accepted, ${stats.rejected + 1} rejected steps)`,
      );
    }
    // a step with a non-finite error is never kept, whatever the controller says
    if (d.accept && Number.isFinite(ratio)) {
      stats.accepted++;
      nonFiniteRun = 0;
      let o = 0;
      while (next < N && dir * (ts[next] - t1) < 0) ys[next++] = r.outs[o++];
      let kept = false;
      while (next < N && ts[next] === t1) {
        ys[next++] = r.y1;
        kept = true;
      }
      // the previous state and derivative are not needed any more (unless the state is an output)
      if (space.release) {
        if (!yIsOutput) space.release(y);
        if (f0 && f0 !== r.f1) space.release(f0);
      }
      yIsOutput = kept;
      t = t1;
      y = r.y1;
      f0 = r.f1;
    } else {
      stats.rejected++;
      if (space.release) {
        space.release(r.y1);
        if (r.f1 && r.f1 !== r.f0) space.release(r.f1);
      }
      f0 = r.f0;
      if (!Number.isFinite(ratio)) {
        nonFiniteRun++;
        if (nonFiniteRun > 40) {
          const bad = space.firstNonFinite(r.y1);
          throw new Error(
            `${fn}: non-finite state at t = ${t}: a ${solver.name} step to t = ${t1} produced NaN/Inf${bad ? ` (leaf ${bad.leaf}, element ${bad.index} is ${bad.value})` : ""} in ${nonFiniteRun} consecutive attempts down to h = ${hs}; expected f to stay finite near the solution`,
          );
        }
      }
    }
    h = d.h;
    cstate = d.state;
    checkStepSize(fn, ctrl, h, t, "next step");
  }
  return { ys, stats };
}

/** f counting its evaluations in stats.nfev (an unnamed closure: cheaper to create than a named one under tsx). */
function countedField<V>(f: (t: number, y: V) => V, stats: OdeStats): (t: number, y: V) => V {
  return (t, y) => {
    stats.nfev++;
    return f(t, y);
  };
}

/** Throws unless a controller's step size is a finite number > 0. */
function checkStepSize(fn: string, ctrl: AdaptiveStepSizeController, h: number, t: number, what: string): void {
  if (typeof h !== "number" || !(h > 0) || !Number.isFinite(h)) {
    throw new Error(
      `${fn}: the ${ctrl.name} chose a ${what} of h = ${String(h)} at t = ${t}; expected a finite number > 0 (the size |h|; the driver sets the direction)`,
    );
  }
}
