import type { Backend } from "./backend.js";
import { CpuBackend } from "./cpu/cpu-backend.js";

const backends = new Map<string, Backend>([["cpu", new CpuBackend()]]);
let current: Backend = backends.get("cpu")!;

/** Registers a backend under its name (replacing one of the same name). */
export function registerBackend(b: Backend): void {
  backends.set(b.name, b);
}

/** Makes a registered backend (or the given instance) the one new tensors are created on. */
export function setBackend(b: string | Backend): Backend {
  if (typeof b !== "string") {
    registerBackend(b);
    current = b;
    return b;
  }
  const found = backends.get(b);
  if (!found) throw new Error(`setBackend: unknown backend '${b}'; registered backends: ${[...backends.keys()].join(", ")}`);
  current = found;
  return found;
}

/** The backend new tensors are created on. */
export function getBackend(): Backend {
  return current;
}

/** Names of the registered backends. */
export function listBackends(): string[] {
  return [...backends.keys()];
}
