/**
 * Tracing for `jit`: a function is run once on tensors whose storage is a `TraceBuf` (shape and dtype only); every
 * kernel call it makes on them is recorded as a node of a `Program` instead of computed. The program is the
 * function's computation as backend kernel calls: ops, shape checks and autodiff rules have already run.
 */
import type { Backend, Buffer, TensorInfo } from "../backend/backend.js";
import type { DType } from "../dtype.js";
import { fmt } from "../shape.js";
import { type Interpreter, type KernelName, StagedBuf } from "./staging.js";

/** A traced value: slot `id` of its program. */
export class TraceBuf extends StagedBuf {
  constructor(
    override readonly interp: TraceInterpreter,
    readonly id: number,
  ) {
    super(interp);
  }
}

/** One recorded kernel call: `args` hold TraceBufs (program values) and plain buffers (constants). */
export interface TraceNode {
  method: KernelName;
  args: unknown[];
  /** The value(s) it produces: one TraceBuf, or the kernel's result object with TraceBufs (null fields stay null). */
  out: TraceBuf | Record<string, TraceBuf | null>;
  /** Element count and dtype of a single output (elementwise kernels; used by the compiler). */
  size: number;
  dtype: DType | null;
  shape: readonly number[] | null;
}

/** Result fields of the kernels that return several buffers (null when the kernel returns null there). */
const MULTI: Partial<Record<KernelName, (args: unknown[]) => string[]>> = {
  crossEntropy: () => ["loss", "lse"],
  layerNorm: () => ["y", "mean", "rstd"],
  layerNormBackward: (a) => (a[5] ? ["dx", "dgamma", "dbeta"] : ["dx"]),
  linearCrossEntropy: () => ["loss", "lse"],
  linearCrossEntropyBackward: () => ["dx", "dw"],
  linearCrossEntropyWithGrad: () => ["loss", "lse", "dx", "dw"],
};

export class TraceInterpreter implements Interpreter {
  readonly nodes: TraceNode[] = [];
  private next = 0;
  constructor(
    readonly level: number,
    readonly what: string,
  ) {}

  /** A fresh program value. */
  value(): TraceBuf {
    return new TraceBuf(this, this.next++);
  }

  get slots(): number {
    return this.next;
  }

  run(_be: Backend, method: KernelName, args: unknown[]): unknown {
    if (method === "read") {
      const x = args[0] as TensorInfo;
      throw new Error(
        `${this.what}: the traced function read the values of a traced tensor (${x.dtype} ${fmt(x.shape)}) on the host (data(), item(), toArray(), or an op that reads host values such as crossEntropy's targets); jit traces with shapes and dtypes only, so control flow may depend on shapes and non-tensor arguments only. Expected no host reads: pass such values as non-tensor arguments (they are part of the cache key) or call the function without jit`,
      );
    }
    if (method === "dispose") return undefined;
    let size = 0;
    let dtype: DType | null = null;
    let shape: readonly number[] | null = null;
    if (method === "unary") {
      const x = args[1] as TensorInfo;
      shape = x.shape;
      dtype = args[2] as DType;
    } else if (method === "cast") {
      shape = (args[0] as TensorInfo).shape;
      dtype = args[1] as DType;
    } else if (method === "binary") {
      shape = args[3] as number[];
      dtype = args[4] as DType;
    } else if (method === "where") {
      shape = args[3] as number[];
      dtype = (args[1] as TensorInfo).dtype;
    }
    if (shape) size = shape.reduce((a, b) => a * b, 1);
    const multi = MULTI[method];
    let out: TraceNode["out"];
    if (multi) {
      const o: Record<string, TraceBuf | null> = {};
      for (const k of multi(args)) o[k] = this.value();
      if (method === "layerNormBackward" && !args[5]) {
        o.dgamma = null;
        o.dbeta = null;
      }
      out = o;
    } else out = this.value();
    this.nodes.push({ method, args: args.map(copyArg), out, size, dtype, shape });
    return out;
  }
}

/** A recorded argument: TensorInfo objects (and arrays of them) are copied, so later changes by the caller do not reach the program. */
function copyArg(a: unknown): unknown {
  if (Array.isArray(a)) return a.map(copyArg);
  if (a !== null && typeof a === "object" && "buf" in (a as object)) {
    const t = a as TensorInfo;
    return { buf: t.buf, shape: [...t.shape], dtype: t.dtype };
  }
  return a;
}

export type { Buffer };
