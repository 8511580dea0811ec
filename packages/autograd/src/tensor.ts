import type { Backend, Buffer, TensorInfo } from "./backend/backend.js";
import type { DType, TypedArray } from "./dtype.js";
import { sizeOf, type Shape } from "./shape.js";

/** A node of the reverse-mode graph: created when an op runs on tracked inputs while a grad transform records. */
export interface GradNode {
  readonly id: number;
  readonly name: string;
  readonly parents: readonly Tensor[];
  /** Cotangents for each parent (null when a parent gets none), computed with differentiable ops. */
  readonly vjp: (g: Tensor) => (Tensor | null)[];
  /** Set on the outputs of `checkpoint` / `customVjp`: one rule for all outputs of the call. */
  readonly group?: OutputGroup;
}

/**
 * Shared by the outputs of one `checkpoint` or `customVjp` call. When the backward walk reaches the group it
 * gathers the cotangents of all members (missing ones are undefined) and `run` says which tensors receive
 * which cotangents next.
 */
export interface OutputGroup {
  members: Tensor[];
  run: (cts: (Tensor | undefined)[]) => { tensor: Tensor; ct: Tensor }[];
}

/** An n-dimensional array on a backend, with optional autodiff bookkeeping. */
export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly size: number;
  /** @internal backend storage */
  readonly _buf: Buffer;
  /** @internal */
  readonly _backend: Backend;
  /** @internal reverse-mode node */
  _node: GradNode | undefined = undefined;
  /** @internal forward-mode tangents by level */
  _tangents: Map<number, Tensor> | undefined = undefined;

  constructor(buf: Buffer, shape: Shape, dtype: DType, backend: Backend) {
    this._buf = buf;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = sizeOf(shape);
    this._backend = backend;
  }

  /** Number of axes. */
  get rank(): number {
    return this.shape.length;
  }

  /** @internal kernel view */
  get info(): TensorInfo {
    return { buf: this._buf, shape: this.shape, dtype: this.dtype };
  }

  /** The values as a flat typed array (synchronous; on the CPU this is the backing array: do not mutate it). */
  data(): TypedArray {
    return this._backend.read(this.info);
  }

  /** The values as nested JavaScript arrays (a number for a scalar). */
  toArray(): NestedArray {
    const d = this.data();
    const shape = this.shape;
    if (shape.length === 0) return d[0];
    const build = (axis: number, offset: number): NestedArray[] => {
      const n = shape[axis];
      const stride = sizeOf(shape.slice(axis + 1));
      const out: NestedArray[] = [];
      for (let i = 0; i < n; i++) out.push(axis === shape.length - 1 ? d[offset + i] : build(axis + 1, offset + i * stride));
      return out;
    };
    return build(0, 0);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1)
      throw new Error(`item: tensor has shape [${this.shape.join(", ")}] (${this.size} elements); expected exactly one element`);
    return this.data()[0];
  }

  /** Releases backend memory now (needed on GPU backends; a no-op on the CPU). */
  dispose(): void {
    this._backend.dispose(this._buf);
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(", ")}])`;
  }
}

/** Nested JavaScript arrays of numbers. */
export type NestedArray = number | NestedArray[];

/** A tensor, or a plain number that is turned into a scalar tensor of the other operand's dtype. */
export type TensorLike = Tensor | number;

/** Host array types accepted by `tensor`. */
export type ArrayData = NestedArray | TypedArray | readonly number[];

/** Internal: whether the value is a tensor. */
export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}

/** Internal: typed array of a tensor for host-side code. */
export function hostData(t: Tensor): TypedArray {
  return t.data();
}
