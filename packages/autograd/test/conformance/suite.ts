/**
 * The backend conformance suite: every primitive of the Backend interface and every fused kernel on small and odd
 * shapes, broadcasting, size-1 and size-0 axes and edge values, compared with the float64 references in
 * reference.ts; then end-to-end gradients (`grad`) computed on the backend, compared with the CPU backend.
 * Fused kernels are called as ops call them (`fused`): a backend without its own kernel is checked through the
 * op layer's composite, and a backend with one also has the kernel checked against that composite.
 *
 * Usage (from a *.test.ts file): `runConformance("cpu", () => new CpuBackend())`.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Backend, BinaryOp, FusedKernelName, TensorInfo, UnaryOp } from "../../src/backend/backend.js";
import { allocArray, type DType, type TypedArray } from "../../src/dtype.js";
import {
  causalMask,
  concat,
  crossEntropy,
  gelu,
  getBackend,
  grad,
  layerNorm,
  linearCrossEntropy,
  log1p,
  logsumexp,
  matmul,
  max,
  mean,
  mT,
  pow,
  reshape,
  setBackend,
  sigmoid,
  slice,
  softmax,
  softmaxCrossEntropy,
  sqrt,
  sum,
  take,
  tanh,
  tensor,
  transpose,
  where,
  Tensor,
} from "../../src/index.js";
import { composite, FUSED_KERNELS, fused, ownFusedKernels } from "../../src/ops/fused.js";
import {
  BINARY_REF,
  broadcastShape,
  ints,
  numel,
  refBinary,
  refBroadcastTo,
  refConcat,
  refCrossEntropy,
  refCrossEntropyBackward,
  refGather,
  refGeluBackward,
  refLayerNorm,
  refLayerNormBackward,
  refMatmul,
  refPad,
  refReduce,
  refScatterAdd,
  refSlice,
  refSoftmax,
  refTranspose,
  refWhere,
  rng,
  UNARY_REF,
  uniform,
  type Shape,
} from "./reference.js";

/** Absolute and relative tolerance: |actual − expected| ≤ atol + rtol·max(|expected|, scale). */
export interface Tol {
  rtol: number;
  atol: number;
}

/** Options of `runConformance`. */
export interface ConformanceOptions {
  /** Default tolerance of float32 results (default rtol 1e-5, atol 1e-6). */
  tol?: Partial<Tol>;
  /**
   * Per-op tolerance overrides (documenting where a backend's accuracy differs): keys `unary:<op>`,
   * `binary:<op>`, `reduce`, `matmul`, `softmax`, `crossEntropy`, `crossEntropyBackward`, `layerNorm`, `geluBackward`,
   * `linearCrossEntropy`, `grad`.
   */
  opTol?: Record<string, Partial<Tol>>;
  /** Also check float64 kernels (only for backends that support float64). */
  float64?: boolean;
  /** Whether maximum/minimum and max/min reductions propagate NaN like JavaScript (default true). */
  nanPropagation?: boolean;
  /** Called once after the suite (e.g. to destroy the backend). */
  teardown?: (b: Backend) => void;
}

const UNARY_OPS: UnaryOp[] = [
  "neg",
  "exp",
  "log",
  "log1p",
  "sqrt",
  "rsqrt",
  "abs",
  "sin",
  "cos",
  "tanh",
  "sigmoid",
  "relu",
  "gelu",
  "silu",
  "sign",
  "square",
  "reciprocal",
  "step",
  "floor",
  "isfinite",
];
const BINARY_OPS: BinaryOp[] = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"];
const COMPARE = new Set<BinaryOp>(["eq", "ne", "lt", "le", "gt", "ge"]);

/** Shape pairs exercising broadcasting, scalars and size-1 axes. */
const BINARY_SHAPES: [Shape, Shape][] = [
  [[7], [7]],
  [
    [3, 5],
    [3, 5],
  ],
  [
    [3, 1],
    [1, 4],
  ],
  [[2, 3, 4], [4]],
  [[], [2, 3]],
  [[2, 3], []],
  [
    [5, 1, 3],
    [1, 4, 1],
  ],
  [[1], [6]],
  [
    [2, 1, 3, 1],
    [1, 4, 1, 5],
  ],
  [[], []],
  [[0, 3], [3]],
];

/** Values in each unary op's domain plus its edge values. */
function unaryInputs(op: UnaryOp, r: () => number, n: number): Float32Array {
  switch (op) {
    case "log":
    case "sqrt":
    case "rsqrt":
      return uniform(r, n, 0.05, 20);
    case "reciprocal":
      return Float32Array.from(uniform(r, n, 0.1, 5), (v, i) => (i % 2 ? -v : v));
    case "log1p":
      return Float32Array.from(uniform(r, n, -0.9, 10), (v, i) => (i % 3 === 0 ? v * 1e-5 : v));
    case "exp":
      return uniform(r, n, -60, 60);
    case "floor":
      return uniform(r, n, -10, 10);
    default:
      return uniform(r, n, -4, 4);
  }
}

const UNARY_EDGES: Partial<Record<UnaryOp, number[]>> = {
  exp: [-100, -88, 0, 88, 100],
  sigmoid: [-100, -30, 0, 30, 100],
  tanh: [-100, -20, -1e-6, 0, 1e-6, 20, 100],
  gelu: [-100, -10, 0, 10, 100],
  silu: [-100, -30, 0, 30, 100],
  relu: [-0, 0, -1e-30, 1e30],
  sign: [0, -0, 2, -3, 1e-30],
  step: [0, -0, 1e-30, -1e-30],
  floor: [-2.5, -2, 2.7, 0.3, -0.3, 0],
  isfinite: [Infinity, -Infinity, NaN, 3e38, -1, 0],
  log1p: [1e-7, -1e-7, 1e-4, -0.5, 0],
  abs: [-0, -3e38, 3e38],
  square: [1e19, -1e19],
};

function fround(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x as ArrayLike<number>, (v) => Math.fround(v));
}

/** Asserts elementwise closeness (NaN matches NaN, infinities must match exactly). */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tol,
  label: string,
  scale?: ArrayLike<number>,
): void {
  assert.equal(actual.length, expected.length, `${label}: length ${actual.length}, expected ${expected.length}`);
  const bad: string[] = [];
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i],
      e = expected[i];
    let ok: boolean;
    if (Number.isNaN(e)) ok = Number.isNaN(a);
    else if (!Number.isFinite(e)) ok = a === e;
    else ok = Math.abs(a - e) <= tol.atol + tol.rtol * Math.max(Math.abs(e), scale ? scale[i] : 0);
    if (!ok && bad.length < 6) bad.push(`[${i}] got ${a}, expected ${e}`);
    if (!ok && bad.length === 6) break;
  }
  assert.ok(bad.length === 0, `${label}: values differ (rtol ${tol.rtol}, atol ${tol.atol}): ${bad.join("; ")}`);
}

