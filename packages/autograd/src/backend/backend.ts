import type { DType, TypedArray } from "../dtype.js";
import type { Shape } from "../shape.js";

/** Opaque storage owned by a backend (a typed array on the CPU, a texture or GPU buffer elsewhere). */
export type Buffer = unknown;

/** What a kernel is told about one operand: its storage, shape and dtype (always dense row-major). */
export interface TensorInfo {
  buf: Buffer;
  shape: Shape;
  dtype: DType;
}

export type UnaryOp =
  | "neg"
  | "exp"
  | "log"
  | "log1p"
  | "sqrt"
  | "rsqrt"
  | "abs"
  | "sin"
  | "cos"
  | "tanh"
  | "sigmoid"
  | "relu"
  | "gelu"
  | "silu"
  | "sign"
  | "square"
  | "reciprocal"
  | "step"
  | "floor"
  | "isfinite";

export type BinaryOp = "add" | "sub" | "mul" | "div" | "pow" | "maximum" | "minimum" | "eq" | "ne" | "lt" | "le" | "gt" | "ge";

export type ReduceOp = "sum" | "max" | "min";

/**
 * The primitives every backend implements: storage, and the kernels every op is built from. Gradient rules
 * never call a backend; ops call kernels. Every kernel returns a fresh buffer of the documented output shape
 * (dense row-major). A backend that implements only these runs every op: the fused kernels below fall back to
 * their composites in the op layer (`src/ops/fused.ts`).
 */
export interface BackendPrimitives {
  readonly name: string;
  /** Uploads host data (the array may be kept by reference; callers must not mutate it afterwards). */
  fromArray(data: TypedArray, dtype: DType): Buffer;
  /** Zero-filled buffer. */
  zeros(dtype: DType, size: number): Buffer;
  /** Synchronous read-back to a host typed array (may be the backing array itself on the CPU). */
  read(x: TensorInfo): TypedArray;
  /** Releases device memory (no-op where memory is garbage collected). */
  dispose(buf: Buffer): void;

  cast(x: TensorInfo, to: DType): Buffer;
  fill(dtype: DType, size: number, value: number): Buffer;
  unary(op: UnaryOp, x: TensorInfo, outDType: DType): Buffer;
  /** Elementwise with NumPy broadcasting to `outShape`. */
  binary(op: BinaryOp, a: TensorInfo, b: TensorInfo, outShape: Shape, outDType: DType): Buffer;
  /** `cond ? a : b` with broadcasting. */
  where(cond: TensorInfo, a: TensorInfo, b: TensorInfo, outShape: Shape): Buffer;
  /** Reduces over sorted `axes` (output laid out with the reduced axes removed). */
  reduce(op: ReduceOp, x: TensorInfo, axes: readonly number[]): Buffer;
  /** Batched matrix product over the last two axes; batch axes already broadcast-compatible. */
  matmul(a: TensorInfo, b: TensorInfo, transA: boolean, transB: boolean, outShape: Shape): Buffer;
  transpose(x: TensorInfo, perm: readonly number[]): Buffer;
  broadcastTo(x: TensorInfo, shape: Shape): Buffer;
  /** Strided slice: out[i] = x[begin + i*step] per axis, `size` elements per axis. */
  slice(x: TensorInfo, begin: readonly number[], size: readonly number[], step: readonly number[]): Buffer;
  /** Writes x into a zero tensor of `outShape` at `begin` with `step` (the adjoint of slice). */
  pad(x: TensorInfo, outShape: Shape, begin: readonly number[], step: readonly number[]): Buffer;
  concat(xs: TensorInfo[], axis: number, outShape: Shape): Buffer;
  /** out = x indexed along `axis` by int32 `indices` (any shape): out.shape = x.shape[:axis] + idx.shape + x.shape[axis+1:]. */
  gather(x: TensorInfo, indices: TensorInfo, axis: number): Buffer;
  /** Adjoint of gather: zeros of `outShape`, then adds `updates` at `indices` along `axis`. */
  scatterAdd(updates: TensorInfo, indices: TensorInfo, axis: number, outShape: Shape): Buffer;
  /** Random bits are produced on the host; backends only receive the values through fromArray. */
}

