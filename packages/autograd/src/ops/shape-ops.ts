import { detached, record, tracked } from "../autodiff/engine.js";
import { checkDType, type DType } from "../dtype.js";
import { fmt, normAxis, normAxes, shapesEqual, sizeOf, type Shape } from "../shape.js";
import { Tensor } from "../tensor.js";
import { sameDType, wrap } from "./util.js";

/** New shape for the same elements (a view: the buffer is shared). One axis may be −1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) {
    const known = sizeOf(s.filter((_, i) => i !== neg));
    if (known === 0 || x.size % known !== 0)
      throw new Error(`reshape: cannot infer the −1 axis of ${fmt(shape)} for ${x.size} elements (input ${fmt(x.shape)})`);
    s[neg] = x.size / known;
  }
  if (s.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(s) !== x.size) {
    throw new Error(`reshape: cannot reshape ${fmt(x.shape)} (${x.size} elements) to ${fmt(shape)}; expected the same number of elements`);
  }
  if (shapesEqual(s, x.shape)) return x;
  const y = wrap(x._buf, s, x.dtype, x);
  return record(y, [x], { name: "reshape", vjp: (g) => [reshape(g, x.shape)], jvp: ([t]) => (t ? reshape(t, s) : null) });
}

/** Permutes axes (default: reverses them). */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const r = x.rank;
  const p = perm ? perm.map((a) => normAxis("transpose", a, r)) : Array.from({ length: r }, (_, i) => r - 1 - i);
  if (p.length !== r || new Set(p).size !== r)
    throw new Error(`transpose: perm [${perm?.join(", ")}] is not a permutation of the ${r} axes of ${fmt(x.shape)}`);
  if (p.every((a, i) => a === i)) return x;
  const outShape = p.map((a) => x.shape[a]);
  const y = wrap(x._backend.transpose(x.info, p), outShape, x.dtype, x);
  const inv = new Array<number>(r);
  p.forEach((a, i) => (inv[a] = i));
  return record(y, [x], { name: "transpose", vjp: (g) => [transpose(g, inv)], jvp: ([t]) => (t ? transpose(t, p) : null) });
}

/** Alias of transpose with an explicit permutation. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  return transpose(x, perm);
}

/** Swaps the last two axes. */
export function mT(x: Tensor): Tensor {
  const r = x.rank;
  if (r < 2) throw new Error(`mT: tensor ${fmt(x.shape)} has rank ${r}; expected rank >= 2`);
  const p = Array.from({ length: r }, (_, i) => i);
  [p[r - 2], p[r - 1]] = [p[r - 1], p[r - 2]];
  return transpose(x, p);
}

