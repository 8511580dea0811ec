import type { BinaryOp, UnaryOp } from "../backend.js";
import type { TypedArray } from "../../dtype.js";
import type { Shape } from "../../shape.js";
import { broadcastStrides, sizeOf } from "../../shape.js";

/** Unary ops with a scalar expression here; "gelu" is the row kernel's (kernels/rows.ts, the CPU backend's one GELU). */
export type ExprUnaryOp = Exclude<UnaryOp, "gelu">;

/** Scalar expressions of the elementwise kernels; loops are generated once per op and cached. */
const UNARY_EXPR: Record<ExprUnaryOp, string> = {
  neg: "-x",
  exp: "Math.exp(x)",
  log: "Math.log(x)",
  log1p: "Math.log1p(x)",
  sqrt: "Math.sqrt(x)",
  rsqrt: "1 / Math.sqrt(x)",
  abs: "Math.abs(x)",
  sin: "Math.sin(x)",
  cos: "Math.cos(x)",
  tanh: "Math.tanh(x)",
  sigmoid: "1 / (1 + Math.exp(-x))",
  relu: "(x > 0 ? x : 0)",
  silu: "x / (1 + Math.exp(-x))",
  sign: "(x > 0 ? 1 : x < 0 ? -1 : 0)",
  square: "x * x",
  reciprocal: "1 / x",
  step: "(x > 0 ? 1 : 0)",
  floor: "Math.floor(x)",
  isfinite: "(Number.isFinite(x) ? 1 : 0)",
};

const BINARY_EXPR: Record<BinaryOp, string> = {
  add: "x + y",
  sub: "x - y",
  mul: "x * y",
  div: "x / y",
  pow: "Math.pow(x, y)",
  maximum: "Math.max(x, y)",
  minimum: "Math.min(x, y)",
  eq: "(x === y ? 1 : 0)",
  ne: "(x !== y ? 1 : 0)",
  lt: "(x < y ? 1 : 0)",
  le: "(x <= y ? 1 : 0)",
  gt: "(x > y ? 1 : 0)",
  ge: "(x >= y ? 1 : 0)",
};

type UnaryLoop = (x: TypedArray, out: TypedArray, n: number) => void;
type BroadcastLoop = (
  a: TypedArray,
  b: TypedArray,
  c: TypedArray | null,
  out: TypedArray,
  shape: number[],
  sa: number[],
  sb: number[],
  sc: number[],
) => void;
/** A loop over operands read as full, scalar or periodic (see `classify`): (...operands, out, n, period). */
type KindLoop = (...args: (TypedArray | number)[]) => void;

const loopCache = new Map<string, unknown>();

/** The generated function for `key`, compiled once from `params` and `body()`. */
function compiled<F>(key: string, params: string[], body: () => string): F {
  let f = loopCache.get(key);
  if (!f) {
    f = new Function(...params, body());
    loopCache.set(key, f);
  }
  return f as F;
}

/**
 * Loops are cached per op *and* per combination of array types: one generated function serving Float32Array,
 * Float64Array and Int32Array operands alike turns V8's element accesses megamorphic (measured 2–4× slower).
 */
function kindOf(...arrs: (TypedArray | null)[]): string {
  let k = "";
  for (const a of arrs) k += a === null ? "-" : a.constructor.name[0] + a.BYTES_PER_ELEMENT;
  return k;
}

/**
 * A loop over i in [0, n) with `body(i)` unrolled 8 times (plus a remainder loop). V8 runs a typed-array loop over
 * arrays passed as arguments about 2× faster unrolled (measured: a float32 multiply 1.85 → 0.94 ns per element).
 */
function unrolled(body: (i: string) => string): string {
  const blocks = Array.from({ length: 8 }, (_, k) => `{ ${body(`i + ${k}`)} }`).join(" ");
  return `let i = 0; for (; i + 7 < n; i += 8) { ${blocks} } for (; i < n; i++) { ${body("i")} }`;
}

function unaryLoop(op: ExprUnaryOp, x: TypedArray, out: TypedArray): UnaryLoop {
  return compiled(`u:${op}:${kindOf(x, out)}`, ["X", "O", "n"], () => unrolled((i) => `const x = X[${i}]; O[${i}] = ${UNARY_EXPR[op]};`));
}

