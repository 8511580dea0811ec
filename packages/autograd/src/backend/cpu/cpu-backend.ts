import type { Backend, BinaryOp, Buffer, FusedKernels, ReduceOp, TensorInfo, UnaryOp } from "../backend.js";
import { allocArray, type DType, type TypedArray } from "../../dtype.js";
import { broadcastStrides, fmt, lastAxisRows, sizeOf, stridesOf, type Shape } from "../../shape.js";
import { binaryKernel, stridedCopy, stridedWrite, unaryKernel, whereKernel } from "./elementwise.js";
import { dropoutInto } from "../../random/philox.js";
import { dropoutF32 } from "./kernels/dropout-wasm.js";
import { gemmBatched } from "./kernels/gemm.js";
import { linearCrossEntropyBackwardRows, linearCrossEntropyRows, linearCrossEntropyWithGradRows } from "./kernels/linear-ce.js";
import { activeRuntime } from "./kernels/runtime.js";
import {
  crossEntropyBackwardRows,
  crossEntropyRows,
  geluTanh,
  geluTanhBackward,
  layerNormBackwardRows,
  layerNormRows,
  softmaxRows,
} from "./kernels/rows.js";

const arr = (x: TensorInfo) => x.buf as TypedArray;
type F = Float32Array | Float64Array;

/** The CPU backend: dense row-major typed arrays, kernels in TypeScript / WebAssembly; every fused kernel. */
export class CpuBackend implements Backend, FusedKernels {
  readonly name = "cpu";

  fromArray(data: TypedArray, _dtype: DType): Buffer {
    return data;
  }
  zeros(dtype: DType, size: number): Buffer {
    return allocArray(dtype, size);
  }
  read(x: TensorInfo): TypedArray {
    return arr(x);
  }
  dispose(_buf: Buffer): void {}

  cast(x: TensorInfo, to: DType): Buffer {
    const src = arr(x);
    const out = allocArray(to, src.length);
    if (to === "bool") for (let i = 0; i < src.length; i++) out[i] = src[i] !== 0 ? 1 : 0;
    else if (to === "int32") for (let i = 0; i < src.length; i++) out[i] = Math.trunc(src[i]);
    else out.set(src);
    return out;
  }

  fill(dtype: DType, size: number, value: number): Buffer {
    const out = allocArray(dtype, size);
    if (value !== 0) out.fill(value);
    return out;
  }

  unary(op: UnaryOp, x: TensorInfo, outDType: DType): Buffer {
    const out = allocArray(outDType, sizeOf(x.shape));
    if (op === "gelu") {
      if (outDType !== x.dtype || (x.dtype !== "float32" && x.dtype !== "float64")) {
        throw new Error(`cpu backend (gelu): ${x.dtype} → ${outDType}; expected a float32 or float64 input and output of one dtype`);
      }
      geluTanh(arr(x) as F, out as F, out.length);
      return out;
    }
    unaryKernel(op, arr(x), out);
    return out;
  }

  binary(op: BinaryOp, a: TensorInfo, b: TensorInfo, outShape: Shape, outDType: DType): Buffer {
    const out = allocArray(outDType, sizeOf(outShape));
    binaryKernel(op, arr(a), a.shape, arr(b), b.shape, out, outShape);
    return out;
  }

  where(cond: TensorInfo, a: TensorInfo, b: TensorInfo, outShape: Shape): Buffer {
    const out = allocArray(a.dtype, sizeOf(outShape));
    whereKernel(arr(cond), cond.shape, arr(a), a.shape, arr(b), b.shape, out, outShape);
    return out;
  }

  reduce(op: ReduceOp, x: TensorInfo, axes: readonly number[]): Buffer {
    // Reduce contiguous runs of axes from the last run to the first: each run is [outer, R, inner].
    let data = arr(x);
    let shape = [...x.shape];
    const runs: [number, number][] = [];
    for (const a of axes) {
      const r = runs[runs.length - 1];
      if (r && r[1] === a - 1) r[1] = a;
      else runs.push([a, a]);
    }
    if (runs.length === 0) return data.slice();
    for (let ri = runs.length - 1; ri >= 0; ri--) {
      const [s, e] = runs[ri];
      const outer = sizeOf(shape.slice(0, s));
      const R = sizeOf(shape.slice(s, e + 1));
      const inner = sizeOf(shape.slice(e + 1));
      const out = allocArray(x.dtype, outer * inner);
      reduceRun(op, data, out, outer, R, inner);
      data = out;
      shape = [...shape.slice(0, s), ...shape.slice(e + 1)];
    }
    return data;
  }

