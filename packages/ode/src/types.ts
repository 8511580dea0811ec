import type { Tensor } from "@qkvflow/autograd";

/**
 * The vector field as solvers see it: the state is the flat list of the tree's tensor leaves (depth-first,
 * object keys in insertion order), and the result has one derivative tensor per leaf, in the same order.
 */
export type FlatField = (t: number, y: readonly Tensor[]) => Tensor[];

/**
 * What one attempted step of a solver produces. V is the state's representation: Tensor[] (one tensor per leaf
 * of a tensor tree) for `step`, any vector space's element for `stepOn`.
 */
export interface StepResult<V = Tensor[]> {
  /** The state at t + h (one tensor per leaf). */
  y1: V;
  /**
   * Local error estimate (one tensor per leaf, same shapes as y), or null when the method has none or the
   * caller did not ask for it. It only feeds the step-size controller, so compute it without gradient.
   */
  err: V | null;
  /**
   * A second error estimate (lower order), or null/absent: the driver then takes ε₁² / √(ε₁² + 0.01·ε₂²) of the
   * two scaled norms as the error ratio (Hairer's DOP853).
   */
  err2?: V | null;
  /** The derivative f(t, y) the step used (reused by the driver after a rejected step), or null. */
  f0: V | null;
  /** f(t + h, y1) when the method computed it (first same as last), or null. */
  f1: V | null;
  /**
   * The method's continuous extension on the step: the state at t + θh for θ in [0, 1]. Absent → the driver
   * interpolates with a cubic Hermite polynomial through (y, f0) and (y1, f1).
   */
  interpolate?: (theta: number) => V;
  /**
   * Vector-field evaluations this step made (including those of a finite-difference Jacobian); read after the
   * step's outputs are interpolated, so a continuous extension with extra stages may add to it.
   */
  nfev: number;
  /** Jacobian evaluations this step made (implicit methods). */
  njev?: number;
  /** LU factorisations this step made (implicit methods). */
  nlu?: number;
  /**
   * Values of this step nothing else refers to once its outputs are computed, apart from y1, f0 and f1 (which
   * may be listed too and are skipped): the driver hands them back to the space (`release`).
   */
  temporaries?: readonly V[];
}

/**
 * The operations a solver core needs on states, so that one core serves every kind of state: `tensorSpace`
 * (lists of tensor leaves, differentiable autograd ops) and `arraySpace` (one Float64Array, plain loops). Only
 * `combine`, `increment` and `hermite` must be differentiable; the rest only steer the step-size controller.
 */
export interface VectorSpace<V> {
  /** 'tensor' for tensor leaves, 'array' for plain Float64Array states. */
  readonly kind: string;
  /**
   * y + h·Σ_j coeffs[j]·k_j (terms with a zero coefficient skipped). `nonzero`, when given, lists the j with
   * coeffs[j] ≠ 0 in increasing order (a tableau row's, computed once), so the space need not look for them.
   */
  combine(y: V, h: number, coeffs: readonly number[], ks: readonly V[], nonzero?: Int32Array): V;
  /**
   * combine for the argument of a single f evaluation: the result may be overwritten by the next `stage` call
   * (plain arrays reuse one buffer). Absent: combine.
   */
  stage?(y: V, h: number, coeffs: readonly number[], ks: readonly V[], nonzero?: Int32Array): V;
  /** h·Σ_j coeffs[j]·k_j (at least one coefficient nonzero). */
  increment(h: number, coeffs: readonly number[], ks: readonly V[]): V;
  /** h·Σ_j coeffs[j]·k_j from the values, outside autodiff (error estimates). */
  hostIncrement(h: number, coeffs: readonly number[], ks: readonly V[], nonzero?: Int32Array): V;
  /** Cubic Hermite interpolation at θ on a step of size h through (y0, f0), (y1, f1). */
  hermite(y0: V, f0: V, y1: V, f1: V, h: number, theta: number): V;
  /** y + a·x from the values, outside autodiff. */
  axpyHost(y: V, a: number, x: V): V;
  /** RMS of err / (atol + rtol·max(|y0|, |y1|)); NaN when y1 is not finite. rtol/atol per tolerance group. */
  errorRatio(err: V, y0: V, y1: V, rtol: readonly number[], atol: readonly number[]): number;
  /** RMS of x / (atol + rtol·|y|). */
  scaledRms(x: V, y: V, rtol: readonly number[], atol: readonly number[]): number;
  /** The first non-finite element (group = leaf for tensors, 0 for arrays), or null. */
  firstNonFinite(y: V): { leaf: number; index: number; value: number } | null;
  /** Number of scalar unknowns of a state. */
  size(y: V): number;
  /**
   * Implicit methods: ∂f/∂y at (t, y) as an opaque handle, with the f evaluations it cost (finite differences).
   * fy is f(t, y).
   */
  jacobian(f: (t: number, y: V) => V, t: number, y: V, fy: V): { J: unknown; nfev: number };
  /** Implicit methods: factorises W = shift·I − J (LU with partial pivoting); returns a solver of W x = b. */
  factor(J: unknown, shift: number): (b: V) => V;
  /** Runs fn without recording gradients (the tensor space) or as is. */
  noGrad<R>(fn: () => R): R;
  /** Takes back a value nothing refers to any more (plain arrays reuse its buffer). Absent: nothing to do. */
  release?(v: V): void;
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
  /**
   * The same step on any vector space (the built-in methods have it, with `step` = `stepOn(tensorSpace, …)`);
   * plain-array states need it.
   */
  stepOn?<V>(
    space: VectorSpace<V>,
    f: (t: number, y: V) => V,
    t: number,
    y: V,
    h: number,
    f0: V | null,
    needError?: boolean,
  ): StepResult<V>;
  /** Whether the method solves linear systems with ∂f/∂y (then stats count njev and nlu). */
  readonly implicit?: boolean;
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
  /** Jacobian evaluations (implicit methods only). */
  njev?: number;
  /** LU factorisations (implicit methods only). */
  nlu?: number;
}

