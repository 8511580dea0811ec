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
  err2: V | null;
  f0: V | null;
  f1: V | null;
  nfev: number;
  njev: number;
  nlu: number;
  /**
   * Ends the attempt: when `keep` (an accepted step), returns the states at the output times inside the step
   * (evaluating a continuous extension's extra stages, or f for the Hermite fallback, counted in nfev), and
   * hands the step's temporaries back to the space. Called once per attempt, before nfev is read.
   */
  finish(keep: boolean): V[];
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

/** One step attempt whose outputs are interpolated only once the step is kept (reused for every attempt of a solve). */
class ReusedAttempt<V> implements Attempt<V> {
  y1 = null as V;
  err: V | null = null;
  err2: V | null = null;
  f0: V | null = null;
  f1: V | null = null;
  nfev = 0;
  njev = 0;
  nlu = 0;
  private r: StepResult<V> | null = null;
  private t = 0;
  private y = null as V;
  private h = 0;
  private thetas: readonly number[] = NO_OUTPUTS;

  constructor(
    private readonly space: VectorSpace<V>,
    private readonly f: (t: number, y: V) => V,
    private readonly step: CoreStep<V>,
  ) {}

  run(t: number, y: V, h: number, f0: V | null, thetas: readonly number[], needError: boolean): this {
    const r = this.step(this.f, t, y, h, f0, needError);
    this.r = r;
    this.t = t;
    this.y = y;
    this.h = h;
    this.thetas = thetas;
    this.y1 = r.y1;
    this.err = r.err;
    this.err2 = r.err2 ?? null;
    this.f0 = r.f0 ?? f0;
    this.f1 = r.f1;
    this.nfev = r.nfev;
    this.njev = r.njev ?? 0;
    this.nlu = r.nlu ?? 0;
    return this;
  }

  finish(keep: boolean): V[] {
    const r = this.r!;
    const { space, f, t, y, h, thetas } = this;
    let extra = 0;
    let outs = NO_OUTPUTS as unknown as V[];
    if (keep && thetas.length > 0) {
      outs = [];
      for (let i = 0; i < thetas.length; i++) {
        const th = thetas[i];
        if (r.interpolate) outs.push(r.interpolate(th));
        else {
          if (!this.f0) {
            this.f0 = f(t, y);
            extra++;
          }
          if (!this.f1) {
            this.f1 = f(t + h, r.y1);
            extra++;
          }
          outs.push(space.hermite(y, this.f0, r.y1, this.f1, h, th));
        }
      }
    }
    if (r.temporaries && space.release) {
      for (const v of r.temporaries) if (v !== r.y1 && v !== this.f0 && v !== this.f1 && v !== r.f0) space.release(v);
    }
    // (read after the outputs: a continuous extension with extra stages counts them in r.nfev)
    this.nfev = r.nfev + extra;
    this.r = null;
    return outs;
  }
}

function reusedAttempt<V>(space: VectorSpace<V>, f: (t: number, y: V) => V, step: CoreStep<V>): AttemptFn<V> {
  const a = new ReusedAttempt(space, f, step);
  return (t, y, h, f0, thetas, needError) => a.run(t, y, h, f0, thetas, needError);
}

/**
 * One attempt wrapped in autograd `checkpoint` (tensor states): the step's intermediates are recomputed in the
 * backward pass, so the outputs inside the step are computed inside it, on every attempt.
 */
function checkpointed<V>(space: VectorSpace<V>, f: (t: number, y: V) => V, step: CoreStep<V>): AttemptFn<V> {
  return (t, y, h, f0, thetas, needError) => {
    let counts = { nfev: 0, njev: 0, nlu: 0 };
    const run = (yl: Tensor[], f0l: Tensor[] | null) => {
      const a = new ReusedAttempt(space, f, step).run(t, yl as unknown as V, h, f0l as unknown as V | null, thetas, needError);
      const outs = a.finish(true);
      counts = { nfev: a.nfev, njev: a.njev, nlu: a.nlu };
      return { y1: a.y1, err: a.err, err2: a.err2, f0: a.f0, f1: a.f1, outs } as unknown as Record<string, Tensor[] | Tensor[][] | null>;
    };
    const res = checkpoint(run)([...(y as unknown as Tensor[])], f0 ? [...(f0 as unknown as Tensor[])] : null) as unknown as {
      y1: V;
      err: V | null;
      err2: V | null;
      f0: V | null;
      f1: V | null;
      outs: V[];
    };
    const outs = res.outs;
    return { y1: res.y1, err: res.err, err2: res.err2 ?? null, f0: res.f0, f1: res.f1, ...counts, finish: () => outs };
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
      r.finish(true);
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
    if (!r.err)
      throw new Error(
        `${fn}: adaptive solver '${solver.name}' returned no error estimate at t = ${t}; expected err from step() when needError is true`,
      );
    let ratio = space.errorRatio(r.err, y, r.y1, rtol, atol);
    space.release?.(r.err);
    if (r.err2) {
      // two estimates (DOP853): ε₁² / √(ε₁² + 0.01·ε₂²)
      const e2 = space.errorRatio(r.err2, y, r.y1, rtol, atol);
      space.release?.(r.err2);
      const d = ratio * ratio + 0.01 * e2 * e2;
      ratio = d === 0 ? 0 : (ratio * ratio) / Math.sqrt(d);
    }
    lastRatio = ratio;
    const d = ctrl.adapt({ t, h: Math.abs(hs), ratio }, cstate);
    if (d.failure !== undefined) {
      count(stats, r);
      throw new Error(
        `${fn}: the ${ctrl.name} stopped at t = ${t} before reaching t = ${tEnd}: ${d.failure} (${stats.accepted} accepted, ${stats.rejected + 1} rejected steps)`,
      );
    }
    // a step with a non-finite error is never kept, whatever the controller says
    if (d.accept && Number.isFinite(ratio)) {
      const outs = r.finish(true);
      count(stats, r);
      stats.accepted++;
      nonFiniteRun = 0;
      let o = 0;
      while (next < N && dir * (ts[next] - t1) < 0) ys[next++] = outs[o++];
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
      r.finish(false);
      count(stats, r);
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
