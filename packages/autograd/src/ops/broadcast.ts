/**
 * `sum` and `broadcastTo`, each the other's adjoint (so they live together), and `sumToShape`, the adjoint of
 * broadcasting that every broadcasting op's rule uses.
 */
import { record } from "../autodiff/engine.js";
import { broadcastShapes, fmt, normAxes, reducedShape, shapesEqual, type Shape } from "../shape.js";
import type { Tensor } from "../tensor.js";
import { reshape } from "./shape-ops.js";
import { reduceRaw, wrap } from "./util.js";

/** Options for reductions. */
export interface ReduceOptions {
  keepdims?: boolean;
}

/** Axes argument of the reductions: one axis, a list, or all (null / undefined). */
export type Axes = number | readonly number[] | null | undefined;

/** Sum over axes (all by default). */
export function sum(x: Tensor, axes?: Axes, opts: ReduceOptions = {}): Tensor {
  const ax = normAxes("sum", axes, x.rank);
  const keep = opts.keepdims ?? false;
  if (ax.length === 0) return x;
  const y = reduceRaw("sum", x, ax, keep);
  const kept = reducedShape(x.shape, ax, true);
  return record(y, [x], {
    name: "sum",
    vjp: (g) => [broadcastTo(reshape(g, kept), x.shape)],
    jvp: ([t]) => (t ? sum(t, ax, { keepdims: keep }) : null),
  });
}

/** Broadcasts x to `shape` (NumPy rules), materialising the result. */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const out = broadcastShapes("broadcastTo", x.shape, shape);
  if (!shapesEqual(out, shape)) throw new Error(`broadcastTo: cannot broadcast ${fmt(x.shape)} to ${fmt(shape)}`);
  if (shapesEqual(x.shape, shape)) return x;
  const y = wrap(x._backend.broadcastTo(x.info, shape), shape, x.dtype, x);
  return record(y, [x], { name: "broadcastTo", vjp: (g) => [sumToShape(g, x.shape)], jvp: ([t]) => (t ? broadcastTo(t, shape) : null) });
}

/** Sums a broadcast result back to `shape` (the adjoint of broadcasting). */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const s = axes.length ? sum(g, axes) : g;
  return reshape(s, shape);
}