  matmul(a: TensorInfo, b: TensorInfo, transA: boolean, transB: boolean, outShape: Shape): Buffer {
    const ra = a.shape.length,
      rb = b.shape.length,
      ro = outShape.length;
    const m = outShape[ro - 2],
      n = outShape[ro - 1];
    const k = transA ? a.shape[ra - 2] : a.shape[ra - 1];
    const out = allocArray(a.dtype, sizeOf(outShape));
    const batchShape = outShape.slice(0, ro - 2);
    const nb = sizeOf(batchShape);
    const sa = broadcastStrides(a.shape.slice(0, ra - 2), batchShape).map((s) => s * m * k);
    const sb = broadcastStrides(b.shape.slice(0, rb - 2), batchShape).map((s) => s * k * n);
    const A = arr(a) as Float32Array | Float64Array,
      B = arr(b) as Float32Array | Float64Array;
    const C = out as Float32Array | Float64Array;
    if (nb === 1) {
      gemmBatched({ transA, transB, m, n, k, a: A, b: B, c: C });
      return out;
    }
    // Simple strides when every batch axis broadcasts uniformly: one batched call.
    const flatA = uniformStride(sa, batchShape),
      flatB = uniformStride(sb, batchShape);
    if (flatA !== null && flatB !== null) {
      gemmBatched({ transA, transB, m, n, k, a: A, b: B, c: C, batch: nb, strideA: flatA, strideB: flatB, strideC: m * n });
      return out;
    }
    const idx = new Array<number>(batchShape.length).fill(0);
    for (let bi = 0; bi < nb; bi++) {
      let oa = 0,
        ob = 0;
      for (let d = 0; d < idx.length; d++) {
        oa += idx[d] * sa[d];
        ob += idx[d] * sb[d];
      }
      gemmBatched({ transA, transB, m, n, k, a: A, aOffset: oa, b: B, bOffset: ob, c: C, cOffset: bi * m * n });
      for (let d = idx.length - 1; d >= 0; d--) {
        if (++idx[d] < batchShape[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  }

  transpose(x: TensorInfo, perm: readonly number[]): Buffer {
    const st = stridesOf(x.shape);
    const outShape = perm.map((p) => x.shape[p]);
    const out = allocArray(x.dtype, sizeOf(outShape));
    stridedCopy(
      arr(x),
      0,
      perm.map((p) => st[p]),
      out,
      outShape,
    );
    return out;
  }

  broadcastTo(x: TensorInfo, shape: Shape): Buffer {
    const out = allocArray(x.dtype, sizeOf(shape));
    stridedCopy(arr(x), 0, broadcastStrides(x.shape, shape), out, shape);
    return out;
  }

  slice(x: TensorInfo, begin: readonly number[], size: readonly number[], step: readonly number[]): Buffer {
    const st = stridesOf(x.shape);
    let off = 0;
    for (let i = 0; i < begin.length; i++) off += begin[i] * st[i];
    const out = allocArray(x.dtype, sizeOf(size));
    stridedCopy(
      arr(x),
      off,
      st.map((s, i) => s * step[i]),
      out,
      size,
    );
    return out;
  }

  pad(x: TensorInfo, outShape: Shape, begin: readonly number[], step: readonly number[]): Buffer {
    const st = stridesOf(outShape);
    let off = 0;
    for (let i = 0; i < begin.length; i++) off += begin[i] * st[i];
    const out = allocArray(x.dtype, sizeOf(outShape));
    stridedWrite(
      arr(x),
      x.shape,
      out,
      off,
      st.map((s, i) => s * step[i]),
    );
    return out;
  }

  concat(xs: TensorInfo[], axis: number, outShape: Shape): Buffer {
    const out = allocArray(xs[0].dtype, sizeOf(outShape));
    const outer = sizeOf(outShape.slice(0, axis));
    const inner = sizeOf(outShape.slice(axis + 1));
    const rowOut = outShape[axis] * inner;
    let col = 0;
    for (const x of xs) {
      const src = arr(x);
      const w = x.shape[axis] * inner;
      for (let o = 0; o < outer; o++) out.set(src.subarray(o * w, (o + 1) * w), o * rowOut + col);
      col += w;
    }
    return out;
  }

  gather(x: TensorInfo, indices: TensorInfo, axis: number): Buffer {
    const src = arr(x),
      idx = arr(indices);
    const outer = sizeOf(x.shape.slice(0, axis));
    const A = x.shape[axis];
    const inner = sizeOf(x.shape.slice(axis + 1));
    const nI = idx.length;
    const out = allocArray(x.dtype, outer * nI * inner);
    for (let j = 0; j < nI; j++) checkIndex("take", idx[j], A, x.shape, axis);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < nI; j++) {
        const s = (o * A + idx[j]) * inner,
          d = (o * nI + j) * inner;
        if (inner === 1) out[d] = src[s];
        else out.set(src.subarray(s, s + inner), d);
      }
    }
    return out;
  }

  scatterAdd(updates: TensorInfo, indices: TensorInfo, axis: number, outShape: Shape): Buffer {
    const src = arr(updates),
      idx = arr(indices);
    const outer = sizeOf(outShape.slice(0, axis));
    const A = outShape[axis];
    const inner = sizeOf(outShape.slice(axis + 1));
    const nI = idx.length;
    const out = allocArray(updates.dtype, sizeOf(outShape));
    for (let j = 0; j < nI; j++) checkIndex("scatterAdd", idx[j], A, outShape, axis);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < nI; j++) {
        const d = (o * A + idx[j]) * inner,
          s = (o * nI + j) * inner;
        for (let i = 0; i < inner; i++) out[d + i] += src[s + i];
      }
    }
    return out;
  }

