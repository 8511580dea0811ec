import ndarray from "ndarray";
import type { NdArray } from "ndarray";
import { getBackend } from "./backend/registry.js";
import { dtypeOfArray, type TypedArray } from "./dtype.js";
import { stridesOf } from "./shape.js";
import { Tensor } from "./tensor.js";

/**
 * Converts an `ndarray` to a tensor. A C-contiguous float32/float64/int32 ndarray (offset 0 or any offset, dense
 * row-major strides) shares its memory with the tensor; other layouts are copied.
 */
export function fromNdarray(a: NdArray): Tensor {
  const shape = [...a.shape];
  const data = a.data as unknown;
  const ok = data instanceof Float32Array || data instanceof Float64Array || data instanceof Int32Array || data instanceof Uint8Array;
  if (!ok)
    throw new Error(
      `fromNdarray: ndarray data is ${Object.prototype.toString.call(data)}; expected a Float32Array, Float64Array, Int32Array or Uint8Array`,
    );
  const arr = data as TypedArray;
  const dense = stridesOf(shape);
  const size = shape.reduce((p, d) => p * d, 1);
  const be = getBackend();
  const dtype = dtypeOfArray(arr);
  if (a.stride.every((s, i) => s === dense[i] || shape[i] === 1)) {
    const view = arr.subarray(a.offset, a.offset + size) as TypedArray;
    return new Tensor(be.fromArray(view, dtype), shape, dtype, be);
  }
  const out = new (arr.constructor as { new (n: number): TypedArray })(size);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < size; i++) {
    let p = a.offset;
    for (let d = 0; d < shape.length; d++) p += idx[d] * a.stride[d];
    out[i] = arr[p];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return new Tensor(be.fromArray(out, dtype), shape, dtype, be);
}

/** Wraps a tensor's data as an `ndarray` (sharing memory on the CPU backend). */
export function toNdarray(t: Tensor): NdArray {
  const d = t.data();
  return ndarray(d as Float32Array, [...t.shape], stridesOf(t.shape), 0);
}