/** Inserts a size-1 axis at `axis` (a view). */
export function expandDims(x: Tensor, axis: number): Tensor {
  const a = normAxis("expandDims", axis, x.rank + 1);
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

/** Removes size-1 axes (all of them, or those listed) (a view). */
export function squeeze(x: Tensor, axes?: number | readonly number[]): Tensor {
  const ax = axes === undefined ? x.shape.flatMap((d, i) => (d === 1 ? [i] : [])) : normAxes("squeeze", axes, x.rank);
  for (const a of ax)
    if (x.shape[a] !== 1) throw new Error(`squeeze: axis ${a} of ${fmt(x.shape)} has size ${x.shape[a]}; expected size 1`);
  return reshape(
    x,
    x.shape.filter((_, i) => !ax.includes(i)),
  );
}

function sliceRaw(x: Tensor, begin: number[], size: number[], step: number[]): Tensor {
  const y = wrap(x._backend.slice(x.info, begin, size, step), size, x.dtype, x);
  return record(y, [x], {
    name: "slice",
    vjp: (g) => [padRaw(g, x.shape, begin, step)],
    jvp: ([t]) => (t ? sliceRaw(t, begin, size, step) : null),
  });
}

function padRaw(x: Tensor, outShape: Shape, begin: number[], step: number[]): Tensor {
  const y = wrap(x._backend.pad(x.info, outShape, begin, step), outShape, x.dtype, x);
  return record(y, [x], {
    name: "pad",
    vjp: (g) => [sliceRaw(g, begin, [...x.shape], step)],
    jvp: ([t]) => (t ? padRaw(t, outShape, begin, step) : null),
  });
}

/**
 * Python-style slicing per axis: `begin` and `end` (exclusive) may be negative (counted from the end) and are
 * clipped; `step` > 0. Missing trailing axes are taken whole.
 */
export function slice(x: Tensor, begin: readonly number[], end?: readonly (number | null)[], step?: readonly number[]): Tensor {
  const r = x.rank;
  if (begin.length > r || (end && end.length > r) || (step && step.length > r)) {
    throw new Error(`slice: got ${begin.length} begin values for a tensor of rank ${r} (${fmt(x.shape)}); expected at most ${r}`);
  }
  const b: number[] = [],
    size: number[] = [],
    st: number[] = [];
  for (let i = 0; i < r; i++) {
    const n = x.shape[i];
    const s = step?.[i] ?? 1;
    if (!Number.isInteger(s) || s <= 0) throw new Error(`slice: step ${s} on axis ${i} is invalid; expected a positive integer`);
    let lo = begin[i] ?? 0;
    let hi = end?.[i] ?? n;
    if (lo < 0) lo += n;
    if (hi < 0) hi += n;
    lo = Math.min(Math.max(lo, 0), n);
    hi = Math.min(Math.max(hi, lo), n);
    b.push(lo);
    st.push(s);
    size.push(Math.ceil((hi - lo) / s));
  }
  if (size.every((d, i) => d === x.shape[i])) return x;
  return sliceRaw(x, b, size, st);
}

/** Joins tensors along an existing axis. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error("concat: got no tensors; expected at least one");
  sameDType("concat", ...xs);
  const r = xs[0].rank;
  const a = normAxis("concat", axis, r);
  for (const x of xs) {
    if (x.rank !== r || x.shape.some((d, i) => i !== a && d !== xs[0].shape[i])) {
      throw new Error(
        `concat: shapes ${xs.map((t) => fmt(t.shape)).join(", ")} differ off axis ${a}; expected equal sizes except on the concat axis`,
      );
    }
  }
  if (xs.length === 1) return xs[0];
  const outShape = [...xs[0].shape];
  outShape[a] = xs.reduce((s, x) => s + x.shape[a], 0);
  const y = wrap(
    xs[0]._backend.concat(
      xs.map((x) => x.info),
      a,
      outShape,
    ),
    outShape,
    xs[0].dtype,
    xs[0],
  );
  const offsets: number[] = [];
  let acc = 0;
  for (const x of xs) {
    offsets.push(acc);
    acc += x.shape[a];
  }
  return record(y, [...xs], {
    name: "concat",
    vjp: (g) =>
      xs.map((x, i) => {
        if (!tracked(x)) return null;
        const b = new Array<number>(r).fill(0);
        b[a] = offsets[i];
        return sliceRaw(g, b, [...x.shape], new Array<number>(r).fill(1));
      }),
    jvp: (ts) =>
      concat(
        ts.map((t, i) => t ?? zerosOf(xs[i])),
        a,
      ),
  });
}

function zerosOf(x: Tensor): Tensor {
  return wrap(x._backend.zeros(x.dtype, x.size), x.shape, x.dtype, x);
}

/** Stacks equally shaped tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error("stack: got no tensors; expected at least one");
  for (const x of xs) {
    if (!shapesEqual(x.shape, xs[0].shape))
      throw new Error(`stack: shapes ${xs.map((t) => fmt(t.shape)).join(", ")} differ; expected equal shapes`);
  }
  const a = normAxis("stack", axis, xs[0].rank + 1);
  return concat(
    xs.map((x) => expandDims(x, a)),
    a,
  );
}

/** Splits along an axis into `sections` equal parts, or at the given sizes (an array of part sizes). */
export function split(x: Tensor, sections: number | readonly number[], axis = 0): Tensor[] {
  const a = normAxis("split", axis, x.rank);
  const n = x.shape[a];
  let sizes: number[];
  if (typeof sections === "number") {
    if (!Number.isInteger(sections) || sections <= 0 || n % sections !== 0)
      throw new Error(`split: axis ${a} of size ${n} cannot be split into ${sections} equal parts`);
    sizes = new Array<number>(sections).fill(n / sections);
  } else {
    sizes = [...sections];
    if (sizes.reduce((s, v) => s + v, 0) !== n)
      throw new Error(`split: sizes [${sizes.join(", ")}] do not add up to ${n}, the size of axis ${a} of ${fmt(x.shape)}`);
  }
  const out: Tensor[] = [];
  let off = 0;
  for (const s of sizes) {
    const b = new Array<number>(x.rank).fill(0);
    const e: (number | null)[] = new Array<number | null>(x.rank).fill(null);
    b[a] = off;
    e[a] = off + s;
    out.push(slice(x, b, e));
    off += s;
  }
  return out;
}

/** Converts to another dtype (differentiable between float dtypes). */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkDType("cast", dtype);
  if (x.dtype === dtype) return x;
  const y = wrap(x._backend.cast(x.info, dtype), x.shape, dtype, x);
  const floats = (d: DType) => d === "float32" || d === "float64";
  if (!floats(x.dtype) || !floats(dtype)) return y;
  return record(y, [x], { name: "cast", vjp: (g) => [cast(g, x.dtype)], jvp: ([t]) => (t ? cast(t, dtype) : null) });
}

/** The same values with no gradient flowing back (and zero tangent). */
export function stopGradient(x: Tensor): Tensor {
  return detached(x);
}
