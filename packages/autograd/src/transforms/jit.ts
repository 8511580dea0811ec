/**
 * `jit`: trace a tensor function once per input signature into a program of backend kernel calls, then run the
 * program — without the op layer's checks and dispatch, without autodiff bookkeeping, with elementwise chains
 * fused into generated loops on the CPU backend (program.ts).
 */
import { gradientRequested, hasActiveTangent, isRecording, probeTracked } from "../autodiff/engine.js";
import { customVjp, vjp } from "../autodiff/transforms.js";
import type { Backend, Buffer } from "../backend/backend.js";
import { CpuBackend } from "../backend/cpu/cpu-backend.js";
import { getBackend } from "../backend/registry.js";
import { Tensor } from "../tensor.js";
import { treeFlatten } from "../tree.js";
import { compileProgram, type Executable, interpretProgram } from "./program.js";
import { interpose, nextLevel, StagedBuf } from "./staging.js";
import { TraceInterpreter } from "./trace.js";

/** Number of compiled signatures of one jitted function at which a warning about retracing is printed (once). */
const RETRACE_WARNING = 32;

/** Options of jit. */
export interface JitOptions {
  /** Fuse elementwise chains into generated loops where the backend allows it (CPU); default true. */
  fuse?: boolean;
}

/** A jitted function: the function, plus what it has compiled. */
export interface Jitted<A extends unknown[], R> {
  (...args: A): R;
  /** Number of compiled programs (one per input signature seen so far). */
  readonly cacheSize: number;
  /** The compiled program for these arguments (tracing it if needed): loops generated and kernels called per run. */
  lower(...args: A): { loops: number; calls: number };
}

interface Compiled {
  exec: Executable;
  /** The output tree with its tensor leaves taken out, and each leaf's shape and dtype. */
  unflatten: (leaves: readonly Tensor[]) => unknown;
  outMeta: { shape: readonly number[]; dtype: Tensor["dtype"]; backend: Backend }[];
  /** The output is one tensor. */
  single: boolean;
  /** Tracing used a closed-over tensor that a reverse pass tracks: under grad, f must run op by op. */
  closesOverTracked: boolean;
}

/** The tensor leaves of the arguments (depth-first, as treeFlatten) and the cache key: structure, non-tensor values, each tensor's dtype, shape and backend. */
function scan(x: unknown, leaves: Tensor[]): string {
  if (x instanceof Tensor) {
    leaves.push(x);
    return `T${x.dtype}[${x.shape.join(",")}]${x._backend.name};`;
  }
  if (Array.isArray(x)) {
    let k = "[";
    for (const e of x) k += scan(e, leaves);
    return `${k}]`;
  }
  if (typeof x === "function") throw new Error("jit: an argument is a function; expected tensors, trees of tensors and plain values");
  if (x !== null && typeof x === "object") {
    if (Object.getPrototypeOf(x) === Object.prototype) {
      let k = "{";
      for (const key of Object.keys(x)) k += `${JSON.stringify(key)}:${scan((x as Record<string, unknown>)[key], leaves)}`;
      return `${k}}`;
    }
    return `O${JSON.stringify(x)};`;
  }
  return `${typeof x}${String(x)};`;
}

/**
 * Compiles `f`: the first call with a new input signature (the structure of the arguments, the shape and dtype
 * of each tensor, and every non-tensor value) traces `f` on shapes only and caches the resulting program; later
 * calls with that signature run the program. Tensors `f` closes over are captured at tracing as constants (pass
 * tensors that change as arguments). `f` must not read tensor values on the host (`data()`, `item()`, or control
 * flow on them): that is refused with an error when tracing; control flow on shapes and non-tensor arguments is
 * fine (each distinct value traces anew).
 *
 * On the CPU backend, chains of elementwise ops are fused into generated loops with bit-identical results; on
 * other backends the program runs kernel by kernel. Called with arguments that an outer `grad`/`vjp`/`jvp`
 * differentiates, or inside `vmap` or another trace, `f` runs op by op instead, so the outer transform sees its
 * ops (`grad(jit(f))` is `grad(f)`); `jit(grad(f))` and `jit(vmap(f))` compile the derivative and the batched
 * function.
 */
