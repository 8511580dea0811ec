/**
 * Shapes, broadcasting and axes — the one place where these rules live.
 *
 * Layout: every tensor is a dense, contiguous, row-major (C-order) buffer. `reshape`, `expandDims` and
 * `squeeze` are views that share the buffer; every other shape op (transpose, slice, broadcastTo, concat …)
 * writes a new contiguous buffer. Strides are therefore always the row-major strides of the shape and are
 * never stored. Broadcasting follows NumPy: shapes are aligned at the trailing axis; two sizes are compatible
 * when equal or when one of them is 1; missing leading axes count as 1.
 */
export type Shape = readonly number[];

/** Number of elements of a shape. */
export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a shape (in elements). */
export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Broadcast strides of `shape` against `outShape` (0 on broadcast axes). */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const st = stridesOf(shape);
  const out = new Array<number>(outShape.length).fill(0);
  const off = outShape.length - shape.length;
  for (let i = 0; i < shape.length; i++) out[off + i] = shape[i] === 1 ? 0 : st[i];
  return out;
}

/** Formats a shape as `[2, 3]` for error messages. */
export function fmt(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/** Whether two shapes are equal. */
export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The broadcast shape of several shapes, or an error naming the op and the shapes. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i];
      if (out[o] === 1) out[o] = d;
      else if (d !== 1 && d !== out[o]) {
        throw new Error(
          `${op}: shapes ${shapes.map(fmt).join(" and ")} cannot be broadcast together ` +
            `(axis ${o - rank} has sizes ${out[o]} and ${d}; expected equal sizes or 1)`,
        );
      }
    }
  }
  return out;
}

/** Normalises a possibly negative axis for a given rank. */
export function normAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= Math.max(rank, 1)) {
    throw new Error(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}; expected an integer in [${-rank}, ${rank - 1}]`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Normalises an axis list (undefined means all axes), sorted and de-duplicated. */
export function normAxes(op: string, axes: number | readonly number[] | undefined | null, rank: number): number[] {
  if (axes === undefined || axes === null) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === "number" ? [axes] : axes;
  const out = [...new Set(list.map((a) => normAxis(op, a, rank)))].sort((a, b) => a - b);
  return out;
}

/** Shape after reducing `axes` (kept as size-1 when keepdims). */
export function reducedShape(shape: Shape, axes: readonly number[], keepdims: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (axes.includes(i)) {
      if (keepdims) out.push(1);
    } else out.push(shape[i]);
  }
  return out;
}

/** Most elements a tensor may have (2^31 − 1: element indices are 32-bit in the kernels). */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;

/** Validates a shape given by the user: an array of non-negative integers whose product is at most MAX_TENSOR_ELEMENTS. */
export function checkShape(op: string, shape: readonly number[]): number[] {
  if (!Array.isArray(shape))
    throw new Error(`${op}: shape is ${shape === null ? "null" : typeof shape}; expected an array of non-negative integer sizes`);
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`${op}: invalid shape ${fmt(shape)}; expected non-negative integer sizes`);
    n *= d;
  }
  if (n > MAX_TENSOR_ELEMENTS)
    throw new Error(`${op}: shape ${fmt(shape)} has ${n} elements, more than the limit of ${MAX_TENSOR_ELEMENTS} elements per tensor`);
  return [...shape];
}

/** A shape seen as rows along its last axis: cols = the last dimension (1 for a scalar), rows = size / cols (0 when cols = 0). */
export function lastAxisRows(shape: Shape): { rows: number; cols: number } {
  const cols = shape[shape.length - 1] ?? 1;
  return { rows: cols === 0 ? 0 : sizeOf(shape) / cols, cols };
}
