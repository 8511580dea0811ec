/**
 * Scoped release of backend memory: `tidy(fn)` releases every device buffer allocated while `fn` runs except
 * those reachable from its result (and those passed to `keep`). Backend-independent: a backend whose buffers
 * need explicit release reports each allocation with `trackAllocation`; buffers of backends whose memory is
 * garbage collected (the CPU backend) are simply not tracked.
 */
import { Tensor } from "./tensor.js";

/** What a scope needs from a device buffer. */
export interface Releasable {
  readonly disposed: boolean;
  /** Frees the device memory (idempotent). */
  release(): void;
}

const scopes: Set<Releasable>[] = [];
const kept = new WeakSet<Releasable>();

/** Internal: called by device backends for every buffer they allocate. */
export function trackAllocation(buf: Releasable): void {
  const top = scopes[scopes.length - 1];
  if (top) top.add(buf);
}

/** Whether a `tidy` scope is open. */
export function inTidyScope(): boolean {
  return scopes.length > 0;
}

function collect(x: unknown, out: Set<unknown>, seen: Set<unknown>): void {
  if (x === null || typeof x !== "object" || seen.has(x)) return;
  seen.add(x);
  if (x instanceof Tensor) {
    out.add(x._buf);
    // a batched tensor (vmap) holds its device buffer inside
    for (let b: unknown = x._buf; b !== null && typeof b === "object" && "inner" in b; ) out.add((b = (b as { inner: unknown }).inner));
    return;
  }
  if (Array.isArray(x)) {
    for (const v of x) collect(v, out, seen);
    return;
  }
  if (x instanceof Map) {
    for (const v of x.values()) collect(v, out, seen);
    return;
  }
  const proto = Object.getPrototypeOf(x);
  if (proto === Object.prototype || proto === null) for (const v of Object.values(x)) collect(v, out, seen);
}

/**
 * Runs `fn` and then releases the device memory of every tensor created inside it that is not part of its
 * result (tensors, arrays and plain objects of tensors are searched) or marked with `keep`. Scopes nest:
 * what a scope returns is handed to the enclosing scope. `fn` must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Releasable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const b of scope) if (!kept.has(b)) b.release();
    throw e;
  }
  scopes.pop();
  if (result !== null && typeof result === "object" && typeof (result as { then?: unknown }).then === "function") {
    for (const b of scope) if (!kept.has(b)) b.release();
    throw new Error(
      "tidy: the function returned a Promise; expected a synchronous function (device buffers would be released before it settles)",
    );
  }
  const live = new Set<unknown>();
  collect(result, live, new Set());
  const parent = scopes[scopes.length - 1];
  for (const b of scope) {
    if (live.has(b) || kept.has(b)) {
      if (parent && !kept.has(b)) parent.add(b);
    } else b.release();
  }
  return result;
}

/** Exempts tensors (or a tree of tensors) from release by every enclosing and future `tidy` scope; returns its argument. */
export function keep<T>(x: T): T {
  const bufs = new Set<unknown>();
  collect(x, bufs, new Set());
  for (const b of bufs) {
    if (b !== null && typeof b === "object" && typeof (b as Releasable).release === "function") {
      kept.add(b as Releasable);
      for (const s of scopes) s.delete(b as Releasable);
    }
  }
  return x;
}