/** Generates a broadcasting loop for `expr` over operands x, y (and z for ternary). */
function broadcastLoop(op: string, expr: string, a: TypedArray, b: TypedArray, c: TypedArray | null, out: TypedArray): BroadcastLoop {
  return compiled(
    `bc:${op}:${kindOf(a, b, c, out)}`,
    ["A", "B", "C", "O", "shape", "sa", "sb", "sc"],
    () => `
      const rank = shape.length;
      const n = O.length;
      if (rank === 0) { const x = A[0], y = B[0], z = C ? C[0] : 0; O[0] = ${expr}; return; }
      const last = shape[rank - 1];
      const la = sa[rank - 1], lb = sb[rank - 1], lc = sc[rank - 1];
      const idx = new Int32Array(rank);
      let ia = 0, ib = 0, ic = 0;
      for (let o = 0; o < n; o += last) {
        let pa = ia, pb = ib, pc = ic;
        for (let j = 0; j < last; j++) {
          const x = A[pa], y = B[pb], z = C ? C[pc] : 0;
          O[o + j] = ${expr};
          pa += la; pb += lb; pc += lc;
        }
        for (let d = rank - 2; d >= 0; d--) {
          idx[d]++; ia += sa[d]; ib += sb[d]; ic += sc[d];
          if (idx[d] < shape[d]) break;
          ia -= sa[d] * shape[d]; ib -= sb[d] * shape[d]; ic -= sc[d] * shape[d];
          idx[d] = 0;
        }
      }`,
  );
}

/**
 * How each operand of an elementwise op is read, when no general strided loop is needed: "f" full-size,
 * "s" one value, "p" one contiguous block repeated (its shape, leading 1s dropped, is a suffix of the output
 * shape: a bias row, an attention mask), all periodic operands sharing one period. Null otherwise.
 */
function classify(operands: [TypedArray, Shape][], outShape: Shape, n: number): { kinds: string; period: number } | null {
  if (n === 0) return null;
  let kinds = "";
  let period = n;
  for (const [arr, shape] of operands) {
    const len = arr.length;
    if (len === n) kinds += "f";
    else if (len === 1) kinds += "s";
    else if (len > 0 && isSuffixOf(shape, outShape) && (period === n || period === len)) {
      kinds += "p";
      period = len;
    } else return null;
  }
  return { kinds, period };
}

/**
 * The loop for operands `names` (bound to x, y, z in `expr`) read as `kinds`: unrolled ×8 over all elements when no
 * operand is periodic, else rows of length p with the inner loop unrolled ×4.
 */
function kindLoop(tag: string, expr: string, kinds: string, arrays: TypedArray[], out: TypedArray): KindLoop {
  const names = ["A", "B", "C"].slice(0, kinds.length);
  const vars = ["x", "y", "z"];
  return compiled(`k:${tag}:${kinds}:${kindOf(...arrays, out)}`, [...names, "O", "n", "p"], () => {
    const scalars = names
      .filter((_, k) => kinds[k] === "s")
      .map((a) => `const ${a}0 = ${a}[0];`)
      .join(" ");
    const read = (k: number, full: string, inRow: string) =>
      kinds[k] === "f" ? `${names[k]}[${full}]` : kinds[k] === "s" ? `${names[k]}0` : `${names[k]}[${inRow}]`;
    const element = (full: string, inRow: string) =>
      `${names.map((_, k) => `const ${vars[k]} = ${read(k, full, inRow)};`).join(" ")} O[${full}] = ${expr};`;
    if (!kinds.includes("p")) return `${scalars} ${unrolled((i) => element(i, i))}`;
    const blocks = [0, 1, 2, 3].map((k) => `{ const jj = j + ${k}; ${element("o + jj", "jj")} }`).join(" ");
    return (
      `${scalars} for (let o = 0; o < n; o += p) { let j = 0; for (; j + 3 < p; j += 4) { ${blocks} } ` +
      `for (; j < p; j++) { ${element("o + j", "j")} } }`
    );
  });
}

