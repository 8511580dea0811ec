import { getBackend } from "../backend/registry.js";
import { allocArray, checkDType, dtypeOfArray, type DType, type TypedArray } from "../dtype.js";
import { checkShape, fmt, sizeOf } from "../shape.js";
import { Tensor, type ArrayData, type NestedArray, type TensorLike } from "../tensor.js";

/** Options for creating a tensor. */
export interface CreateOptions {
  dtype?: DType;
  shape?: readonly number[];
}

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let cur: NestedArray = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as NestedArray;
  }
  return shape;
}

function flattenNested(op: string, data: NestedArray, shape: number[], out: TypedArray): void {
  let k = 0;
  const walk = (x: NestedArray, axis: number) => {
    if (axis === shape.length) {
      if (typeof x !== "number" && typeof x !== "boolean")
        throw new Error(`${op}: ragged or non-numeric nested array; expected a rectangular array of numbers with shape ${fmt(shape)}`);
      out[k++] = Number(x);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[axis])
      throw new Error(`${op}: ragged nested array at axis ${axis}; expected length ${shape[axis]} (shape ${fmt(shape)})`);
    for (const v of x) walk(v, axis + 1);
  };
  walk(data, 0);
}

/** Creates a tensor from nested arrays, a flat array or a typed array (typed arrays are used without copying). */
export function tensor(data: ArrayData, opts: CreateOptions = {}): Tensor {
  const be = getBackend();
  const dtype = opts.dtype ? checkDType("tensor", opts.dtype) : ArrayBuffer.isView(data) ? dtypeOfArray(data as TypedArray) : "float32";
  let arr: TypedArray;
  let shape: number[];
  if (ArrayBuffer.isView(data)) {
    const src = data as TypedArray;
    shape = opts.shape ? checkShape("tensor", opts.shape) : [src.length];
    if (sizeOf(shape) !== src.length)
      throw new Error(`tensor: ${src.length} values do not fill shape ${fmt(shape)} (${sizeOf(shape)} elements)`);
    if (dtypeOfArray(src) === dtype) arr = src;
    else {
      arr = allocArray(dtype, src.length);
      arr.set(src as ArrayLike<number>);
    }
  } else {
    const inferred = typeof data === "number" ? [] : inferShape(data as NestedArray);
    const n = sizeOf(inferred);
    arr = allocArray(dtype, n);
    flattenNested("tensor", data as NestedArray, inferred, arr);
    shape = inferred;
    if (opts.shape) {
      const s = checkShape("tensor", opts.shape);
      if (sizeOf(s) !== n) throw new Error(`tensor: ${n} values do not fill shape ${fmt(s)} (${sizeOf(s)} elements)`);
      shape = s;
    }
  }
  return new Tensor(be.fromArray(arr, dtype), shape, dtype, be);
}

/** A 0-d tensor. */
export function scalar(value: number, dtype: DType = "float32"): Tensor {
  return full([], value, dtype);
}

/** A tensor filled with `value`. */
export function full(shape: readonly number[], value: number, dtype: DType = "float32"): Tensor {
  const be = getBackend();
  const s = checkShape("full", shape);
  return new Tensor(be.fill(checkDType("full", dtype), sizeOf(s), value), s, dtype, be);
}

/** A tensor of zeros. */
export function zeros(shape: readonly number[], dtype: DType = "float32"): Tensor {
  return full(shape, 0, dtype);
}

/** A tensor of ones. */
export function ones(shape: readonly number[], dtype: DType = "float32"): Tensor {
  return full(shape, 1, dtype);
}

/** Zeros with the shape and dtype of `x`. */
export function zerosLike(x: Tensor): Tensor {
  return full(x.shape, 0, x.dtype);
}

/** Ones with the shape and dtype of `x`. */
export function onesLike(x: Tensor): Tensor {
  return full(x.shape, 1, x.dtype);
}

/** Values start, start+step, … below stop (like NumPy's arange). */
export function arange(start: number, stop?: number, step = 1, dtype: DType = "int32"): Tensor {
  if (stop === undefined) {
    stop = start;
    start = 0;
  }
  if (step === 0) throw new Error("arange: step is 0; expected a non-zero step");
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const arr = allocArray(dtype, n);
  for (let i = 0; i < n; i++) arr[i] = start + i * step;
  return tensor(arr, { dtype, shape: [n] });
}

/** `num` evenly spaced values from start to stop inclusive. */
export function linspace(start: number, stop: number, num: number, dtype: DType = "float32"): Tensor {
  if (!Number.isInteger(num) || num < 0) throw new Error(`linspace: num ${num} is invalid; expected a non-negative integer`);
  const arr = allocArray(dtype, num);
  for (let i = 0; i < num; i++) arr[i] = num === 1 ? start : start + ((stop - start) * i) / (num - 1);
  return tensor(arr, { dtype, shape: [num] });
}

/** The n×m identity matrix. */
export function eye(n: number, m: number = n, dtype: DType = "float32"): Tensor {
  const arr = allocArray(dtype, n * m);
  for (let i = 0; i < Math.min(n, m); i++) arr[i * m + i] = 1;
  return tensor(arr, { dtype, shape: [n, m] });
}

/** Internal: turns a number into a scalar tensor matching `like`. */
export function asTensor(x: TensorLike, like: Tensor): Tensor {
  if (typeof x !== "number") return x;
  const dtype = like.dtype === "bool" ? "float32" : like.dtype;
  return new Tensor(like._backend.fill(dtype, 1, x), [], dtype, like._backend);
}
