import type { Buffer, ReduceOp } from "../backend/backend.js";
import type { DType } from "../dtype.js";
import { fmt, reducedShape, type Shape } from "../shape.js";
import { Tensor } from "../tensor.js";

/** Internal: wraps a kernel result as a tensor on the backend of `like`. */
export function wrap(buf: Buffer, shape: Shape, dtype: DType, like: Tensor): Tensor {
  return new Tensor(buf, shape, dtype, like._backend);
}

/** Internal: checks that tensors share one backend and one dtype. */
export function sameDType(op: string, ...xs: Tensor[]): DType {
  const d = xs[0].dtype;
  for (const x of xs) {
    if (x._backend !== xs[0]._backend)
      throw new Error(`${op}: operands live on different backends (${xs[0]._backend.name} and ${x._backend.name}); expected one backend`);
    if (x.dtype !== d) {
      throw new Error(
        `${op}: dtype mismatch: ${xs.map((t) => `${t.dtype} ${fmt(t.shape)}`).join(" and ")}; expected operands of one dtype (use cast)`,
      );
    }
  }
  return d;
}

/** Internal: requires a floating-point dtype. */
export function requireFloat(op: string, x: Tensor): void {
  if (x.dtype !== "float32" && x.dtype !== "float64")
    throw new Error(`${op}: got a ${x.dtype} tensor ${fmt(x.shape)}; expected float32 or float64`);
}

/** Internal: the backend reduction over normalised axes, shaped with or without the reduced axes. */
export function reduceRaw(op: ReduceOp, x: Tensor, axes: number[], keepdims: boolean): Tensor {
  const outShape = reducedShape(x.shape, axes, keepdims);
  return wrap(x._backend.reduce(op, x.info, axes), outShape, x.dtype, x);
}