/**
 * Fused kernels: faster forms of values the op layer can also compose from the primitives. A backend provides
 * any subset; each has exactly one composite definition in `src/ops/fused.ts`, which runs when the backend
 * lacks the kernel and is the reference the conformance suite checks the kernel against. Operands are validated
 * by the op that calls the kernel (shapes, dtypes, target ranges), not by the kernel.
 */
export interface FusedKernels {
  /** Softmax / log-softmax over the last axis. */
  softmax(x: TensorInfo, log: boolean): Buffer;
  /** Per-row NLL and log-sum-exp of logits [N, C] with int32 targets [N]; ignored rows give 0. */
  crossEntropy(logits: TensorInfo, targets: TensorInfo, ignoreIndex: number): { loss: Buffer; lse: Buffer };
  /** dLogits = g[:,None] * (softmax(logits) - onehot(targets)), zero rows for ignored targets. */
  crossEntropyBackward(logits: TensorInfo, targets: TensorInfo, lse: TensorInfo, g: TensorInfo, ignoreIndex: number): Buffer;
  /**
   * Layer norm over the last axis of x [..., C]: y = (x − mean)·rstd·gamma + beta with rstd = 1/√(var + eps)
   * (biased variance); gamma and beta are [C] or null (1 and 0). Also returns the per-row mean and rstd
   * ([rows], rows = size / C) for the backward.
   */
  layerNorm(x: TensorInfo, gamma: TensorInfo | null, beta: TensorInfo | null, eps: number): { y: Buffer; mean: Buffer; rstd: Buffer };
  /**
   * Backward of layerNorm from the saved mean and rstd: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·gamma
   * and x̂ = (x − mean)·rstd; with `withParams`, also dgamma = Σ_rows dy·x̂ and dbeta = Σ_rows dy ([C]).
   */
  layerNormBackward(
    x: TensorInfo,
    gamma: TensorInfo | null,
    mean: TensorInfo,
    rstd: TensorInfo,
    dy: TensorInfo,
    withParams: boolean,
  ): { dx: Buffer; dgamma: Buffer | null; dbeta: Buffer | null };
  /** dx = dy · gelu′(x) for the tanh GELU of unary "gelu" (x and dy of one shape). */
  geluBackward(x: TensorInfo, dy: TensorInfo): Buffer;
  /**
   * Inverted dropout of float x under key (k0, k1): x·s where the Philox-4x32-10 dropout stream keeps an element,
   * 0 where it drops it, s = 1/(1 − rate) rounded to x's dtype (the stream is defined in `src/random/philox.ts`).
   */
  dropout(x: TensorInfo, k0: number, k1: number, rate: number): Buffer;
  /**
   * Fused projection + cross-entropy: per-row NLL and log-sum-exp of logits = x·wᵀ (x [N, E], w [V, E], int32
   * targets [N]; ignored rows give 0) without materialising the [N, V] logits.
   */
  linearCrossEntropy(x: TensorInfo, w: TensorInfo, targets: TensorInfo, ignoreIndex: number): { loss: Buffer; lse: Buffer };
  /** Its backward: dx = dl·w [N, E] and dw = dlᵀ·x [V, E] with dl = g[:,None]·(softmax(x·wᵀ) − onehot(targets)). */
  linearCrossEntropyBackward(
    x: TensorInfo,
    w: TensorInfo,
    targets: TensorInfo,
    lse: TensorInfo,
    g: TensorInfo,
    ignoreIndex: number,
  ): { dx: Buffer; dw: Buffer };
  /**
   * Forward and backward in one pass for a summed loss: per-row loss and lse as linearCrossEntropy, and dx, dw =
   * the gradients of Σ_rows loss (weight 1 on every non-ignored row).
   */
  linearCrossEntropyWithGrad(
    x: TensorInfo,
    w: TensorInfo,
    targets: TensorInfo,
    ignoreIndex: number,
  ): { loss: Buffer; lse: Buffer; dx: Buffer; dw: Buffer };
}

/** Name of a fused kernel. */
export type FusedKernelName = keyof FusedKernels;

/**
 * A backend: the primitives, plus whichever fused kernels it implements (each optional, so a call site must
 * handle a missing one — ops go through `fused()` in `src/ops/fused.ts`, which falls back to the composite).
 */
export interface Backend extends BackendPrimitives, Partial<FusedKernels> {}