/**
 * What an adaptive controller is given when a solve starts (to choose the first step). V is the state's
 * representation: flat tensor leaves (Tensor[]) for tensor states, a Float64Array for plain-array states.
 */
// biome-ignore lint/suspicious/noExplicitAny: the default covers both state kinds for controllers that only read numbers
export interface ControllerStart<V = any> {
  /** The vector field on flat states; every call counts in the solve's `nfev`. */
  f: (t: number, y: V) => V;
  /** Initial time. */
  t0: number;
  /** Last output time (the solve runs from t0 towards it; tEnd < t0 integrates backwards). */
  tEnd: number;
  /** Initial state (flat leaves). */
  y0: V;
  /** f(t0, y0), already evaluated by the driver. */
  f0: V;
  /** The operations on states (absent: V is a list of tensor leaves). */
  space?: VectorSpace<V>;
  /** Per-leaf relative tolerances of the error norm (the controller's rtol resolved against the state). */
  rtol: readonly number[];
  /** Per-leaf absolute tolerances of the error norm. */
  atol: readonly number[];
  /** Order of the solver's solution. */
  order: number;
  /** Order of the solver's embedded solution; the local error estimate is O(h^(errorOrder + 1)). */
  errorOrder: number;
}

/** One attempted step, as the controller sees it. */
export interface StepAttempt {
  /** Time the step started from. */
  t: number;
  /** |h| of the attempt (the driver shortens a step to land on an output time when it has to). */
  h: number;
  /**
   * The error norm: RMS over all state elements of err / (atol + rtol·max(|y₀|, |y₁|)); ≤ 1 is within the
   * tolerances. NaN or Infinity when the step produced non-finite values (the driver never accepts those).
   */
  ratio: number;
}

/** A controller's verdict on an attempted step. */
export interface StepDecision<S> {
  /** Whether the step is kept (ignored, i.e. rejected, when the error norm is not finite). */
  accept: boolean;
  /** |h| of the next attempt (a finite number > 0). */
  h: number;
  /** The controller state carried to the next call of `adapt`. */
  state: S;
  /** Set when the controller cannot go on (e.g. h would fall below dtmin): the solve fails with this reason. */
  failure?: string;
}

/**
 * A step-size controller that chooses its steps from the solver's error estimate. Controllers are immutable
 * settings; everything that changes during a solve lives in the state S that `init` creates and `adapt`
 * returns, so one controller object can serve any number of solves (e.g. the forward and the backward solve
 * of odeintAdjoint).
 */
export interface AdaptiveStepSizeController<S = unknown> {
  readonly kind: "adaptive";
  /** Name used in messages. */
  readonly name: string;
  /** Relative tolerance of the error norm (number or tree matching the state); default by dtype. */
  readonly rtol?: Tolerance;
  /** Absolute tolerance of the error norm (number or tree matching the state); default by dtype. */
  readonly atol?: Tolerance;
  /** Step attempts (accepted + rejected) after which the solve fails. */
  readonly maxSteps: number;
  /** First step size (|h|) and the initial state. */
  init(start: ControllerStart): { h: number; state: S };
  /** Accept or reject an attempted step, and the size of the next attempt. */
  adapt(step: StepAttempt, state: S): StepDecision<S>;
}

/**
 * A controller of fixed steps: each interval between consecutive output times is cut into `stepsBetween`
 * equal steps, so steps land exactly on the output times; no error estimate is computed.
 */
