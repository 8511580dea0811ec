/** Solvers by name: the built-in methods plus any registered by the user. */
import { explicitRK } from "./explicit-rk.js";
import { BUILTIN_ROSENBROCK, isRosenbrockTableau, rosenbrock, type RosenbrockTableau } from "./rosenbrock.js";
import type { ButcherTableau } from "./tableau.js";
import { BUILTIN_TABLEAUS } from "./tableaus.js";
import type { Solver } from "./types.js";

const registry = new Map<string, Solver>();
const builtinNames = new Set<string>();

for (const t of BUILTIN_TABLEAUS) {
  registry.set(t.name, explicitRK(t));
  builtinNames.add(t.name);
}
for (const t of BUILTIN_ROSENBROCK) {
  registry.set(t.name, rosenbrock(t));
  builtinNames.add(t.name);
}

function isSolver(x: unknown): x is Solver {
  return x !== null && typeof x === "object" && typeof (x as Solver).step === "function";
}

/** Options of registerSolver. */
export interface RegisterOptions {
  /** Replace an existing registration of the same name (built-in methods cannot be replaced). */
  override?: boolean;
}

/**
 * Makes a solver (or a Butcher tableau, via explicitRK, or a Rosenbrock tableau, via rosenbrock) usable by
 * name in odeint and odeintAdjoint.
 */
export function registerSolver(name: string, solver: Solver | ButcherTableau | RosenbrockTableau, options: RegisterOptions = {}): Solver {
  if (typeof name !== "string" || !/^[A-Za-z0-9_.\-]+$/.test(name)) {
    throw new Error(
      `registerSolver: name ${JSON.stringify(name)} is invalid; expected a non-empty string of letters, digits, '_', '-' or '.'`,
    );
  }
  if (builtinNames.has(name)) throw new Error(`registerSolver: '${name}' is a built-in method and cannot be replaced; choose another name`);
  if (registry.has(name) && !options.override) {
    throw new Error(`registerSolver: a solver named '${name}' is already registered; pass {override: true} to replace it`);
  }
  const s = isSolver(solver) ? checkSolver(solver) : isRosenbrockTableau(solver) ? rosenbrock(solver) : explicitRK(solver);
  registry.set(name, s);
  return s;
}

/** Removes a user-registered solver; returns whether one was removed (built-in methods stay). */
export function unregisterSolver(name: string): boolean {
  if (builtinNames.has(name))
    throw new Error(`unregisterSolver: '${name}' is a built-in method; only user-registered solvers can be removed`);
  return registry.delete(name);
}

/** Names of all registered solvers (built-in first, then user-registered, in registration order). */
export function listSolvers(): string[] {
  return [...registry.keys()];
}

/** The solver registered under `name`; throws listing the registered names when there is none. */
export function getSolver(name: string): Solver {
  const s = registry.get(name);
  if (!s) throw new Error(`getSolver: unknown method '${name}'; registered methods: ${listSolvers().join(", ")}`);
  return s;
}

/** Resolves a method option (name or Solver object) for `fn`, with a message naming `fn` on failure. */
export function resolveSolver(fn: string, method: string | Solver | undefined): Solver {
  if (method === undefined) return registry.get("dopri5")!;
  if (typeof method === "string") {
    const s = registry.get(method);
    if (!s) throw new Error(`${fn}: unknown method '${method}'; registered methods: ${listSolvers().join(", ")}`);
    return s;
  }
  if (isSolver(method)) return checkSolver(method, fn);
  throw new Error(`${fn}: method is ${typeof method}; expected a registered method name or a Solver object`);
}

function checkSolver(s: Solver, fn = "registerSolver"): Solver {
  if (!Number.isInteger(s.order) || s.order < 1)
    throw new Error(`${fn}: solver '${s.name}' has order ${s.order}; expected a positive integer`);
  if (s.adaptive && (s.errorOrder === undefined || !Number.isInteger(s.errorOrder) || s.errorOrder < 0)) {
    throw new Error(
      `${fn}: adaptive solver '${s.name}' has errorOrder ${s.errorOrder}; expected a non-negative integer (order of its error estimate)`,
    );
  }
  return s;
}