/** Registers the conformance tests of one backend with node's test runner. */
export function runConformance(name: string, makeBackend: () => Backend, opts: ConformanceOptions = {}): void {
  const base: Tol = { rtol: opts.tol?.rtol ?? 1e-5, atol: opts.tol?.atol ?? 1e-6 };
  const tolOf = (key: string): Tol => ({ ...base, ...(opts.opTol?.[key] ?? {}) });
  const nanProp = opts.nanPropagation ?? true;
  let be!: Backend;

  const up = (data: ArrayLike<number>, shape: Shape, dtype: DType = "float32"): TensorInfo => {
    const arr = allocArray(dtype, data.length);
    for (let i = 0; i < data.length; i++) arr[i] = data[i];
    return { buf: be.fromArray(arr, dtype), shape, dtype };
  };
  const rd = (buf: unknown, shape: Shape, dtype: DType): TypedArray => be.read({ buf, shape, dtype });
  /** A tensor on the backend under test (whatever the current backend is). */
  const tt = (data: ArrayLike<number>, shape: Shape, dtype: DType = "float32"): Tensor => {
    const i = up(data, shape, dtype);
    return new Tensor(i.buf, i.shape, i.dtype, be);
  };

  describe(`backend conformance: ${name}`, () => {
    before(() => {
      be = makeBackend();
    });
    after(() => {
      if (be && opts.teardown) opts.teardown(be);
    });

    it("fromArray / read round trip (float32, int32, bool; sizes 0, 1 and odd)", () => {
      const r = rng(1);
      for (const n of [0, 1, 7, 1000]) {
        const f = uniform(r, n, -1e6, 1e6);
        assert.deepEqual(Array.from(rd(up(f, [n]).buf, [n], "float32")), Array.from(f), `float32 n=${n}`);
        const i32 = ints(r, n, -(2 ** 24) + 1, 2 ** 24 - 1);
        const got = rd(up(i32, [n], "int32").buf, [n], "int32");
        assert.ok(got instanceof Int32Array, "int32 read gives an Int32Array");
        assert.deepEqual(Array.from(got), Array.from(i32), `int32 n=${n}`);
        const bools = Uint8Array.from(ints(r, n, 0, 1));
        const gb = rd(up(bools, [n], "bool").buf, [n], "bool");
        assert.ok(gb instanceof Uint8Array, "bool read gives a Uint8Array");
        assert.deepEqual(Array.from(gb), Array.from(bools), `bool n=${n}`);
      }
      const special = new Float32Array([Infinity, -Infinity, NaN, -0, 3.4028234663852886e38, 1.1754943508222875e-38]);
      const back = rd(up(special, [6]).buf, [6], "float32");
      assert.deepEqual(Array.from(back), Array.from(special));
      assert.ok(Object.is(back[3], -0), "-0 survives the round trip");
    });

    it("zeros and fill in every dtype", () => {
      for (const n of [0, 1, 13]) {
        assert.deepEqual(Array.from(rd(be.zeros("float32", n), [n], "float32")), new Array(n).fill(0));
        assert.deepEqual(Array.from(rd(be.fill("float32", n, 2.5), [n], "float32")), new Array(n).fill(2.5));
        assert.deepEqual(Array.from(rd(be.fill("float32", n, -Infinity), [n], "float32")), new Array(n).fill(-Infinity));
        assert.deepEqual(Array.from(rd(be.fill("int32", n, 7), [n], "int32")), new Array(n).fill(7));
        assert.deepEqual(Array.from(rd(be.zeros("int32", n), [n], "int32")), new Array(n).fill(0));
        assert.deepEqual(Array.from(rd(be.fill("bool", n, 1), [n], "bool")), new Array(n).fill(1));
      }
      assert.deepEqual(Array.from(rd(be.fill("int32", 3, -2.7), [3], "int32")), [-2, -2, -2], "int32 fill truncates like Int32Array");
    });

    it("cast between float32, int32 and bool", () => {
      const f = new Float32Array([-2.7, -0.5, -0, 0, 0.5, 2.7, 1e6, -3]);
      const x = up(f, [8]);
      assert.deepEqual(Array.from(rd(be.cast(x, "int32"), [8], "int32")), [-2, 0, 0, 0, 0, 2, 1000000, -3]);
      assert.deepEqual(Array.from(rd(be.cast(x, "bool"), [8], "bool")), [1, 1, 0, 0, 1, 1, 1, 1]);
      assert.deepEqual(Array.from(rd(be.cast(x, "float32"), [8], "float32")), Array.from(f));
      const i = up([-5, 0, 3, 16777215], [4], "int32");
      assert.deepEqual(Array.from(rd(be.cast(i, "float32"), [4], "float32")), [-5, 0, 3, 16777215]);
      assert.deepEqual(Array.from(rd(be.cast(i, "bool"), [4], "bool")), [1, 0, 1, 1]);
      assert.deepEqual(Array.from(rd(be.cast(i, "int32"), [4], "int32")), [-5, 0, 3, 16777215]);
      const b = up([1, 0, 1], [3], "bool");
      assert.deepEqual(Array.from(rd(be.cast(b, "float32"), [3], "float32")), [1, 0, 1]);
      assert.deepEqual(Array.from(rd(be.cast(b, "int32"), [3], "int32")), [1, 0, 1]);
      assert.deepEqual(Array.from(rd(be.cast(up([], [0, 2]), "int32"), [0, 2], "int32")), []);
    });

    for (const op of UNARY_OPS) {
      it(`unary ${op} over several shapes and its edge values`, () => {
        const r = rng(op.length * 7919 + op.charCodeAt(0));
        const tol = tolOf(`unary:${op}`);
        for (const shape of [[], [1], [7], [3, 5], [2, 1, 4, 3]] as Shape[]) {
          const x = unaryInputs(op, r, numel(shape));
          const got = rd(be.unary(op, up(x, shape), op === "isfinite" ? "bool" : "float32"), shape, op === "isfinite" ? "bool" : "float32");
          assertClose(got, fround(Array.from(x, UNARY_REF[op])), tol, `${op} ${JSON.stringify(shape)}`);
        }
        const edges = UNARY_EDGES[op];
        if (edges) {
          const x = new Float32Array(edges);
          const dt: DType = op === "isfinite" ? "bool" : "float32";
          assertClose(
            rd(be.unary(op, up(x, [x.length]), dt), [x.length], dt),
            fround(Array.from(x, UNARY_REF[op])),
            tol,
            `${op} edge values`,
          );
        }
      });
    }

    it("unary ops on int32 tensors keep exact int32 results", () => {
      const x = new Int32Array([-7, -1, 0, 1, 5, 4095]);
      for (const op of ["neg", "abs", "square", "sign"] as UnaryOp[]) {
        const got = rd(be.unary(op, up(x, [6], "int32"), "int32"), [6], "int32");
        assert.deepEqual(Array.from(got), Array.from(Int32Array.from(x, UNARY_REF[op])), op);
      }
    });

    for (const op of BINARY_OPS) {
      it(`binary ${op} with broadcasting`, () => {
        const r = rng(op.length * 104729 + op.charCodeAt(1));
        const tol = tolOf(`binary:${op}`);
        for (const [as, bs] of BINARY_SHAPES) {
          let a = uniform(r, numel(as), -3, 3);
          let b = uniform(r, numel(bs), -3, 3);
          if (COMPARE.has(op) || op === "maximum" || op === "minimum") {
            a = Float32Array.from(ints(r, a.length, -2, 2));
            b = Float32Array.from(ints(r, b.length, -2, 2));
          } else if (op === "div") b = b.map((v) => (v >= 0 ? v + 0.5 : v - 0.5));
          else if (op === "pow") a = a.map((v) => Math.abs(v) + 0.1);
          const outShape = broadcastShape(as, bs);
          const dt: DType = COMPARE.has(op) ? "bool" : "float32";
          const got = rd(be.binary(op, up(a, as), up(b, bs), outShape, dt), outShape, dt);
          const ref = refBinary(BINARY_REF[op], a, as, b, bs);
          assertClose(got, fround(ref.out), tol, `${op} ${JSON.stringify(as)}·${JSON.stringify(bs)}`);
        }
        if (op === "pow") {
          const a = new Float32Array([-2, -2, -3, -1.5, 0, 0, 0, 2, 1]);
          const b = new Float32Array([2, 3, -1, 2, 2, 0, -1, 0.5, 1e6]);
          const got = rd(be.binary("pow", up(a, [9]), up(b, [9]), [9], "float32"), [9], "float32");
          assertClose(got, fround(Array.from(a, (v, i) => Math.pow(v, b[i]))), tol, "pow: negative bases with integer exponents, zeros");
        }
      });
    }

    it("int32 arithmetic matches int32 storage (division truncates toward zero)", () => {
      const a = new Int32Array([-7, 7, 9, -9, 100, 0]);
      const b = new Int32Array([2, 2, -4, -4, 7, 3]);
      const res = (op: BinaryOp) => Array.from(rd(be.binary(op, up(a, [6], "int32"), up(b, [6], "int32"), [6], "int32"), [6], "int32"));
      assert.deepEqual(res("add"), [-5, 9, 5, -13, 107, 3]);
      assert.deepEqual(res("sub"), [-9, 5, 13, -5, 93, -3]);
      assert.deepEqual(res("mul"), [-14, 14, -36, 36, 700, 0]);
      assert.deepEqual(res("div"), [-3, 3, -2, 2, 14, 0]);
      assert.deepEqual(res("maximum"), [2, 7, 9, -4, 100, 3]);
      const bc = rd(be.binary("add", up(a, [2, 3], "int32"), up([10], [], "int32"), [2, 3], "int32"), [2, 3], "int32");
      assert.deepEqual(Array.from(bc), [3, 17, 19, 1, 110, 10]);
      const cmp = rd(be.binary("lt", up(a, [6], "int32"), up(b, [6], "int32"), [6], "bool"), [6], "bool");
      assert.deepEqual(Array.from(cmp), [1, 0, 0, 1, 0, 1]);
    });

    if (nanProp) {
      it("maximum / minimum propagate NaN", () => {
        const a = new Float32Array([NaN, 1, NaN]);
        const b = new Float32Array([1, NaN, NaN]);
        for (const op of ["maximum", "minimum"] as BinaryOp[]) {
          const got = rd(be.binary(op, up(a, [3]), up(b, [3]), [3], "float32"), [3], "float32");
          assert.ok(Array.from(got).every(Number.isNaN), `${op}: ${Array.from(got)}`);
        }
        const x = new Float32Array([1, NaN, 3, 4, 5, 6]);
        for (const op of ["max", "min"] as const) {
          const got = rd(be.reduce(op, up(x, [2, 3]), [1]), [2], "float32");
          assert.ok(
            Number.isNaN(got[0]) && got[1] === (op === "max" ? 6 : 4),
            `${op} over rows [1, NaN, 3], [4, 5, 6]: ${Array.from(got)}`,
          );
        }
      });
    }

    it("where with broadcasting (float32 and int32 values)", () => {
      const r = rng(5);
      const cases: [Shape, Shape, Shape][] = [
        [
          [3, 1],
          [1, 4],
          [3, 4],
        ],
        [[], [2, 3], [2, 3]],
        [[2, 3], [3], []],
        [[4], [4], [4]],
        [[2, 1, 3], [1, 5, 1], [3]],
        // masked fill (a periodic mask over a full tensor), and two different periods
        [[3, 4], [2, 3, 4], []],
        [
          [1, 4],
          [2, 3, 4],
          [3, 4],
        ],
        [[4], [3, 4], [2, 3, 4]],
        // two operands repeating the same block
        [
          [3, 4],
          [1, 3, 4],
          [2, 3, 4],
        ],
      ];
      for (const [cs, as, bs] of cases) {
        const c = Uint8Array.from(ints(r, numel(cs), 0, 1));
        const a = uniform(r, numel(as), -5, 5),
          b = uniform(r, numel(bs), -5, 5);
        const ref = refWhere(c, cs, a, as, b, bs);
        assertClose(
          rd(be.where(up(c, cs, "bool"), up(a, as), up(b, bs), ref.shape), ref.shape, "float32"),
          fround(ref.out),
          base,
          `where ${JSON.stringify([cs, as, bs])}`,
        );
        const ai = ints(r, numel(as), -1000, 1000),
          bi = ints(r, numel(bs), -1000, 1000);
        const refI = refWhere(c, cs, ai, as, bi, bs);
        assert.deepEqual(
          Array.from(rd(be.where(up(c, cs, "bool"), up(ai, as, "int32"), up(bi, bs, "int32"), refI.shape), refI.shape, "int32")),
          Array.from(refI.out),
        );
      }
      const inf = rd(be.where(up([1, 0], [2], "bool"), up([-Infinity], []), up([2], []), [2]), [2], "float32");
      assert.deepEqual(Array.from(inf), [-Infinity, 2]);
    });

    it("reduce sum / max / min over axis sets", () => {
      const r = rng(11);
      const cases: [Shape, number[]][] = [
        [[7], [0]],
        [[3, 5], [0]],
        [[3, 5], [1]],
        [
          [3, 5],
          [0, 1],
        ],
        [[2, 3, 4], [1]],
        [
          [2, 3, 4],
          [0, 2],
        ],
        [
          [2, 3, 4],
          [0, 1, 2],
        ],
        [
          [4, 1, 3, 2],
          [1, 3],
        ],
        [
          [4, 1, 3, 2],
          [0, 2],
        ],
        [[1, 1], [0]],
        [[2, 3, 4], [2]],
        [[3, 0, 2], [0]],
      ];
      const tol = tolOf("reduce");
      for (const [shape, axes] of cases) {
        const x = uniform(r, numel(shape), -10, 10);
        for (const op of ["sum", "max", "min"] as const) {
          const ref = refReduce(op, x, shape, axes);
          assertClose(
            rd(be.reduce(op, up(x, shape), axes), ref.shape, "float32"),
            fround(ref.out),
            tol,
            `${op} ${JSON.stringify(shape)} axes ${axes}`,
            ref.scale,
          );
        }
      }
      const xi = ints(r, 24, -100, 100);
      const refI = refReduce("sum", xi, [2, 3, 4], [1]);
      assert.deepEqual(Array.from(rd(be.reduce("sum", up(xi, [2, 3, 4], "int32"), [1]), refI.shape, "int32")), Array.from(refI.out));
      const refM = refReduce("max", xi, [2, 3, 4], [0, 2]);
      assert.deepEqual(Array.from(rd(be.reduce("max", up(xi, [2, 3, 4], "int32"), [0, 2]), refM.shape, "int32")), Array.from(refM.out));
      const e = refReduce("sum", [], [3, 0, 2], [1]);
      assert.deepEqual(
        Array.from(rd(be.reduce("sum", up([], [3, 0, 2]), [1]), e.shape, "float32")),
        [0, 0, 0, 0, 0, 0],
        "sum over an empty axis is 0",
      );
    });

    it("reduce over long axes", () => {
      const r = rng(12);
      const tol = tolOf("reduce");
      const cases: [Shape, number[]][] = [
        [[5000], [0]],
        [[3, 700], [1]],
        [[600, 3], [0]],
        [
          [7, 300, 2],
          [0, 1],
        ],
        [[2, 1000, 3], [1]],
      ];
      for (const [shape, axes] of cases) {
        const x = uniform(r, numel(shape), -1, 1);
        x[Math.floor(numel(shape) / 3)] = 50;
        x[Math.floor(numel(shape) / 2)] = -50;
        for (const op of ["sum", "max", "min"] as const) {
          const ref = refReduce(op, x, shape, axes);
          assertClose(
            rd(be.reduce(op, up(x, shape), axes), ref.shape, "float32"),
            fround(ref.out),
            tol,
            `${op} ${JSON.stringify(shape)} axes ${axes}`,
            ref.scale,
          );
        }
      }
    });

    it("matmul with every transpose flag and odd sizes", () => {
      const r = rng(13);
      const tol = tolOf("matmul");
      for (const [m, k, n] of [
        [1, 1, 1],
        [3, 4, 5],
        [7, 1, 3],
        [2, 9, 1],
        [16, 33, 5],
        [1, 64, 17],
      ]) {
        for (const tA of [false, true]) {
          for (const tB of [false, true]) {
            const as = tA ? [k, m] : [m, k],
              bs = tB ? [n, k] : [k, n];
            const a = uniform(r, m * k),
              b = uniform(r, k * n);
            const ref = refMatmul(a, as, b, bs, tA, tB);
            const got = rd(be.matmul(up(a, as), up(b, bs), tA, tB, ref.shape), ref.shape, "float32");
            assertClose(got, ref.out, tol, `matmul ${m}x${k}x${n} transA=${tA} transB=${tB}`, ref.scale);
          }
        }
      }
    });

    it("matmul with broadcast batch axes", () => {
      const r = rng(14);
      const tol = tolOf("matmul");
      const cases: [Shape, Shape, boolean, boolean][] = [
        [[2, 1, 3, 4], [5, 4, 2], false, false],
        [[4, 3], [2, 3, 5], false, false],
        [[2, 3, 4, 5], [2, 3, 5, 2], false, false],
        [[2, 3, 5, 4], [1, 3, 2, 5], true, true],
        [[3, 1, 2, 6], [1, 4, 6, 3], false, false],
        [[1, 2, 3], [2, 3, 2], false, false],
      ];
      for (const [as, bs, tA, tB] of cases) {
        const a = uniform(r, numel(as)),
          b = uniform(r, numel(bs));
        const ref = refMatmul(a, as, b, bs, tA, tB);
        assertClose(
          rd(be.matmul(up(a, as), up(b, bs), tA, tB, ref.shape), ref.shape, "float32"),
          ref.out,
          tol,
          `matmul ${JSON.stringify(as)}·${JSON.stringify(bs)}`,
          ref.scale,
        );
      }
    });

    it("matmul with an empty inner dimension gives zeros", () => {
      const out = rd(be.matmul(up([], [2, 0]), up([], [0, 3]), false, false, [2, 3]), [2, 3], "float32");
      assert.deepEqual(Array.from(out), [0, 0, 0, 0, 0, 0]);
      assert.equal(rd(be.matmul(up([], [0, 4]), up(new Float32Array(12), [4, 3]), false, false, [0, 3]), [0, 3], "float32").length, 0);
    });

    it("transpose", () => {
      const r = rng(15);
      const cases: [Shape, number[]][] = [
        [
          [3, 5],
          [1, 0],
        ],
        [
          [2, 3, 4],
          [0, 2, 1],
        ],
        [
          [2, 3, 4],
          [1, 0, 2],
        ],
        [
          [2, 3, 4],
          [2, 1, 0],
        ],
        [
          [2, 3, 4],
          [1, 2, 0],
        ],
        [
          [1, 4, 1, 3],
          [3, 1, 2, 0],
        ],
        [
          [2, 3, 4, 5],
          [0, 2, 1, 3],
        ],
        [[7], [0]],
        [
          [0, 3],
          [1, 0],
        ],
      ];
      for (const [shape, perm] of cases) {
        const x = uniform(r, numel(shape));
        const outShape = perm.map((p) => shape[p]);
        assertClose(
          rd(be.transpose(up(x, shape), perm), outShape, "float32"),
          refTranspose(x, shape, perm),
          { rtol: 0, atol: 0 },
          `transpose ${JSON.stringify(shape)} ${perm}`,
        );
      }
      const xi = ints(r, 24, -50, 50);
      assert.deepEqual(
        Array.from(rd(be.transpose(up(xi, [2, 3, 4], "int32"), [2, 0, 1]), [4, 2, 3], "int32")),
        Array.from(refTranspose(xi, [2, 3, 4], [2, 0, 1])),
      );
    });

    it("broadcastTo", () => {
      const r = rng(16);
      const cases: [Shape, Shape][] = [
        [
          [3, 1],
          [2, 3, 4],
        ],
        [[], [5]],
        [[4], [3, 4]],
        [
          [1, 1],
          [2, 3],
        ],
        [
          [2, 1, 3],
          [2, 4, 3],
        ],
        [[1], [1]],
        [[3], [0, 3]],
      ];
      for (const [s, to] of cases) {
        const x = uniform(r, numel(s));
        assertClose(
          rd(be.broadcastTo(up(x, s), to), to, "float32"),
          refBroadcastTo(x, s, to),
          { rtol: 0, atol: 0 },
          `broadcastTo ${JSON.stringify(s)}→${JSON.stringify(to)}`,
        );
      }
    });

    const SLICES: [Shape, number[], number[], number[]][] = [
      [[10], [2], [3], [2]],
      [
        [5, 6],
        [1, 0],
        [3, 6],
        [1, 1],
      ],
      [
        [4, 5, 6],
        [0, 1, 2],
        [2, 2, 2],
        [3, 2, 1],
      ],
      [
        [4, 5],
        [1, 1],
        [0, 2],
        [1, 1],
      ],
      [
        [3, 4, 5],
        [2, 0, 4],
        [1, 4, 1],
        [1, 1, 1],
      ],
      [
        [6, 7],
        [5, 6],
        [1, 1],
        [1, 1],
      ],
      [
        [9, 2],
        [0, 0],
        [3, 2],
        [4, 1],
      ],
    ];

    it("slice with begin, size and step per axis", () => {
      const r = rng(17);
      for (const [shape, b, size, step] of SLICES) {
        const x = uniform(r, numel(shape));
        assertClose(
          rd(be.slice(up(x, shape), b, size, step), size, "float32"),
          refSlice(x, shape, b, size, step),
          { rtol: 0, atol: 0 },
          `slice ${JSON.stringify([shape, b, size, step])}`,
        );
      }
    });

    it("pad writes x into zeros at begin + k·step (the adjoint of slice)", () => {
      const r = rng(18);
      for (const [outShape, b, size, step] of SLICES) {
        const x = uniform(r, numel(size));
        assertClose(
          rd(be.pad(up(x, size), outShape, b, step), outShape, "float32"),
          refPad(x, size, outShape, b, step),
          { rtol: 0, atol: 0 },
          `pad ${JSON.stringify([outShape, b, size, step])}`,
        );
      }
    });

    it("concat along each axis, with empty and many parts", () => {
      const r = rng(19);
      const run = (shapes: Shape[], axis: number, dtype: DType = "float32") => {
        const parts = shapes.map((s) => ({ data: dtype === "int32" ? ints(r, numel(s), -99, 99) : uniform(r, numel(s)), shape: s }));
        const ref = refConcat(parts, axis);
        const got = rd(
          be.concat(
            parts.map((p) => up(p.data, p.shape, dtype)),
            axis,
            ref.shape,
          ),
          ref.shape,
          dtype,
        );
        assertClose(got, ref.out, { rtol: 0, atol: 0 }, `concat ${JSON.stringify(shapes)} axis ${axis}`);
      };
      run(
        [
          [2, 3],
          [4, 3],
        ],
        0,
      );
      run(
        [
          [2, 3],
          [2, 1],
          [2, 5],
        ],
        1,
      );
      run(
        [
          [2, 3, 4],
          [2, 3, 1],
        ],
        2,
      );
      run(
        [
          [2, 0, 3],
          [2, 2, 3],
          [2, 1, 3],
        ],
        1,
      );
      run([[1], [1], [1]], 0);
      run(
        Array.from({ length: 11 }, (_, i) => [2, 1 + (i % 3), 3]),
        1,
      );
      run(
        [
          [3, 2],
          [3, 2],
        ],
        1,
        "int32",
      );
    });

    it("gather (take) along each axis; out-of-range indices throw", () => {
      const r = rng(20);
      const cases: [Shape, number[], number][] = [
        [[5, 3], [4, 0, 4, 1], 0],
        [[2, 6, 3], [5, 0, 2, 2, 1, 3, 0], 1],
        [[3, 4], [3], 1],
        [[4], [0, 1, 2, 3, 3, 2], 0],
        [[3, 2], [], 0],
      ];
      for (const [shape, idx, axis] of cases) {
        const x = uniform(r, numel(shape));
        const ref = refGather(x, shape, idx, axis);
        assertClose(
          rd(be.gather(up(x, shape), up(idx, [idx.length], "int32"), axis), ref.shape, "float32"),
          ref.out,
          { rtol: 0, atol: 0 },
          `gather ${JSON.stringify([shape, idx, axis])}`,
        );
      }
      const xi = ints(r, 12, -9, 9);
      const refI = refGather(xi, [4, 3], [3, 3, 0], 0);
      assert.deepEqual(
        Array.from(rd(be.gather(up(xi, [4, 3], "int32"), up([3, 3, 0], [3], "int32"), 0), refI.shape, "int32")),
        Array.from(refI.out),
      );
      assert.throws(() => be.gather(up(xi, [4, 3], "int32"), up([4], [1], "int32"), 0), /out of range/);
      assert.throws(() => be.gather(up(xi, [4, 3], "int32"), up([-1], [1], "int32"), 1), /out of range/);
    });

    it("scatterAdd accumulates repeated indices", () => {
      const r = rng(21);
      const cases: [Shape, number[], number][] = [
        [[5, 3], [4, 0, 4, 1, 4], 0],
        [[2, 6, 3], [5, 0, 2, 2, 1, 3, 0], 1],
        [[3, 4], [0, 0, 0], 1],
        [[4], [], 0],
      ];
      const tol = tolOf("reduce");
      for (const [outShape, idx, axis] of cases) {
        const uShape = [...outShape.slice(0, axis), idx.length, ...outShape.slice(axis + 1)];
        const u = uniform(r, numel(uShape));
        assertClose(
          rd(be.scatterAdd(up(u, uShape), up(idx, [idx.length], "int32"), axis, outShape), outShape, "float32"),
          refScatterAdd(u, idx, axis, outShape),
          tol,
          `scatterAdd ${JSON.stringify([outShape, idx, axis])}`,
        );
      }
      assert.throws(() => be.scatterAdd(up([1], [1]), up([3], [1], "int32"), 0, [3]), /out of range/);
    });

    it("softmax and log-softmax, long rows and large logits", () => {
      const r = rng(22);
      const tol = tolOf("softmax");
      for (const shape of [[1], [7], [3, 5], [2, 3, 4], [4, 1000], [5, 1]] as Shape[]) {
        const x = uniform(r, numel(shape), -8, 8);
        for (const log of [false, true]) {
          assertClose(
            rd(fused(be, "softmax", up(x, shape), log), shape, "float32"),
            refSoftmax(x, shape, log),
            tol,
            `${log ? "logSoftmax" : "softmax"} ${JSON.stringify(shape)}`,
          );
        }
      }
      const big = new Float32Array([1e4, 1e4 - 1, 1e4 - 20, -1e4, -1e4, -1e4 + 3, -1e4 - 1, -1e4, 88, 89, 90, 0, 3e4, -3e4, 0, 1]);
      for (const log of [false, true]) {
        assertClose(
          rd(fused(be, "softmax", up(big, [4, 4]), log), [4, 4], "float32"),
          refSoftmax(big, [4, 4], log),
          tol,
          `${log ? "logSoftmax" : "softmax"} of large logits`,
        );
      }
      const masked = new Float32Array([0.5, -Infinity, -Infinity, 1, 2, -Infinity]);
      assertClose(
        rd(fused(be, "softmax", up(masked, [2, 3]), false), [2, 3], "float32"),
        refSoftmax(masked, [2, 3], false),
        tol,
        "softmax with −inf entries",
      );
    });

    it("crossEntropy: per-row loss and log-sum-exp, ignored rows, large logits", () => {
      const r = rng(23);
      const tol = tolOf("crossEntropy");
      for (const [rows, cols] of [
        [5, 7],
        [1, 1],
        [3, 1000],
        [6, 2],
      ]) {
        const x = uniform(r, rows * cols, -6, 6);
        const t = ints(r, rows, 0, cols - 1);
        if (rows > 2) t[1] = -100;
        const { loss, lse } = fused(be, "crossEntropy", up(x, [rows, cols]), up(t, [rows], "int32"), -100);
        const ref = refCrossEntropy(x, rows, cols, t, -100);
        assertClose(rd(loss, [rows], "float32"), ref.loss, tol, `crossEntropy loss ${rows}x${cols}`);
        assertClose(rd(lse, [rows], "float32"), ref.lse, tol, `crossEntropy lse ${rows}x${cols}`);
      }
      const big = new Float32Array([1e4, 1e4 - 1, -1e4, -5e3, -5e3 + 2, 30]);
      const t = new Int32Array([1, 2]);
      const ref = refCrossEntropy(big, 2, 3, t, -100);
      const { loss, lse } = fused(be, "crossEntropy", up(big, [2, 3]), up(t, [2], "int32"), -100);
      assertClose(rd(loss, [2], "float32"), ref.loss, tol, "crossEntropy loss of large logits");
      assertClose(rd(lse, [2], "float32"), ref.lse, tol, "crossEntropy lse of large logits");
      const ig = fused(be, "crossEntropy", up([1, 2, 3, 4], [2, 2]), up([7, 1], [2], "int32"), 7);
      // targets are validated once, by the op (kernels trust it)
      assert.throws(
        () => softmaxCrossEntropy(tt([1, 2, 3, 4], [2, 2]), tt([0, 2], [2], "int32")),
        /crossEntropy: target 2 at position 1 is out of range/,
      );
      assert.throws(() => softmaxCrossEntropy(tt([1, 2, 3, 4], [2, 2]), tt([-1, 0], [2], "int32")), /out of range/);
      assert.equal(rd(ig.loss, [2], "float32")[0], 0, "an ignored row gives 0");
    });

    it("layerNorm and its backward: with and without gamma/beta, long rows, a large common offset", () => {
      const r = rng(25);
      const tol = tolOf("layerNorm");
      const eps = 1e-5;
      for (const shape of [
        [1, 1],
        [3, 7],
        [2, 3, 5],
        [4, 768],
        [5, 2],
      ] as Shape[]) {
        const cols = shape[shape.length - 1],
          rows = numel(shape) / cols;
        const x = uniform(r, numel(shape), -3, 3);
        if (cols === 768) for (let i = 0; i < cols; i++) x[i] += 1000; // row 0: mean ≫ spread
        const gamma = uniform(r, cols, 0.5, 1.5),
          beta = uniform(r, cols, -1, 1),
          dy = uniform(r, numel(shape), -1, 1);
        for (const affine of [true, false]) {
          const G = affine ? up(gamma, [cols]) : null,
            B = affine ? up(beta, [cols]) : null;
          const got = fused(be, "layerNorm", up(x, shape), G, B, eps);
          const ref = refLayerNorm(fround(x), rows, cols, affine ? fround(gamma) : null, affine ? fround(beta) : null, eps);
          const label = `layerNorm ${JSON.stringify(shape)}${affine ? " with gamma/beta" : ""}`;
          // y = (x − mean)·rstd·γ with x and mean in float32: rounding the mean costs |mean|·2⁻²⁴·rstd·|γ|
          const meanUlp = Math.max(...Array.from(ref.mean, (m, i) => Math.abs(m) * ref.rstd[i])) * 2 ** -23 * 1.5;
          assertClose(rd(got.y, shape, "float32"), ref.y, { ...tol, atol: tol.atol + meanUlp }, label);
          // the mean of values of either sign: relative to the row's mean |x|
          const absMean = Float64Array.from(
            { length: rows },
            (_, i) => x.subarray(i * cols, (i + 1) * cols).reduce((a, v) => a + Math.abs(v), 0) / cols,
          );
          assertClose(rd(got.mean, [rows], "float32"), ref.mean, tol, `${label}: mean`, absMean);
          assertClose(rd(got.rstd, [rows], "float32"), ref.rstd, { ...tol, rtol: Math.max(tol.rtol, 1e-4) }, `${label}: rstd`);
          const bw = fused(
            be,
            "layerNormBackward",
            up(x, shape),
            G,
            { buf: got.mean, shape: [rows], dtype: "float32" },
            { buf: got.rstd, shape: [rows], dtype: "float32" },
            up(dy, shape),
            true,
          );
          const refB = refLayerNormBackward(fround(x), rows, cols, affine ? fround(gamma) : null, fround(dy), eps);
          // dx is a difference of O(rstd·|dy|) terms: scale the tolerance by that size
          const scaleX = new Float64Array(numel(shape)).fill(Math.max(...Array.from(ref.rstd)) * 1.5);
          assertClose(rd(bw.dx, shape, "float32"), refB.dx, { ...tol, rtol: Math.max(tol.rtol, 1e-4) }, `${label}: dx`, scaleX);
          assertClose(
            rd(bw.dgamma, [cols], "float32"),
            refB.dgamma,
            { ...tol, atol: tol.atol + rows * meanUlp },
            `${label}: dgamma`,
            new Float64Array(cols).fill(rows),
          );
          assertClose(rd(bw.dbeta, [cols], "float32"), refB.dbeta, tol, `${label}: dbeta`, new Float64Array(cols).fill(rows));
          const noParams = fused(
            be,
            "layerNormBackward",
            up(x, shape),
            G,
            { buf: got.mean, shape: [rows], dtype: "float32" },
            { buf: got.rstd, shape: [rows], dtype: "float32" },
            up(dy, shape),
            false,
          );
          assert.equal(noParams.dgamma, null, "no dgamma without withParams");
          assertClose(rd(noParams.dx, shape, "float32"), rd(bw.dx, shape, "float32"), { rtol: 0, atol: 0 }, `${label}: dx without params`);
        }
      }
    });

    it("geluBackward, including large |x|", () => {
      const r = rng(26);
      const tol = tolOf("geluBackward");
      for (const n of [1, 7, 1000, 4099]) {
        const x = uniform(r, n, -6, 6),
          dy = uniform(r, n, -2, 2);
        assertClose(
          rd(fused(be, "geluBackward", up(x, [n]), up(dy, [n])), [n], "float32"),
          refGeluBackward(fround(x), fround(dy)),
          tol,
          `geluBackward n=${n}`,
        );
      }
      const edge = new Float32Array([-100, -30, -10, 0, 10, 30, 100]);
      const ones = new Float32Array(edge.length).fill(1);
      assertClose(
        rd(fused(be, "geluBackward", up(edge, [7]), up(ones, [7])), [7], "float32"),
        refGeluBackward(edge, ones),
        tol,
        "geluBackward at edge values",
      );
    });

    it("linearCrossEntropy and its backward equal matmul + crossEntropy", () => {
      const r = rng(27);
      const tol = tolOf("linearCrossEntropy");
      for (const [n, e, v] of [
        [5, 3, 7],
        [1, 1, 2],
        [9, 16, 130],
      ]) {
        const x = uniform(r, n * e, -1.5, 1.5),
          w = uniform(r, v * e, -1.5, 1.5),
          g = uniform(r, n, -2, 2);
        const t = ints(r, n, 0, v - 1);
        if (n > 2) t[1] = -100;
        const logits = refMatmul(x, [n, e], w, [v, e], false, true).out;
        const ref = refCrossEntropy(logits, n, v, t, -100);
        const X = up(x, [n, e]),
          W = up(w, [v, e]),
          Tg = up(t, [n], "int32");
        const { loss, lse } = fused(be, "linearCrossEntropy", X, W, Tg, -100);
        const label = `linearCrossEntropy ${n}x${e}·(${v}x${e})ᵀ`;
        assertClose(rd(loss, [n], "float32"), ref.loss, tol, `${label}: loss`);
        assertClose(rd(lse, [n], "float32"), ref.lse, tol, `${label}: lse`);
        const dl = refCrossEntropyBackward(logits, n, v, t, g, -100);
        const b = fused(be, "linearCrossEntropyBackward", X, W, Tg, { buf: lse, shape: [n], dtype: "float32" }, up(g, [n]), -100);
        const dx = refMatmul(dl, [n, v], w, [v, e], false, false),
          dw = refMatmul(dl, [n, v], x, [n, e], true, false);
        assertClose(rd(b.dx, [n, e], "float32"), dx.out, tol, `${label}: dx`, dx.scale);
        assertClose(rd(b.dw, [v, e], "float32"), dw.out, tol, `${label}: dw`, dw.scale);
        const ones = new Float64Array(n).fill(1);
        const dl1 = refCrossEntropyBackward(logits, n, v, t, ones, -100);
        const dx1 = refMatmul(dl1, [n, v], w, [v, e], false, false),
          dw1 = refMatmul(dl1, [n, v], x, [n, e], true, false);
        const wg = fused(be, "linearCrossEntropyWithGrad", X, W, Tg, -100);
        assertClose(rd(wg.loss, [n], "float32"), ref.loss, tol, `${label}: loss (with grad)`);
        assertClose(rd(wg.dx, [n, e], "float32"), dx1.out, tol, `${label}: dx (with grad)`, dx1.scale);
        assertClose(rd(wg.dw, [v, e], "float32"), dw1.out, tol, `${label}: dw (with grad)`, dw1.scale);
      }
      assert.throws(
        () => linearCrossEntropy(tt([1, 2], [1, 2]), tt([1, 2, 3, 4], [2, 2]), tt([2], [1], "int32")),
        /linearCrossEntropy: target 2 at position 0 is out of range/,
      );
    });

    it("crossEntropyBackward", () => {
      const r = rng(24);
      const tol = tolOf("crossEntropyBackward");
      for (const [rows, cols] of [
        [5, 7],
        [1, 1],
        [3, 300],
        [4, 2],
      ]) {
        const x = uniform(r, rows * cols, -6, 6);
        const t = ints(r, rows, 0, cols - 1);
        if (rows > 2) t[2] = -100;
        const g = uniform(r, rows, -2, 2);
        const { lse } = fused(be, "crossEntropy", up(x, [rows, cols]), up(t, [rows], "int32"), -100);
        const got = rd(
          fused(
            be,
            "crossEntropyBackward",
            up(x, [rows, cols]),
            up(t, [rows], "int32"),
            { buf: lse, shape: [rows], dtype: "float32" },
            up(g, [rows]),
            -100,
          ),
          [rows, cols],
          "float32",
        );
        assertClose(got, refCrossEntropyBackward(x, rows, cols, t, g, -100), tol, `crossEntropyBackward ${rows}x${cols}`);
      }
      // large logits: the interface passes lse in float32, so exp(x − lse) carries about |lse|·2⁻²⁴ relative error
      const big = new Float32Array([1e3, 1e3 - 1, -1e3, 50, 52, 49]);
      const t = new Int32Array([0, 1]);
      const g = new Float32Array([1, -0.5]);
      const { lse } = fused(be, "crossEntropy", up(big, [2, 3]), up(t, [2], "int32"), -100);
      const got = rd(
        fused(
          be,
          "crossEntropyBackward",
          up(big, [2, 3]),
          up(t, [2], "int32"),
          { buf: lse, shape: [2], dtype: "float32" },
          up(g, [2]),
          -100,
        ),
        [2, 3],
        "float32",
      );
      assertClose(
        got,
        refCrossEntropyBackward(big, 2, 3, t, g, -100),
        { rtol: 1e-4, atol: 1e3 * 2 ** -22 },
        "crossEntropyBackward of large logits",
      );
    });

    it("each fused kernel, as ops call it, agrees with its composite in the op layer", (t) => {
      const own = new Set(ownFusedKernels(be));
      t.diagnostic(
        `backend kernels: ${[...own].join(", ") || "none"}; composites: ${FUSED_KERNELS.filter((k) => !own.has(k)).join(", ") || "none"}`,
      );
      const r = rng(41);
      const n = 6,
        c = 11,
        e = 5,
        eps = 1e-5;
      const tg = ints(r, n, 0, c - 1);
      tg[2] = -100;
      const x = up(uniform(r, n * c, -4, 4), [n, c]),
        T = up(tg, [n], "int32"),
        g = up(uniform(r, n, -2, 2), [n]);
      const dy = up(uniform(r, n * c, -1, 1), [n, c]),
        gamma = up(uniform(r, c, 0.5, 1.5), [c]),
        beta = up(uniform(r, c, -1, 1), [c]);
      const xe = up(uniform(r, n * e, -1.5, 1.5), [n, e]),
        w = up(uniform(r, c * e, -1.5, 1.5), [c, e]);
      const f = (buf: unknown, shape: Shape): TensorInfo => ({ buf, shape, dtype: "float32" });
      const lse = f(composite(be, "crossEntropy", x, T, -100).lse, [n]);
      const stats = composite(be, "layerNorm", x, gamma, beta, eps);
      const lseL = f(composite(be, "linearCrossEntropy", xe, w, T, -100).lse, [n]);
      type Case<K extends FusedKernelName> = { args: Parameters<NonNullable<Backend[K]>>; shapes: Shape | Record<string, Shape> };
      // one case per fused kernel (a new kernel without a case does not compile)
      const cases: { [K in FusedKernelName]: Case<K> } = {
        softmax: { args: [x, true], shapes: [n, c] },
        crossEntropy: { args: [x, T, -100], shapes: { loss: [n], lse: [n] } },
        crossEntropyBackward: { args: [x, T, lse, g, -100], shapes: [n, c] },
        layerNorm: { args: [x, gamma, beta, eps], shapes: { y: [n, c], mean: [n], rstd: [n] } },
        layerNormBackward: {
          args: [x, gamma, f(stats.mean, [n]), f(stats.rstd, [n]), dy, true],
          shapes: { dx: [n, c], dgamma: [c], dbeta: [c] },
        },
        geluBackward: { args: [x, dy], shapes: [n, c] },
        dropout: { args: [x, 0x12345678, 0x9abcdef0, 0.3], shapes: [n, c] },
        linearCrossEntropy: { args: [xe, w, T, -100], shapes: { loss: [n], lse: [n] } },
        linearCrossEntropyBackward: { args: [xe, w, T, lseL, g, -100], shapes: { dx: [n, e], dw: [c, e] } },
        linearCrossEntropyWithGrad: { args: [xe, w, T, -100], shapes: { loss: [n], lse: [n], dx: [n, e], dw: [c, e] } },
      };
      assert.deepEqual(Object.keys(cases).sort(), [...FUSED_KERNELS].sort());
      for (const name of FUSED_KERNELS) {
        const { args, shapes } = cases[name] as Case<typeof name>;
        const run = (k: (...a: unknown[]) => unknown) => k(...(args as unknown[])) as Record<string, unknown> | unknown;
        const kernelOut = run((...a) => (fused as (...b: unknown[]) => unknown)(be, name, ...a));
        const compOut = run((...a) => (composite as (...b: unknown[]) => unknown)(be, name, ...a));
        const outs: [string, Shape][] = Array.isArray(shapes) ? [["", shapes]] : Object.entries(shapes);
        for (const [key, shape] of outs) {
          const kb = key ? (kernelOut as Record<string, unknown>)[key] : kernelOut,
            cb = key ? (compOut as Record<string, unknown>)[key] : compOut;
          const ref = Array.from(rd(cb, shape, "float32"));
          const scale = Math.max(...ref.map(Math.abs));
          assertClose(
            rd(kb, shape, "float32"),
            ref,
            { ...tolOf(name), rtol: Math.max(tolOf(name).rtol, 1e-5) },
            `${name}${key ? `.${key}` : ""}: ${own.has(name) ? "kernel" : "composite"} vs composite`,
            ref.map(() => scale),
          );
        }
      }
    });

    it("dispose frees one buffer and leaves the others intact", () => {
      const a = up([1, 2, 3], [3]);
      const b = be.binary("add", a, up([1], []), [3], "float32");
      be.dispose(a.buf);
      be.dispose(a.buf);
      assert.deepEqual(Array.from(rd(b, [3], "float32")), [2, 3, 4]);
    });

    if (opts.float64) {
      it("float64 kernels at float64 accuracy", () => {
        const r = rng(25);
        const tight: Tol = { rtol: 1e-13, atol: 1e-15 };
        const x = Float64Array.from(uniform(r, 15, -3, 3), (v, i) => v + i * 1e-9);
        const y = Float64Array.from(uniform(r, 20, -3, 3), (v) => v + 1e-10);
        const X = up(x, [3, 5], "float64"),
          Y = up(y, [5, 4], "float64");
        for (const op of ["exp", "tanh", "gelu", "sigmoid", "sin"] as UnaryOp[]) {
          assertClose(rd(be.unary(op, X, "float64"), [3, 5], "float64"), Array.from(x, UNARY_REF[op]), tight, `float64 ${op}`);
        }
        const mm = refMatmul(x, [3, 5], y, [5, 4], false, false);
        assertClose(rd(be.matmul(X, Y, false, false, [3, 4]), [3, 4], "float64"), mm.out, tight, "float64 matmul", mm.scale);
        const sm = refSoftmax(x, [3, 5], true);
        assertClose(rd(fused(be, "softmax", X, true), [3, 5], "float64"), sm, tight, "float64 logSoftmax");
        const s = refReduce("sum", x, [3, 5], [1]);
        assertClose(rd(be.reduce("sum", X, [1]), [3], "float64"), s.out, tight, "float64 sum", s.scale);
        const ln = fused(be, "layerNorm", X, null, null, 1e-5);
        const refLn = refLayerNorm(x, 3, 5, null, null, 1e-5);
        assertClose(rd(ln.y, [3, 5], "float64"), refLn.y, tight, "float64 layerNorm");
        const dyLn = Float64Array.from(x, (v, i) => Math.sin(v + i));
        const lnb = fused(
          be,
          "layerNormBackward",
          X,
          null,
          { buf: ln.mean, shape: [3], dtype: "float64" },
          { buf: ln.rstd, shape: [3], dtype: "float64" },
          up(dyLn, [3, 5], "float64"),
          true,
        );
        assertClose(
          rd(lnb.dx, [3, 5], "float64"),
          refLayerNormBackward(x, 3, 5, null, dyLn, 1e-5).dx,
          tight,
          "float64 layerNorm backward",
          new Float64Array(15).fill(3),
        );
        assertClose(
          rd(fused(be, "geluBackward", X, up(dyLn, [3, 5], "float64")), [3, 5], "float64"),
          refGeluBackward(x, dyLn),
          tight,
          "float64 geluBackward",
        );
      });
    }

    describe("gradients on the backend agree with the cpu backend", () => {
      const gtol = () => tolOf("grad");
      /** Evaluates f(...args) and its gradients on a backend; returns host arrays. */
      const evalOn = (
        target: Backend | "cpu",
        data: { values: Float32Array; shape: Shape }[],
        f: (...xs: Tensor[]) => Tensor,
        extra: () => Tensor[] = () => [],
      ) => {
        const prev = getBackend();
        setBackend(target);
        try {
          const xs = data.map((d) => tensor(d.values.slice(), { shape: d.shape }));
          const ex = extra();
          const g = grad((...a: Tensor[]) => f(...a.slice(0, xs.length), ...ex), { argnums: xs.map((_, i) => i) })(...xs) as Tensor[];
          const value = f(...xs, ...ex);
          return { value: Array.from(value.data()), grads: g.map((t) => Array.from(t.data())) };
        } finally {
          setBackend(prev);
        }
      };
      const compare = (
        label: string,
        data: { values: Float32Array; shape: Shape }[],
        f: (...xs: Tensor[]) => Tensor,
        extra?: () => Tensor[],
      ) => {
        const ref = evalOn("cpu", data, f, extra);
        const got = evalOn(be, data, f, extra);
        assertClose(got.value, ref.value, gtol(), `${label}: value`);
        got.grads.forEach((g, i) =>
          assertClose(
            g,
            ref.grads[i],
            gtol(),
            `${label}: gradient of argument ${i}`,
            ref.grads[i].map(() => Math.max(...ref.grads[i].map(Math.abs))),
          ),
        );
      };

      it("MLP with layerNorm, gelu and cross-entropy", () => {
        const r = rng(31);
        const data = [
          { values: uniform(r, 6 * 8), shape: [6, 8] },
          { values: uniform(r, 8 * 16, -0.5, 0.5), shape: [8, 16] },
          { values: uniform(r, 16, -0.1, 0.1), shape: [16] },
          { values: uniform(r, 16 * 5, -0.5, 0.5), shape: [16, 5] },
          { values: uniform(r, 8, 0.5, 1.5), shape: [8] },
        ];
        const targets = () => [tensor([0, 4, 2, -100, 1, 3], { dtype: "int32" })];
        compare(
          "mlp",
          data,
          (x, w1, b1, w2, gamma, t) => crossEntropy(matmul(gelu(matmul(layerNorm(x, gamma), w1).add(b1)), w2), t),
          targets,
        );
      });

      it("causal attention: masked softmax of q·kᵀ, then ·v", () => {
        const r = rng(32);
        const T = 5,
          D = 4;
        const data = [
          { values: uniform(r, 2 * T * D), shape: [2, T, D] },
          { values: uniform(r, 2 * T * D), shape: [2, T, D] },
          { values: uniform(r, 2 * T * D), shape: [2, T, D] },
        ];
        compare("attention", data, (q, k, v) => {
          const s = matmul(q, mT(k)).mul(1 / Math.sqrt(D));
          const p = softmax(where(causalMask(T), s, -Infinity));
          const o = matmul(p, v);
          return sum(o.mul(o));
        });
      });

      it("take, concat, slice, transpose, max, logsumexp and a chain of unary ops", () => {
        const r = rng(33);
        const data = [
          { values: uniform(r, 5 * 3, 0.1, 2), shape: [5, 3] },
          { values: uniform(r, 4 * 3), shape: [4, 3] },
        ];
        compare("shape ops", data, (a, b) => {
          const idx = tensor([4, 0, 4, 2], { dtype: "int32" });
          const g = take(a, idx, 0);
          const c = concat([g, b], 0);
          const s = slice(transpose(c), [0, 1], [3, 8], [1, 2]);
          const u = tanh(sqrt(pow(s.mul(s).add(1), 0.75))).add(sigmoid(log1p(s.mul(s))));
          return mean(max(u, 1)).add(sum(logsumexp(reshape(c, [4, 6]), 1)));
        });
      });
    });
  });
}
