/**
 * @qkvflow/ode — pluggable, differentiable ODE solvers on @qkvflow/autograd tensors and on plain arrays: odeint
 * (fixed-step and adaptive explicit Runge–Kutta methods with dense output, Rosenbrock methods for stiff problems), step-size controllers as objects (ConstantStepSize,
 * PIDController), odeintAdjoint (continuous adjoint gradients), Butcher tableaux as data, and a registry for
 * custom solvers.
 */
export type {
  FlatField,
  Solver,
  StepResult,
  Tolerance,
  OdeStats,
  OdeintOptions,
  OdeSolution,
  StepSizeController,
  AdaptiveStepSizeController,
  FixedStepSizeController,
  ControllerStart,
  StepAttempt,
  StepDecision,
} from "./types.js";
export { odeint, odeintWithStats, isArrayState, type ArrayState } from "./odeint.js";
export type { ArrayField, ArrayJacobian, VectorSpace } from "./types.js";
export { tensorSpace, arraySpace, type ArraySpace } from "./space.js";
export { rosenbrock, validateRosenbrock, RODAS3, RODAS4, BUILTIN_ROSENBROCK, type RosenbrockTableau } from "./rosenbrock.js";
export { luFactor, luSolve, luSolveTransposed, type LU } from "./lu.js";
export {
  ConstantStepSize,
  PIDController,
  selectInitialStep,
  type ConstantStepSizeOptions,
  type PIDControllerOptions,
  type PIDState,
} from "./controller.js";
export {
  odeintAdjoint,
  odeintAdjointVjp,
  type AdjointOptions,
  type AdjointSolveOptions,
  type AdjointSolution,
  type ParamField,
} from "./adjoint.js";
export { customVjp } from "./custom-vjp.js";
export { explicitRK } from "./explicit-rk.js";
export {
  validateTableau,
  nonzeroIndices,
  polyMul,
  polyAdd,
  polyEval,
  interpFromPolys,
  type ButcherTableau,
  type NormalizedTableau,
  type Poly,
} from "./tableau.js";
export { EULER, MIDPOINT, HEUN, RK4, BOSH3, DOPRI5, TSIT5, DOP853, BUILTIN_TABLEAUS } from "./tableaus.js";
export { registerSolver, unregisterSolver, listSolvers, getSolver, type RegisterOptions } from "./registry.js";
export { combine, increment, hermite } from "./state.js";
