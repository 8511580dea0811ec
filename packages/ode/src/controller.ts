/**
 * Step-size controllers: how odeint chooses its steps. `ConstantStepSize` cuts every interval between output
 * times into equal steps; `PIDController` chooses steps from the solver's error estimate (with the classic I
 * controller, and PI as special cases of its coefficients). A controller owns the first step, the
 * accept/reject decision and the next step size; the driver (solve.ts) owns time stepping, output times,
 * the error norm and failures.
 */
import { listSolvers, getSolver } from "./registry.js";
import { tensorSpace } from "./space.js";
import type {
  AdaptiveStepSizeController,
  ControllerStart,
  FixedStepSizeController,
  OdeintOptions,
  Solver,
  StepAttempt,
  StepDecision,
  StepSizeController,
  Tolerance,
  VectorSpace,
} from "./types.js";
import { checkFactors, checkCoefficients, checkFixedStep, checkKnownKeys, checkNonNegative, checkPositive } from "./validate.js";

/** Settings of ConstantStepSize. */
export interface ConstantStepSizeOptions {
  /** Step size: each output interval is cut into ceil(|Δt| / dt) equal steps (so steps land on the output times). */
  dt?: number;
  /** Number of equal steps per output interval (alternative to `dt`). */
  steps?: number;
  /** Total steps after which the solve fails (default: unlimited). */
  maxSteps?: number;
}

/**
 * Fixed steps: every interval between consecutive output times is cut into `steps` (or ceil(|Δt| / dt)) equal
 * steps; with neither, one step per interval. No error estimate is computed, so any method can use it.
 */
export class ConstantStepSize implements FixedStepSizeController {
  readonly kind = "fixed" as const;
  readonly name = "ConstantStepSize";
  readonly dt?: number;
  readonly steps?: number;
  readonly maxSteps?: number;

  constructor(options: ConstantStepSizeOptions = {}) {
    const where = "ConstantStepSize";
    if (options === null || typeof options !== "object")
      throw new Error(`${where}: options is ${String(options)}; expected an object { dt?, steps?, maxSteps? }`);
    checkKnownKeys(where, options, ["dt", "steps", "maxSteps"]);
    checkFixedStep(where, options);
    checkPositive(where, "maxSteps", options.maxSteps, true);
    this.dt = options.dt;
    this.steps = options.steps;
    this.maxSteps = options.maxSteps;
  }

  stepsBetween(t0: number, t1: number): number {
    if (this.steps !== undefined) return this.steps;
    if (this.dt === undefined) return 1;
    // the factor keeps an interval that is a whole number of steps (up to rounding) from getting one more
    return Math.max(1, Math.ceil((Math.abs(t1 - t0) / this.dt) * (1 - 1e-12)));
  }
}

/** Settings of PIDController (all optional). */
export interface PIDControllerOptions {
  /** Relative tolerance: a number or a tree of numbers matching the state (default 1e-7 for float64 leaves, 1e-4 for float32). */
  rtol?: Tolerance;
  /** Absolute tolerance: a number or a tree of numbers matching the state (default 1e-9 for float64 leaves, 1e-6 for float32). */
  atol?: Tolerance;
  /** Proportional coefficient (default 0). */
  pcoeff?: number;
  /** Integral coefficient (default 1). */
  icoeff?: number;
  /** Derivative coefficient (default 0). */
  dcoeff?: number;
  /** Safety factor on the proposed step, in (0, 1] (default 0.9). */
  safety?: number;
  /** Smallest factor by which one step may shrink the next, in (0, 1) (default 0.2). */
  factorMin?: number;
  /** Largest factor by which one step may grow the next, > 1 (default 10). */
  factorMax?: number;
  /** Smallest |h|: a step that fails the error test at dtmin ends the solve with an error (default 0: none). */
  dtmin?: number;
  /** Largest |h| (default Infinity). */
  dtmax?: number;
  /** First step size to try (|h|); default: chosen from f(t0, y0) by `selectInitialStep` (one extra evaluation). */
  firstStep?: number;
  /** Step attempts (accepted + rejected) after which the solve fails (default 10000). */
  maxSteps?: number;
  /** Whether the first accepted step after a rejection may grow the step (default false: it may not). */
  growAfterReject?: boolean;
}

/** State of a PIDController during one solve. */
export interface PIDState {
  /** Exponent base: errorOrder + 1 of the solver. */
  k: number;
  /** Error norm of the last accepted step (clipped below at 1e-4; 1 before the first). */
  prev: number;
  /** Error norm of the accepted step before it (clipped below at 1e-4; 1 before the second). */
  prevPrev: number;
  /** Whether the last attempt was rejected (then the next accepted step may not grow the step). */
  rejected: boolean;
}

const PID_KEYS = [
  "rtol",
  "atol",
  "pcoeff",
  "icoeff",
  "dcoeff",
  "safety",
  "factorMin",
  "factorMax",
  "dtmin",
  "dtmax",
  "firstStep",
  "maxSteps",
  "growAfterReject",
] as const;

