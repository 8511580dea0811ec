import type { Tensor } from "@qkvflow/autograd";

/**
 * The vector field as solvers see it: the state is the flat list of the tree's tensor leaves (depth-first,
 * object keys in insertion order), and the result has one derivative tensor per leaf, in the same order.
 */
export type FlatField = (t: number, y: readonly Tensor[]) => Tensor[];

/** What one attempted step of a solver produces. */
export interface StepResult {
  /** The state at t + h (one tensor per leaf). */
  y1: Tensor[];
  /**
   * Local error estimate (one tensor per leaf, same shapes as y), or null when the method has none or the
   * caller did not ask for it. It only feeds the step-size controller, so compute it without gradient.
   */
  err: Tensor[] | null;
  /** The derivative f(t, y) the step used (reused by the driver after a rejected step), or null. */
  f0: Tensor[] | null;
  /** f(t + h, y1) when the method computed it (first same as last), or null. */
  f1: Tensor[] | null;
  /**
   * The method's continuous extension on the step: the state at t + θh for θ in [0, 1]. Absent → the driver
   * interpolates with a cubic Hermite polynomial through (y, f0) and (y1, f1).
   */
  interpolate?: (theta: number) => Tensor[];
  /** Vector-field evaluations this step made. */
  nfev: number;
}

/**
 * A one-step ODE method. `odeint` owns time stepping, output times, step-size control and error handling; a
 * solver only advances the state by one step of size h (h < 0 when integrating backwards in time). All
 * arithmetic on states must use autograd ops so that gradients flow through the step.
 */
export interface Solver {
  /** Name used in messages and by the registry. */
  readonly name: string;
  /** Order of accuracy of the solution (global error ∝ hᵒʳᵈᵉʳ). */
  readonly order: number;
  /** Order of the embedded lower-order solution behind `err` (the controller uses errorOrder + 1). */
  readonly errorOrder?: number;
  /** Whether `step` returns an error estimate, so the method can choose its own steps. */
  readonly adaptive: boolean;
  /** Whether `f1` of an accepted step is returned (first same as last), so the next step reuses it. */
  readonly fsal: boolean;
  /** Whether `interpolate` is provided (its own continuous extension). */
  readonly dense: boolean;
  /**
   * Advances y from t by h. `f0`, when given, is f(t, y) already evaluated (from the previous step or a
   * rejected attempt); `needError` false means the caller ignores `err` (fixed steps), so skip computing it.
   */
  step(f: FlatField, t: number, y: readonly Tensor[], h: number, f0: readonly Tensor[] | null, needError?: boolean): StepResult;
}

/** A relative or absolute tolerance: one number for the whole state, or a tree of numbers matching the state. */
export type Tolerance = number | readonly Tolerance[] | { readonly [key: string]: Tolerance };

/** Counters of one solve. */
export interface OdeStats {
  /** Vector-field evaluations (including the ones used to pick the first step and for interpolation). */
  nfev: number;
  /** Accepted steps. */
  accepted: number;
  /** Rejected step attempts (error too large, or a non-finite state). */
  rejected: number;
}

/** Options of `odeint`. */
export interface OdeintOptions {
  /** Registered method name or a Solver object (default 'dopri5'). */
  method?: string | Solver;
  /**
   * Fixed-step size: each interval between consecutive output times is cut into ceil(|Δt| / dt) equal steps
   * (so steps land exactly on the output times). Also forces fixed steps for adaptive methods.
   */
  dt?: number;
  /** Fixed number of equal steps per interval between consecutive output times (alternative to `dt`). */
  steps?: number;
  /** Relative tolerance of adaptive methods (default 1e-7), per leaf when given as a tree. */
  rtol?: Tolerance;
  /** Absolute tolerance of adaptive methods (default 1e-9), per leaf when given as a tree. */
  atol?: Tolerance;
  /** First step size to try (absolute value); default: chosen from f(t0, y0) as in Hairer–Nørsett–Wanner. */
  firstStep?: number;
  /** Largest allowed |h| for adaptive methods (default: unbounded). */
  maxStep?: number;
  /** Maximum number of step attempts (default 10000 for adaptive methods; unlimited for fixed steps unless set). */
  maxSteps?: number;
  /** Proportional coefficient of the PI controller (default 0). */
  pcoeff?: number;
  /** Integral coefficient of the PI controller (default 1, i.e. the classic controller). */
  icoeff?: number;
  /** Safety factor applied to the proposed step (default 0.9). */
  safety?: number;
  /** Smallest factor by which one step may shrink the next (default 0.2). */
  factorMin?: number;
  /** Largest factor by which one step may grow the next (default 10). */
  factorMax?: number;
  /**
   * Adaptive methods: true (default) takes steps independently of the output times and evaluates the outputs
   * with the method's continuous extension (cubic Hermite for methods without one); false shortens steps to
   * land exactly on every output time (more steps, no interpolation).
   */
  denseOutput?: boolean;
  /**
   * Wrap each step in autograd `checkpoint`: values inside a step are not kept for the backward pass but
   * recomputed there (memory ~ one state per step instead of all stage intermediates).
   */
  checkpoint?: boolean;
  /**
   * When to check the state for NaN/Inf with fixed steps: after every step ('step'), only at the output
   * times ('output', default: no per-step host reads), or never ('off'). Adaptive methods always detect a
   * non-finite state through their error estimate.
   */
  checkFinite?: "step" | "output" | "off";
}

/** The solution at every requested time plus counters. */
export interface OdeSolution<Y> {
  /** ys[i] is the state at ts[i]; ys[0] is y0 itself. */
  ys: Y[];
  stats: OdeStats;
}