  softmax(x: TensorInfo, log: boolean): Buffer {
    const { rows, cols } = lastAxisRows(x.shape);
    const out = allocArray(x.dtype, sizeOf(x.shape)) as Float32Array | Float64Array;
    softmaxRows(arr(x) as Float32Array | Float64Array, out, rows, cols, log);
    return out;
  }

  crossEntropy(logits: TensorInfo, targets: TensorInfo, ignoreIndex: number): { loss: Buffer; lse: Buffer } {
    const [rows, cols] = logits.shape;
    const loss = allocArray(logits.dtype, rows) as Float32Array | Float64Array;
    const lse = allocArray(logits.dtype, rows) as Float32Array | Float64Array;
    // targets were validated by the op; the row kernel keeps its own bounds assert (WebAssembly memory)
    crossEntropyRows(arr(logits) as Float32Array | Float64Array, arr(targets) as Int32Array, rows, cols, ignoreIndex, loss, lse);
    return { loss, lse };
  }

  crossEntropyBackward(logits: TensorInfo, targets: TensorInfo, lse: TensorInfo, g: TensorInfo, ignoreIndex: number): Buffer {
    const [rows, cols] = logits.shape;
    const out = allocArray(logits.dtype, rows * cols) as Float32Array | Float64Array;
    crossEntropyBackwardRows(
      arr(logits) as Float32Array | Float64Array,
      arr(targets) as Int32Array,
      arr(lse) as Float32Array | Float64Array,
      arr(g) as Float32Array | Float64Array,
      out,
      rows,
      cols,
      ignoreIndex,
    );
    return out;
  }

  layerNorm(x: TensorInfo, gamma: TensorInfo | null, beta: TensorInfo | null, eps: number): { y: Buffer; mean: Buffer; rstd: Buffer } {
    const { rows, cols } = lastAxisRows(x.shape);
    const y = allocArray(x.dtype, sizeOf(x.shape)) as F;
    const mean = allocArray(x.dtype, rows) as F;
    const rstd = allocArray(x.dtype, rows) as F;
    layerNormRows(arr(x) as F, gamma ? (arr(gamma) as F) : null, beta ? (arr(beta) as F) : null, y, mean, rstd, rows, cols, eps);
    return { y, mean, rstd };
  }

  layerNormBackward(
    x: TensorInfo,
    gamma: TensorInfo | null,
    mean: TensorInfo,
    rstd: TensorInfo,
    dy: TensorInfo,
    withParams: boolean,
  ): { dx: Buffer; dgamma: Buffer | null; dbeta: Buffer | null } {
    const { rows, cols } = lastAxisRows(x.shape);
    const dx = allocArray(x.dtype, sizeOf(x.shape)) as F;
    const dgamma = withParams ? (allocArray(x.dtype, cols) as F) : null;
    const dbeta = withParams ? (allocArray(x.dtype, cols) as F) : null;
    layerNormBackwardRows(
      arr(x) as F,
      gamma ? (arr(gamma) as F) : null,
      arr(mean) as F,
      arr(rstd) as F,
      arr(dy) as F,
      dx,
      dgamma,
      dbeta,
      rows,
      cols,
    );
    return { dx, dgamma, dbeta };
  }

  linearCrossEntropy(x: TensorInfo, w: TensorInfo, targets: TensorInfo, ignoreIndex: number): { loss: Buffer; lse: Buffer } {
    const [n, e] = x.shape;
    const v = w.shape[0];
    const loss = allocArray(x.dtype, n) as F;
    const lse = allocArray(x.dtype, n) as F;
    linearCrossEntropyRows(arr(x) as F, arr(w) as F, arr(targets) as Int32Array, n, e, v, ignoreIndex, loss, lse);
    return { loss, lse };
  }

