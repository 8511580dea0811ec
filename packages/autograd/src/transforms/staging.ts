/**
 * Staging: how `vmap` and `jit` see every kernel call. Both work below the op layer, on the backend primitives
 * (`BackendPrimitives` and the fused kernels of `FusedKernels`): a tensor inside a transform keeps its logical
 * shape and dtype, and its storage is a `StagedBuf` — a batch of values (vmap) or a traced value (jit) — owned by
 * the transform's `Interpreter`. The op layer and the autodiff engine run unchanged on such tensors (shape checks,
 * broadcasting, VJP/JVP rules written with ops), and every kernel call they make reaches the interpreter of its
 * operands, which gives one rule per primitive for the whole op set.
 *
 * A backend is interposed once, the first time a transform meets it: each of its kernel methods is replaced on
 * the instance by a wrapper that looks for staged operands; with none it calls the original method (so tensors
 * outside any transform run as before, at the cost of a scan of the arguments). With staged operands the wrapper
 * hands the call to the interpreter of the highest level among them, which computes with the operands' inner
 * buffers by calling the backend again (reaching the interpreters of lower levels: nested vmap, vmap inside jit).
 * Staged buffers describe themselves, so rules closed over staged tensors (a backward pass run after `vmap`
 * returned) still work.
 */
import type { Backend, Buffer, TensorInfo } from "../backend/backend.js";

/** A transform that owns staged buffers and runs kernel calls on them. */
export interface Interpreter {
  /** Nesting order: the interpreter with the highest level among a call's operands handles it. */
  readonly level: number;
  /** Runs kernel `method` of `be` on `args` (some operands staged by this interpreter). */
  run(be: Backend, method: KernelName, args: unknown[]): unknown;
}

/** Storage of a tensor inside a transform. */
export class StagedBuf {
  constructor(readonly interp: Interpreter) {}
}

/** The kernel methods of a backend that take operands (creation methods take none and are not interposed). */
export const OPERAND_KERNELS = [
  "read",
  "dispose",
  "cast",
  "unary",
  "binary",
  "where",
  "reduce",
  "matmul",
  "transpose",
  "broadcastTo",
  "slice",
  "pad",
  "concat",
  "gather",
  "scatterAdd",
  "softmax",
  "crossEntropy",
  "crossEntropyBackward",
  "layerNorm",
  "layerNormBackward",
  "geluBackward",
  "dropout",
  "linearCrossEntropy",
  "linearCrossEntropyBackward",
  "linearCrossEntropyWithGrad",
] as const;

/** Backend methods that create buffers from host values only (nothing to stage). */
export const CREATION_KERNELS = ["fromArray", "zeros", "fill"] as const;

export type KernelName = (typeof OPERAND_KERNELS)[number];

let levels = 0;

/** A fresh interpreter level (later transforms nest inside earlier ones). */
export function nextLevel(): number {
  return ++levels;
}

/** The highest-level interpreter among the staged operands of `args`, or null. */
function topInterpreter(args: unknown[]): Interpreter | null {
  let top: Interpreter | null = null;
  const see = (b: unknown) => {
    if (b instanceof StagedBuf && (!top || b.interp.level > top.level)) top = b.interp;
  };
  for (const a of args) {
    if (a === null || typeof a !== "object") continue;
    if (a instanceof StagedBuf) see(a);
    else if (Array.isArray(a)) {
      for (const e of a) if (e !== null && typeof e === "object") see((e as TensorInfo).buf);
    } else see((a as TensorInfo).buf);
  }
  return top;
}

const ORIGINAL = Symbol("qkvflow.original-kernels");

type Interposed = Backend & { [ORIGINAL]?: Partial<Record<KernelName, (...a: unknown[]) => unknown>> };

/** Installs the staging dispatch on a backend instance (once). */
export function interpose(be: Backend): void {
  const b = be as Interposed;
  if (b[ORIGINAL]) return;
  const originals: Partial<Record<KernelName, (...a: unknown[]) => unknown>> = {};
  for (const name of OPERAND_KERNELS) {
    const f = (be as unknown as Record<string, unknown>)[name];
    if (typeof f !== "function") continue;
    const orig = f as (...a: unknown[]) => unknown;
    originals[name] = orig;
    Object.defineProperty(be, name, {
      configurable: true,
      writable: true,
      enumerable: false,
      value: function staged(this: Backend, ...args: unknown[]) {
        const top = topInterpreter(args);
        return top ? top.run(be, name, args) : orig.apply(be, args);
      },
    });
  }
  Object.defineProperty(be, ORIGINAL, { value: originals, enumerable: false });
}

/** The backend's own method (bypassing the staging dispatch), for callers that hold plain buffers only. */
export function originalKernel(be: Backend, name: KernelName): ((...a: unknown[]) => unknown) | undefined {
  const o = (be as Interposed)[ORIGINAL];
  if (o) return o[name];
  const f = (be as unknown as Record<string, unknown>)[name];
  return typeof f === "function" ? (f as (...a: unknown[]) => unknown) : undefined;
}

/** Whether a buffer is staged (by any transform). */
export function isStaged(buf: Buffer): boolean {
  return buf instanceof StagedBuf;
}
