import { record } from "../autodiff/engine.js";
import { normAxes, reducedShape, sizeOf } from "../shape.js";
import { Tensor } from "../tensor.js";
import { sum, type Axes, type ReduceOptions } from "./broadcast.js";
import { add, div, eq, exp, log, mul, sub } from "./elementwise.js";
import { cast, reshape, stopGradient } from "./shape-ops.js";
import { reduceRaw, requireFloat } from "./util.js";

export { sum };

export type { ReduceOptions };

/** Mean over axes (all by default). */
export function mean(x: Tensor, axes?: Axes, opts: ReduceOptions = {}): Tensor {
  requireFloat("mean", x);
  const ax = normAxes("mean", axes, x.rank);
  const n = sizeOf(ax.map((a) => x.shape[a]));
  return div(sum(x, ax, opts), n);
}

function extremum(op: "max" | "min", x: Tensor, axes: Axes, opts: ReduceOptions): Tensor {
  const ax = normAxes(op, axes, x.rank);
  const keep = opts.keepdims ?? false;
  if (ax.length === 0) return x;
  if (x.size === 0) throw new Error(`${op}: tensor of shape [${x.shape.join(", ")}] is empty; expected at least one element`);
  const y = reduceRaw(op, x, ax, keep);
  const kept = reducedShape(x.shape, ax, true);
  // Gradient is shared equally between tied extrema.
  const weights = () => {
    const mask = cast(eq(x, reshape(y, kept)), x.dtype);
    return div(mask, sum(mask, ax, { keepdims: true }));
  };
  return record(y, [x], {
    name: op,
    vjp: (g) => [mul(reshape(g, kept), weights())],
    jvp: ([t]) => (t ? sum(mul(t, weights()), ax, { keepdims: keep }) : null),
  });
}

/** Maximum over axes (all by default). */
export function max(x: Tensor, axes?: Axes, opts: ReduceOptions = {}): Tensor {
  return extremum("max", x, axes, opts);
}

/** Minimum over axes (all by default). */
export function min(x: Tensor, axes?: Axes, opts: ReduceOptions = {}): Tensor {
  return extremum("min", x, axes, opts);
}

/** Variance over axes (population variance by default; `ddof` 1 for the sample variance). */
export function variance(x: Tensor, axes?: Axes, opts: ReduceOptions & { ddof?: number } = {}): Tensor {
  requireFloat("var", x);
  const ax = normAxes("var", axes, x.rank);
  const n = sizeOf(ax.map((a) => x.shape[a]));
  const m = mean(x, ax, { keepdims: true });
  const d = sub(x, m);
  return div(sum(mul(d, d), ax, { keepdims: opts.keepdims }), n - (opts.ddof ?? 0));
}

/** log Σ exp(x) over axes, computed stably (finite for large magnitudes). */
export function logsumexp(x: Tensor, axes?: Axes, opts: ReduceOptions = {}): Tensor {
  requireFloat("logsumexp", x);
  const ax = normAxes("logsumexp", axes, x.rank);
  const m = stopGradient(max(x, ax, { keepdims: true }));
  const s = log(sum(exp(sub(x, m)), ax, { keepdims: true }));
  const out = add(s, m);
  return opts.keepdims ? out : reshape(out, reducedShape(x.shape, ax, false));
}