export interface FixedStepSizeController {
  readonly kind: "fixed";
  /** Name used in messages. */
  readonly name: string;
  /** Steps (accepted, in total) after which the solve fails; undefined: unlimited. */
  readonly maxSteps?: number;
  /** Number of equal steps (a positive integer) from output time t0 to the next output time t1. */
  stepsBetween(t0: number, t1: number): number;
}

/** How odeint chooses its steps: fixed steps (ConstantStepSize) or adaptive ones (PIDController, or your own). */
// biome-ignore lint/suspicious/noExplicitAny: each adaptive controller has its own per-solve state type; the driver only passes it back
export type StepSizeController = FixedStepSizeController | AdaptiveStepSizeController<any>;

/**
 * Options of `odeint`. Step control is `stepSizeController`; the flat options `dt`, `steps`, `rtol`, `atol`,
 * `firstStep`, `maxStep`, `maxSteps`, `pcoeff`, `icoeff`, `safety`, `factorMin`, `factorMax` are a
 * deprecated shorthand for one (they cannot be combined with it): with `dt` / `steps`, or for a method without
 * an error estimate, they mean `new ConstantStepSize({ dt, steps, maxSteps })`, otherwise
 * `new PIDController({ rtol, atol, firstStep, dtmax: maxStep, maxSteps, pcoeff, icoeff, safety, factorMin,
 * factorMax })`.
 */
export interface OdeintOptions {
  /** Registered method name or a Solver object (default 'dopri5'). */
  method?: string | Solver;
  /**
   * How steps are chosen. Default: a PIDController with its defaults (the classic I controller) for adaptive
   * methods, one step per interval between output times (ConstantStepSize) for the others.
   */
  stepSizeController?: StepSizeController;
  /** @deprecated use `stepSizeController: new ConstantStepSize({ dt })`. Fixed step size (forces fixed steps). */
  dt?: number;
  /** @deprecated use `stepSizeController: new ConstantStepSize({ steps })`. Equal steps per output interval. */
  steps?: number;
  /** @deprecated use `stepSizeController: new PIDController({ rtol })`. Relative tolerance (number or tree). */
  rtol?: Tolerance;
  /** @deprecated use `stepSizeController: new PIDController({ atol })`. Absolute tolerance (number or tree). */
  atol?: Tolerance;
  /** @deprecated use `new PIDController({ firstStep })`. First step size to try (absolute value). */
  firstStep?: number;
  /** @deprecated use `new PIDController({ dtmax })`. Largest allowed |h| of adaptive steps. */
  maxStep?: number;
  /** @deprecated use the controller's `maxSteps`. Maximum number of step attempts. */
  maxSteps?: number;
  /** @deprecated use `new PIDController({ pcoeff })`. Proportional coefficient (default 0). */
  pcoeff?: number;
  /** @deprecated use `new PIDController({ icoeff })`. Integral coefficient (default 1). */
  icoeff?: number;
  /** @deprecated use `new PIDController({ safety })`. Safety factor (default 0.9). */
  safety?: number;
  /** @deprecated use `new PIDController({ factorMin })`. Smallest step-change factor (default 0.2). */
  factorMin?: number;
  /** @deprecated use `new PIDController({ factorMax })`. Largest step-change factor (default 10). */
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
  /**
   * Plain-array states with an implicit method: ∂f/∂y, filling the row-major n×n `J` (or returning it, flat or
   * as rows). Without it the Jacobian comes from forward differences (n extra f evaluations, error O(√ε)).
   * Tensor states get exact Jacobians from autodiff and take no `jac`.
   */
  jac?: ArrayJacobian;
}

/**
 * A vector field on a plain-array state: write dy/dt into `dydt` and return nothing, or return dy/dt (any array
 * of n numbers). `y` is a Float64Array owned by the solver: read it, don't keep or modify it.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: a field that fills dydt in and returns nothing has return type void
export type ArrayField = (t: number, y: Float64Array, dydt: Float64Array) => void | ArrayLike<number>;

/** ∂f/∂y of a plain-array field: fill `J` (row-major n×n) and return nothing, or return it (flat row-major, or rows). */
// biome-ignore lint/suspicious/noConfusingVoidType: a Jacobian that fills J in and returns nothing has return type void
export type ArrayJacobian = (t: number, y: Float64Array, J: Float64Array) => void | ArrayLike<number> | readonly ArrayLike<number>[];

/** The solution at every requested time plus counters. */
export interface OdeSolution<Y> {
  /** ys[i] is the state at ts[i]; ys[0] is y0 itself. */
  ys: Y[];
  stats: OdeStats;
}