  linearCrossEntropyBackward(
    x: TensorInfo,
    w: TensorInfo,
    targets: TensorInfo,
    lse: TensorInfo,
    g: TensorInfo,
    ignoreIndex: number,
  ): { dx: Buffer; dw: Buffer } {
    const [n, e] = x.shape;
    const v = w.shape[0];
    const dx = allocArray(x.dtype, n * e) as F;
    const dw = allocArray(x.dtype, v * e) as F;
    linearCrossEntropyBackwardRows(
      arr(x) as F,
      arr(w) as F,
      arr(targets) as Int32Array,
      arr(lse) as F,
      arr(g) as F,
      dx,
      dw,
      n,
      e,
      v,
      ignoreIndex,
    );
    return { dx, dw };
  }

  linearCrossEntropyWithGrad(
    x: TensorInfo,
    w: TensorInfo,
    targets: TensorInfo,
    ignoreIndex: number,
  ): { loss: Buffer; lse: Buffer; dx: Buffer; dw: Buffer } {
    const [n, e] = x.shape;
    const v = w.shape[0];
    const loss = allocArray(x.dtype, n) as F,
      lse = allocArray(x.dtype, n) as F;
    const dx = allocArray(x.dtype, n * e) as F,
      dw = allocArray(x.dtype, v * e) as F;
    linearCrossEntropyWithGradRows(arr(x) as F, arr(w) as F, arr(targets) as Int32Array, n, e, v, ignoreIndex, loss, lse, dx, dw);
    return { loss, lse, dx, dw };
  }

  geluBackward(x: TensorInfo, dy: TensorInfo): Buffer {
    const dx = allocArray(x.dtype, sizeOf(x.shape)) as F;
    geluTanhBackward(arr(x) as F, arr(dy) as F, dx, dx.length);
    return dx;
  }

  dropout(x: TensorInfo, k0: number, k1: number, rate: number): Buffer {
    const out = allocArray(x.dtype, sizeOf(x.shape)) as F;
    // float32: the WebAssembly SIMD pass (unless the portable kernels are forced); float64: the JavaScript pass
    if (out instanceof Float32Array) dropoutF32(arr(x) as Float32Array, out, k0, k1, rate, activeRuntime() === null);
    else dropoutInto(arr(x) as F, out, k0, k1, rate, 1 / (1 - rate));
    return out;
  }
}

function checkIndex(op: string, i: number, n: number, shape: Shape, axis: number): void {
  if (!(i >= 0 && i < n)) {
    throw new Error(`${op}: index ${i} is out of range for axis ${axis} of size ${n} (shape ${fmt(shape)}); expected 0 <= index < ${n}`);
  }
}

function uniformStride(strides: number[], batchShape: readonly number[]): number | null {
  // A batch whose strides are the contiguous strides of batchShape times a constant, or all zero.
  if (strides.every((s) => s === 0)) return 0;
  const unit = strides[strides.length - 1];
  let expect = unit;
  for (let d = strides.length - 1; d >= 0; d--) {
    if (strides[d] !== expect) return null;
    expect *= batchShape[d];
  }
  return unit;
}

function reduceRun(op: ReduceOp, x: TypedArray, out: TypedArray, outer: number, R: number, inner: number): void {
  if (inner === 1) {
    for (let o = 0; o < outer; o++) {
      const base = o * R;
      let acc = op === "sum" ? 0 : op === "max" ? -Infinity : Infinity;
      if (op === "sum") for (let r = 0; r < R; r++) acc += x[base + r];
      else if (op === "max")
        for (let r = 0; r < R; r++) {
          const v = x[base + r];
          if (v > acc || v !== v) acc = v;
        }
      else
        for (let r = 0; r < R; r++) {
          const v = x[base + r];
          if (v < acc || v !== v) acc = v;
        }
      out[o] = acc;
    }
    return;
  }
  // accumulate in float64 for float32 sums over long runs
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    acc.fill(op === "sum" ? 0 : op === "max" ? -Infinity : Infinity);
    for (let r = 0; r < R; r++) {
      const base = (o * R + r) * inner;
      if (op === "sum") for (let i = 0; i < inner; i++) acc[i] += x[base + i];
      else if (op === "max")
        for (let i = 0; i < inner; i++) {
          const v = x[base + i];
          if (v > acc[i] || v !== v) acc[i] = v;
        }
      else
        for (let i = 0; i < inner; i++) {
          const v = x[base + i];
          if (v < acc[i] || v !== v) acc[i] = v;
        }
    }
    for (let i = 0; i < inner; i++) out[o * inner + i] = acc[i];
  }
}