/** Whether `shape` broadcast to `outShape` repeats one contiguous block: its shape, leading 1s dropped, is a suffix of outShape. */
function isSuffixOf(shape: Shape, outShape: Shape): boolean {
  let k = 0;
  while (k < shape.length && shape[k] === 1) k++;
  const tail = shape.length - k;
  if (tail > outShape.length) return false;
  for (let i = 0; i < tail; i++) if (shape[k + i] !== outShape[outShape.length - tail + i]) return false;
  return true;
}

/** out = op(x) elementwise. */
export function unaryKernel(op: ExprUnaryOp, x: TypedArray, out: TypedArray): void {
  unaryLoop(op, x, out)(x, out, out.length);
}

/** out = op(a, b) with broadcasting. */
export function binaryKernel(
  op: BinaryOp,
  a: TypedArray,
  aShape: Shape,
  b: TypedArray,
  bShape: Shape,
  out: TypedArray,
  outShape: Shape,
): void {
  const c = classify(
    [
      [a, aShape],
      [b, bShape],
    ],
    outShape,
    out.length,
  );
  if (c) return kindLoop(op, BINARY_EXPR[op], c.kinds, [a, b], out)(a, b, out, out.length, c.period);
  const f = broadcastLoop("b:" + op, BINARY_EXPR[op], a, b, null, out);
  f(
    a,
    b,
    null,
    out,
    [...outShape],
    broadcastStrides(aShape, outShape),
    broadcastStrides(bShape, outShape),
    new Array(outShape.length).fill(0),
  );
}

/** out = cond ? a : b with broadcasting. */
export function whereKernel(
  cond: TypedArray,
  cShape: Shape,
  a: TypedArray,
  aShape: Shape,
  b: TypedArray,
  bShape: Shape,
  out: TypedArray,
  outShape: Shape,
): void {
  // operand order in the generated loops is (A = a, B = b, C = cond)
  const expr = "(z !== 0 ? x : y)";
  const c = classify(
    [
      [a, aShape],
      [b, bShape],
      [cond, cShape],
    ],
    outShape,
    out.length,
  );
  if (c) return kindLoop("where", expr, c.kinds, [a, b, cond], out)(a, b, cond, out, out.length, c.period);
  const f = broadcastLoop("where", expr, a, b, cond, out);
  f(
    a,
    b,
    cond,
    out,
    [...outShape],
    broadcastStrides(aShape, outShape),
    broadcastStrides(bShape, outShape),
    broadcastStrides(cShape, outShape),
  );
}

/** Copies `src` read with arbitrary (possibly zero) strides and offset into dense `out` of `outShape`. */
export function stridedCopy(src: TypedArray, offset: number, strides: readonly number[], out: TypedArray, outShape: Shape): void {
  const rank = outShape.length;
  const n = sizeOf(outShape);
  if (n === 0) return;
  if (rank === 0) {
    out[0] = src[offset];
    return;
  }
  const last = outShape[rank - 1];
  const ls = strides[rank - 1];
  const idx = new Int32Array(rank);
  let base = offset;
  for (let o = 0; o < n; o += last) {
    let p = base;
    if (ls === 1) {
      for (let j = 0; j < last; j++) out[o + j] = src[p + j];
    } else {
      for (let j = 0; j < last; j++, p += ls) out[o + j] = src[p];
    }
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      base += strides[d];
      if (idx[d] < outShape[d]) break;
      base -= strides[d] * outShape[d];
      idx[d] = 0;
    }
  }
}

/** Writes dense `src` of `srcShape` into `out` at `offset` with the given strides (the adjoint of stridedCopy). */
export function stridedWrite(src: TypedArray, srcShape: Shape, out: TypedArray, offset: number, strides: readonly number[]): void {
  const rank = srcShape.length;
  const n = sizeOf(srcShape);
  if (n === 0) return;
  if (rank === 0) {
    out[offset] = src[0];
    return;
  }
  const last = srcShape[rank - 1];
  const ls = strides[rank - 1];
  const idx = new Int32Array(rank);
  let base = offset;
  for (let o = 0; o < n; o += last) {
    let p = base;
    for (let j = 0; j < last; j++, p += ls) out[p] = src[o + j];
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      base += strides[d];
      if (idx[d] < srcShape[d]) break;
      base -= strides[d] * srcShape[d];
      idx[d] = 0;
    }
  }
}