function checkTolerance(where: string, name: string, v: Tolerance | undefined): void {
  if (v === undefined) return;
  if (typeof v === "number") checkNonNegative(where, name, v);
  else if (v === null || typeof v !== "object")
    throw new Error(
      `${where}: ${name} is ${v === null ? "null" : typeof v}; expected a number >= 0 or a tree of numbers matching the state`,
    );
}

/**
 * Adaptive steps from the error estimate. After an accepted step with error norm εₙ (εₙ₋₁, εₙ₋₂ those of the
 * two accepted steps before it, 1 when there are none), the next step is
 *   h ← h · clip(safety · εₙ^(−(p+i+d)/k) · εₙ₋₁^((p+2d)/k) · εₙ₋₂^(−d/k), factorMin, factorMax),
 * with k = errorOrder + 1 of the solver, then clipped to [dtmin, dtmax]. After a rejected step (εₙ > 1) the
 * step shrinks by clip(safety · εₙ^(−1/k), factorMin, safety), or by factorMin when the step produced NaN/Inf,
 * and the first accepted step after a rejection may not grow (factor ≤ 1, as Hairer's codes and scipy).
 * icoeff = 1 alone (the default) is the classic I controller; pcoeff ≠ 0 makes it a PI controller (Hairer's
 * PI for dopri5 is pcoeff = 0.2, icoeff = 0.65), dcoeff ≠ 0 a PID controller. Coefficients are diffrax's: any
 * finite numbers (Söderlind's filters have negative ones) with p + i + d > 0.
 */
export class PIDController implements AdaptiveStepSizeController<PIDState> {
  readonly kind = "adaptive" as const;
  readonly name = "PIDController";
  readonly rtol?: Tolerance;
  readonly atol?: Tolerance;
  readonly pcoeff: number;
  readonly icoeff: number;
  readonly dcoeff: number;
  readonly safety: number;
  readonly factorMin: number;
  readonly factorMax: number;
  readonly dtmin: number;
  readonly dtmax: number;
  readonly firstStep?: number;
  readonly maxSteps: number;
  readonly growAfterReject: boolean;

  constructor(options: PIDControllerOptions = {}) {
    const where = "PIDController";
    if (options === null || typeof options !== "object")
      throw new Error(`${where}: options is ${String(options)}; expected an object of settings (${PID_KEYS.join(", ")})`);
    checkKnownKeys(where, options, PID_KEYS);
    checkTolerance(where, "rtol", options.rtol);
    checkTolerance(where, "atol", options.atol);
    if (options.rtol === 0 && options.atol === 0) throw new Error(`${where}: rtol and atol are both 0; expected at least one of them > 0`);
    checkCoefficients(where, options, ["pcoeff", "icoeff", "dcoeff"]);
    checkFactors(where, options);
    checkNonNegative(where, "dtmin", options.dtmin);
    if (options.dtmax !== undefined && options.dtmax !== Infinity) checkPositive(where, "dtmax", options.dtmax);
    if (options.dtmin !== undefined && options.dtmax !== undefined && options.dtmin > options.dtmax) {
      throw new Error(`${where}: dtmin (${options.dtmin}) is larger than dtmax (${options.dtmax}); expected dtmin <= dtmax`);
    }
    checkPositive(where, "firstStep", options.firstStep);
    checkPositive(where, "maxSteps", options.maxSteps, true);
    this.rtol = options.rtol;
    this.atol = options.atol;
    this.pcoeff = options.pcoeff ?? 0;
    this.icoeff = options.icoeff ?? 1;
    this.dcoeff = options.dcoeff ?? 0;
    this.safety = options.safety ?? 0.9;
    this.factorMin = options.factorMin ?? 0.2;
    this.factorMax = options.factorMax ?? 10;
    this.dtmin = options.dtmin ?? 0;
    this.dtmax = options.dtmax ?? Infinity;
    this.firstStep = options.firstStep;
    this.maxSteps = options.maxSteps ?? 10000;
    if (options.growAfterReject !== undefined && typeof options.growAfterReject !== "boolean")
      throw new Error(`${where}: growAfterReject is ${String(options.growAfterReject)}; expected true or false`);
    this.growAfterReject = options.growAfterReject ?? false;
  }

  init(start: ControllerStart): { h: number; state: PIDState } {
    const h0 = this.firstStep ?? selectInitialStep(start);
    return { h: Math.max(this.dtmin, Math.min(h0, this.dtmax)), state: { k: start.errorOrder + 1, prev: 1, prevPrev: 1, rejected: false } };
  }

