/**
 * A backend with only the required part of the Backend interface (storage and primitives), delegating each
 * primitive to a CPU backend: every fused op (softmax, cross-entropy, layer norm, the GELU backward, the fused
 * projection + cross-entropy) then runs as its composite in the op layer. Used to show that the primitives are
 * enough: the conformance suite and a short training run pass on it.
 */
import type { Backend, BackendPrimitives, BinaryOp, Buffer, ReduceOp, TensorInfo, UnaryOp } from "../../src/backend/backend.js";
import { CpuBackend } from "../../src/backend/cpu/cpu-backend.js";
import type { DType, TypedArray } from "../../src/dtype.js";
import type { Shape } from "../../src/shape.js";

/** Implements `BackendPrimitives` and nothing else (no fused kernel, not even by inheritance). */
export class RequiredOnlyBackend implements BackendPrimitives, Backend {
  readonly name: string;
  private readonly cpu = new CpuBackend();
  /** Primitive calls by name (to show the work ran here). */
  readonly calls = new Map<string, number>();

  constructor(name = "cpu-required-only") {
    this.name = name;
  }

  private count(op: string): CpuBackend {
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
    return this.cpu;
  }

  fromArray(data: TypedArray, dtype: DType): Buffer {
    return this.count("fromArray").fromArray(data, dtype);
  }
  zeros(dtype: DType, size: number): Buffer {
    return this.count("zeros").zeros(dtype, size);
  }
  read(x: TensorInfo): TypedArray {
    return this.count("read").read(x);
  }
  dispose(buf: Buffer): void {
    this.count("dispose").dispose(buf);
  }
  cast(x: TensorInfo, to: DType): Buffer {
    return this.count("cast").cast(x, to);
  }
  fill(dtype: DType, size: number, value: number): Buffer {
    return this.count("fill").fill(dtype, size, value);
  }
  unary(op: UnaryOp, x: TensorInfo, outDType: DType): Buffer {
    return this.count("unary").unary(op, x, outDType);
  }
  binary(op: BinaryOp, a: TensorInfo, b: TensorInfo, outShape: Shape, outDType: DType): Buffer {
    return this.count("binary").binary(op, a, b, outShape, outDType);
  }
  where(cond: TensorInfo, a: TensorInfo, b: TensorInfo, outShape: Shape): Buffer {
    return this.count("where").where(cond, a, b, outShape);
  }
  reduce(op: ReduceOp, x: TensorInfo, axes: readonly number[]): Buffer {
    return this.count("reduce").reduce(op, x, axes);
  }
  matmul(a: TensorInfo, b: TensorInfo, transA: boolean, transB: boolean, outShape: Shape): Buffer {
    return this.count("matmul").matmul(a, b, transA, transB, outShape);
  }
  transpose(x: TensorInfo, perm: readonly number[]): Buffer {
    return this.count("transpose").transpose(x, perm);
  }
  broadcastTo(x: TensorInfo, shape: Shape): Buffer {
    return this.count("broadcastTo").broadcastTo(x, shape);
  }
  slice(x: TensorInfo, begin: readonly number[], size: readonly number[], step: readonly number[]): Buffer {
    return this.count("slice").slice(x, begin, size, step);
  }
  pad(x: TensorInfo, outShape: Shape, begin: readonly number[], step: readonly number[]): Buffer {
    return this.count("pad").pad(x, outShape, begin, step);
  }
  concat(xs: TensorInfo[], axis: number, outShape: Shape): Buffer {
    return this.count("concat").concat(xs, axis, outShape);
  }
  gather(x: TensorInfo, indices: TensorInfo, axis: number): Buffer {
    return this.count("gather").gather(x, indices, axis);
  }
  scatterAdd(updates: TensorInfo, indices: TensorInfo, axis: number, outShape: Shape): Buffer {
    return this.count("scatterAdd").scatterAdd(updates, indices, axis, outShape);
  }
}
