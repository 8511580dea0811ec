/**
 * Indexing along an axis: `take` (gather) and `scatterAdd`, each other's adjoints.
 */
import { record } from "../autodiff/engine.js";
import { fmt, normAxis, shapesEqual, type Shape } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { add } from "./elementwise.js";
import { reshape } from "./shape-ops.js";
import { sameDType, wrap } from "./util.js";

function checkIndices(op: string, indices: Tensor): void {
  if (indices.dtype !== "int32") throw new Error(`${op}: indices have dtype ${indices.dtype} ${fmt(indices.shape)}; expected int32`);
}

/** Gathers slices along `axis` at int32 `indices` (any shape): out.shape = x.shape[:axis] + indices.shape + x.shape[axis+1:]. */
export function take(x: Tensor, indices: Tensor, axis = 0): Tensor {
  checkIndices("take", indices);
  const a = normAxis("take", axis, x.rank);
  const outShape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  const flatIdx = indices.rank === 1 ? indices : reshape(indices, [indices.size]);
  const y = wrap(x._backend.gather(x.info, flatIdx.info, a), outShape, x.dtype, x);
  return record(y, [x], {
    name: "take",
    vjp: (g) => [scatterAddRaw(g, indices, a, x.shape)],
    jvp: ([t]) => (t ? take(t, indices, a) : null),
  });
}

/** Alias of take. */
export const gather = take;

function scatterAddRaw(updates: Tensor, indices: Tensor, axis: number, outShape: Shape): Tensor {
  const flatIdx = indices.rank === 1 ? indices : reshape(indices, [indices.size]);
  const expect = [...outShape.slice(0, axis), ...indices.shape, ...outShape.slice(axis + 1)];
  if (!shapesEqual(updates.shape, expect)) {
    throw new Error(
      `scatterAdd: updates have shape ${fmt(updates.shape)}; expected ${fmt(expect)} for indices ${fmt(indices.shape)} along axis ${axis} of ${fmt(outShape)}`,
    );
  }
  const y = wrap(updates._backend.scatterAdd(updates.info, flatIdx.info, axis, outShape), outShape, updates.dtype, updates);
  return record(y, [updates], {
    name: "scatterAdd",
    vjp: (g) => [take(g, indices, axis)],
    jvp: ([t]) => (t ? scatterAddRaw(t, indices, axis, outShape) : null),
  });
}

/** Returns `base` with `updates` added at `indices` along `axis` (repeated indices accumulate). */
export function scatterAdd(base: Tensor, indices: Tensor, updates: Tensor, axis = 0): Tensor {
  checkIndices("scatterAdd", indices);
  const a = normAxis("scatterAdd", axis, base.rank);
  sameDType("scatterAdd", base, updates);
  return add(base, scatterAddRaw(updates, indices, a, base.shape));
}