  adapt(step: StepAttempt, state: PIDState): StepDecision<PIDState> {
    const h = step.h,
      ratio = step.ratio,
      k = state.k;
    if (Number.isFinite(ratio) && ratio <= 1) {
      const p = this.pcoeff,
        d = this.dcoeff;
      let factor: number;
      if (ratio === 0) factor = this.factorMax;
      else {
        factor = this.safety * Math.pow(ratio, -(p + this.icoeff + d) / k);
        // (the I controller skips the powers of the error memory: x^0 = 1 exactly)
        if (p + 2 * d !== 0) factor *= Math.pow(state.prev, (p + 2 * d) / k);
        if (d !== 0) factor *= Math.pow(state.prevPrev, -d / k);
      }
      factor = Math.min(this.factorMax, Math.max(this.factorMin, factor));
      if (state.rejected && !this.growAfterReject) factor = Math.min(1, factor);
      const next = Math.max(this.dtmin, Math.min(h * factor, this.dtmax));
      return { accept: true, h: next, state: { k, prev: Math.max(ratio, 1e-4), prevPrev: state.prev, rejected: false } };
    }
    const safety = this.safety;
    const factor = Number.isFinite(ratio) ? Math.min(safety, Math.max(this.factorMin, safety * Math.pow(ratio, -1 / k))) : this.factorMin;
    let next = h * factor;
    if (next < this.dtmin) {
      if (h <= this.dtmin) {
        return {
          accept: false,
          h: this.dtmin,
          state,
          failure: `a step of h = ${h} failed the error test (error ratio ${ratio.toPrecision(3)}) and the step size cannot go below dtmin = ${this.dtmin}`,
        };
      }
      next = this.dtmin;
    }
    return { accept: false, h: next, state: state.rejected ? state : { k, prev: state.prev, prevPrev: state.prevPrev, rejected: true } };
  }
}

/**
 * First step size (absolute value) from the initial derivative, as in Hairer, Nørsett & Wanner (1993),
 * Section II.4 (and scipy's `select_initial_step`): with d₀ = ‖y₀‖, d₁ = ‖f(t₀, y₀)‖ in the scaled RMS norm,
 * h₀ = 0.01·d₀/d₁ (1e-6 when either is below 1e-5), one explicit Euler step of h₀, d₂ = ‖f(t₀+h₀, y₁) − f₀‖/h₀,
 * and h = min(100·h₀, (0.01/max(d₁, d₂))^(1/k)) with k = errorOrder + 1 (the exponent of the local error
 * estimate; 1/5 for dopri5, as Hairer's and scipy's codes). Costs one vector-field evaluation (through
 * `start.f`), done without gradient.
 */
export function selectInitialStep(start: ControllerStart): number {
  const { f, t0, tEnd, y0, f0, rtol, atol, errorOrder } = start;
  // biome-ignore lint/suspicious/noExplicitAny: the space matches the start's state type
  const space: VectorSpace<any> = start.space ?? tensorSpace;
  const dir = Math.sign(tEnd - t0);
  return space.noGrad(() => {
    const d0 = space.scaledRms(y0, y0, rtol, atol);
    const d1 = space.scaledRms(f0, y0, rtol, atol);
    let h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : (0.01 * d0) / d1;
    h0 = Math.min(h0, Math.abs(tEnd - t0));
    const y1 = space.axpyHost(y0, dir * h0, f0);
    const f1 = f(t0 + dir * h0, y1);
    const d2 = space.scaledRms(space.axpyHost(f1, -1, f0), y0, rtol, atol) / h0;
    const m = Math.max(d1, d2);
    const h1 = m <= 1e-15 ? Math.max(1e-6, h0 * 1e-3) : Math.pow(0.01 / m, 1 / (errorOrder + 1));
    const h = Math.min(100 * h0, h1);
    return Number.isFinite(h) && h > 0 ? h : h0;
  });
}

function adaptiveNames(): string {
  return listSolvers()
    .filter((n) => getSolver(n).adaptive)
    .join(", ");
}

/**
 * The step-size controller of a solve: `stepSizeController` when given (checked against the solver), else
 * the one the flat options stand for. Expects options already checked by `checkOptions`.
 */
export function controllerFromOptions(fn: string, solver: Solver, o: OdeintOptions): StepSizeController {
  const c = o.stepSizeController;
  if (c !== undefined) {
    if (c.kind === "adaptive" && !solver.adaptive) {
      throw new Error(
        `${fn}: the ${c.name} chooses steps from an error estimate, but method '${solver.name}' has none; expected an adaptive method (${adaptiveNames()}) or a ConstantStepSize`,
      );
    }
    return c;
  }
  try {
    if (o.dt !== undefined || o.steps !== undefined || !solver.adaptive) {
      return new ConstantStepSize({ dt: o.dt, steps: o.steps, maxSteps: o.maxSteps });
    }
    return new PIDController({
      rtol: o.rtol,
      atol: o.atol,
      firstStep: o.firstStep,
      dtmax: o.maxStep,
      maxSteps: o.maxSteps,
      pcoeff: o.pcoeff,
      icoeff: o.icoeff,
      safety: o.safety,
      factorMin: o.factorMin,
      factorMax: o.factorMax,
    });
  } catch (e) {
    throw new Error(`${fn}: ${(e as Error).message}`);
  }
}

/** The tolerances of the error norm a solve uses: the adaptive controller's, or the flat options'. */
export function toleranceOptions(o: OdeintOptions): { rtol: Tolerance | undefined; atol: Tolerance | undefined } {
  const c = o.stepSizeController;
  if (c !== undefined) return c.kind === "adaptive" ? { rtol: c.rtol, atol: c.atol } : { rtol: undefined, atol: undefined };
  return { rtol: o.rtol, atol: o.atol };
}