export function jit<A extends unknown[], R>(f: (...args: A) => R, opts: JitOptions = {}): Jitted<A, R> {
  const cache = new Map<string, Compiled>();
  const fuse = opts.fuse ?? true;

  const compile = (leaves: Tensor[], unflatten: (l: readonly Tensor[]) => A): Compiled => {
    const be = leaves[0]?._backend ?? getBackend();
    interpose(be);
    interpose(getBackend());
    const interp = new TraceInterpreter(nextLevel(), "jit");
    const inputs = leaves.map(() => interp.value());
    const traced = leaves.map((x, i) => new Tensor(inputs[i], x.shape, x.dtype, x._backend));
    const { value: out, touched } = probeTracked(() => f(...unflatten(traced)));
    const fo = treeFlatten(out);
    const outBufs: Buffer[] = fo.leaves.map((t) => t._buf);
    for (const t of fo.leaves) {
      if (t._backend !== be) throw new Error(`jit: an output lives on backend ${t._backend.name}; expected ${be.name} like the inputs`);
    }
    const plain = (b: unknown) => !(b instanceof StagedBuf) || (b as { interp: unknown }).interp === interp;
    const constsPlain = interp.nodes.every((n) =>
      n.args.every((a) => (Array.isArray(a) ? a : [a]).every((x) => !(x !== null && typeof x === "object" && "buf" in x) || plain(x.buf))),
    );
    const exec =
      fuse && be instanceof CpuBackend && constsPlain
        ? compileProgram(be, interp, inputs, outBufs)
        : interpretProgram(be, interp, inputs, outBufs);
    return {
      exec,
      unflatten: fo.unflatten as (l: readonly Tensor[]) => unknown,
      outMeta: fo.leaves.map((t) => ({ shape: t.shape, dtype: t.dtype, backend: t._backend })),
      single: out instanceof Tensor,
      closesOverTracked: touched,
    };
  };

  const lookup = (args: A, leaves: Tensor[], key: string): Compiled => {
    let c = cache.get(key);
    if (!c) {
      c = compile(leaves, treeFlatten(args).unflatten as (l: readonly Tensor[]) => A);
      cache.set(key, c);
      if (cache.size === RETRACE_WARNING) {
        console.warn(
          `jit: ${RETRACE_WARNING} programs compiled for one function; a non-tensor argument that changes on every call (a time t, a step count) traces anew each time — pass such values as tensors`,
        );
      }
    }
    return c;
  };

  const execute = (c: Compiled, leaves: Tensor[]): R => {
    const bufs = c.exec.run(leaves.map((x) => x._buf));
    const m = c.outMeta;
    if (c.single) return new Tensor(bufs[0], m[0].shape, m[0].dtype, m[0].backend) as R;
    return c.unflatten(bufs.map((b, i) => new Tensor(b, m[i].shape, m[i].dtype, m[i].backend))) as R;
  };

  // Under an outer reverse pass: the compiled forward, and a backward that is itself jitted (the pullback of f,
  // recomputing f's forward inside the compiled program), attached like a customVjp.
  let differentiable: ((...args: A) => R) | null = null;
  const withVjp = (): ((...args: A) => R) => {
    if (differentiable) return differentiable;
    const pullback = jit((args: A, ct: R) => vjp(f, ...args)[1](ct), opts);
    const forward = (...args: A): R => {
      const leaves: Tensor[] = [];
      const key = scan(args, leaves);
      return execute(lookup(args, leaves, key), leaves);
    };
    differentiable = customVjp(forward, (ct: R, args: A) => pullback(args, ct), "jit");
    return differentiable;
  };

  const run = (...args: A): R => {
    const leaves: Tensor[] = [];
    const key = scan(args, leaves);
    // forward mode or a staged argument: run op by op so the outer transform sees every op
    for (const x of leaves) if (x._buf instanceof StagedBuf || hasActiveTangent(x)) return f(...args);
    const c = lookup(args, leaves, key);
    // a closed-over tensor is tracked: a recording reverse pass must see f's ops to reach it
    if (c.closesOverTracked && isRecording()) return f(...args);
    if (gradientRequested(...leaves)) return withVjp()(...args);
    return execute(c, leaves);
  };
  Object.defineProperty(run, "cacheSize", { get: () => cache.size });
  (run as unknown as { lower: Jitted<A, R>["lower"] }).lower = (...args: A) => {
    const leaves: Tensor[] = [];
    const c = lookup(args, leaves, scan(args, leaves));
    return { loops: c.exec.loops, calls: c.exec.calls };
  };
  return run as unknown as Jitted<A, R>;
}
