/**
 * Random cases of every op of the op modules for the transform property tests (vmap, jit): per-slice inputs
 * built from a seed (same shapes for every seed) and the function applying the op.
 */
import fc from "fast-check";
import * as ag from "../src/index.js";
import type { Tensor } from "../src/index.js";
import { lcg } from "./gradcheck.js";

export type Kind = "any" | "pos" | "grid";

function values(n: number, seed: number, kind: Kind): Float64Array {
  const r = lcg(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = r();
    out[i] = kind === "any" ? 2 * v : kind === "pos" ? 1.5 + v : Math.round(v * 6) * 0.3;
  }
  return out;
}
export const T = (shape: number[], seed: number, kind: Kind = "any"): Tensor =>
  ag.tensor(
    values(
      shape.reduce((a, b) => a * b, 1),
      seed,
      kind,
    ),
    { dtype: "float64", shape },
  );
const I = (shape: number[], seed: number, n: number): Tensor => {
  const r = lcg(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  return ag.tensor(
    Int32Array.from({ length: size }, () => Math.floor(((r() + 1) / 2) * n) % n),
    { dtype: "int32", shape },
  );
};

/** A case: per-slice inputs built from a seed (same shapes for every seed), the function, unmappable inputs. */
export interface Case {
  f: (...xs: Tensor[]) => Tensor | Tensor[];
  build: (seed: number) => Tensor[];
  /** inputs that must stay unmapped (read on the host by the op) */
  fixed?: number[];
}

const dim = fc.integer({ min: 1, max: 3 });
const shapeArb = (minRank = 0, maxRank = 3) => fc.array(dim, { minLength: minRank, maxLength: maxRank });
export const seedArb = fc.integer({ min: 1, max: 2 ** 31 - 1 });

export const cases = new Map<string, fc.Arbitrary<Case>>();
const add = (names: string | string[], arb: fc.Arbitrary<Case>) => {
  for (const n of typeof names === "string" ? [names] : names) cases.set(n, arb);
};
const unaryCase = (f: (x: Tensor) => Tensor, kind: Kind = "any") =>
  shapeArb().map((shape): Case => ({ f, build: (s) => [T(shape, s, kind)] }));

const unaries: [string, (x: Tensor) => Tensor, Kind][] = [
  ["neg", ag.neg, "any"],
  ["exp", ag.exp, "any"],
  ["log", ag.log, "pos"],
  ["log1p", ag.log1p, "pos"],
  ["sqrt", ag.sqrt, "pos"],
  ["rsqrt", ag.rsqrt, "pos"],
  ["abs", ag.abs, "any"],
  ["sin", ag.sin, "any"],
  ["cos", ag.cos, "any"],
  ["tanh", ag.tanh, "any"],
  ["sigmoid", ag.sigmoid, "any"],
  ["relu", ag.relu, "any"],
  ["gelu", ag.gelu, "any"],
  ["silu", ag.silu, "any"],
  ["square", ag.square, "any"],
  ["reciprocal", ag.reciprocal, "pos"],
  ["sign", ag.sign, "grid"],
  ["step", ag.step, "grid"],
  ["floor", ag.floor, "any"],
  ["isFinite", (x) => ag.isFinite(ag.log(x)), "any"],
  ["stopGradient", (x) => ag.mul(ag.stopGradient(x), x), "any"],
];
for (const [n, f, k] of unaries) add(n, unaryCase(f, k));

/** Two broadcast-compatible shapes. */
const pairArb = fc
  .record({
    shape: shapeArb(0, 3),
    drop: fc.integer({ min: 0, max: 3 }),
    ones: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
    swap: fc.boolean(),
  })
  .map(({ shape, drop, ones, swap }) => {
    const other = shape.slice(Math.min(drop, shape.length)).map((d, i) => (ones[i] ? 1 : d));
    return swap ? [other, shape] : [shape, other];
  });
const binaries: [string, (a: Tensor, b: Tensor) => Tensor, Kind, Kind][] = [
  ["add", ag.add, "any", "any"],
  ["sub", ag.sub, "any", "any"],
  ["mul", ag.mul, "any", "any"],
  ["div", ag.div, "any", "pos"],
  ["pow", ag.pow, "pos", "any"],
  ["maximum", ag.maximum, "grid", "grid"],
  ["minimum", ag.minimum, "grid", "grid"],
  ["eq", ag.eq, "grid", "grid"],
  ["ne", ag.ne, "grid", "grid"],
  ["lt", ag.lt, "grid", "grid"],
  ["le", ag.le, "grid", "grid"],
  ["gt", ag.gt, "grid", "grid"],
  ["ge", ag.ge, "grid", "grid"],
];
for (const [n, f, ka, kb] of binaries)
  add(
    n,
    pairArb.map(([a, b]): Case => ({ f, build: (s) => [T(a, s, ka), T(b, s + 7, kb)] })),
  );
add(
  "clamp",
  unaryCase((x) => ag.clamp(x, -0.5, 0.6), "grid"),
);
add(
  "where",
  pairArb.map(
    ([a, b]): Case => ({ f: (c, x, y) => ag.where(ag.gt(c, 0), x, y), build: (s) => [T(a, s, "grid"), T(a, s + 1), T(b, s + 2)] }),
  ),
);
const reduceArb = fc.record({
  shape: shapeArb(1, 3),
  pick: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
  keepdims: fc.boolean(),
});
const reductions: [string, (x: Tensor, ax: number[], o: { keepdims: boolean }) => Tensor, Kind][] = [
  ["sum", ag.sum, "any"],
  ["mean", ag.mean, "any"],
  ["max", ag.max, "grid"],
  ["min", ag.min, "grid"],
  ["variance", ag.variance, "any"],
  ["logsumexp", ag.logsumexp, "any"],
];
for (const [n, f, k] of reductions) {
  add(
    n,
    reduceArb.map(({ shape, pick, keepdims }): Case => {
      const axes = shape.flatMap((_, i) => (pick[i] ? [i] : []));
      return { f: (x) => f(x, axes, { keepdims }), build: (s) => [T(shape, s, k)] };
    }),
  );
}
const mm = fc.record({ m: dim, k: dim, n: dim, batch: shapeArb(0, 2), bb: fc.boolean(), ta: fc.boolean(), tb: fc.boolean() });
add(
  "matmul",
  fc
    .record({ k: dim, m: dim, n: dim, ra: fc.integer({ min: 1, max: 3 }), rb: fc.integer({ min: 1, max: 3 }) })
    .map(({ k, m, n, ra, rb }): Case => {
      const a = ra === 1 ? [k] : ra === 2 ? [m, k] : [2, m, k];
      const b = rb === 1 ? [k] : rb === 2 ? [k, n] : [2, k, n];
      return { f: ag.matmul, build: (s) => [T(a, s), T(b, s + 1)] };
    }),
);
add(
  "matmulT",
  mm.map(({ m, k, n, batch, bb, ta, tb }): Case => {
    const a = [...batch, ...(ta ? [k, m] : [m, k])];
    const b = [...(bb ? batch : []), ...(tb ? [n, k] : [k, n])];
    return { f: (x, y) => ag.matmulT(x, y, ta, tb), build: (s) => [T(a, s), T(b, s + 1)] };
  }),
);
add(
  "dot",
  dim.map((k): Case => ({ f: ag.dot, build: (s) => [T([k], s), T([k], s + 1)] })),
);
add(
  "reshape",
  shapeArb().map((shape): Case => ({ f: (x) => ag.reshape(x, [...shape].reverse()), build: (s) => [T(shape, s)] })),
);
const permArb = shapeArb(1, 3).chain((shape) =>
  fc
    .shuffledSubarray(
      shape.map((_, i) => i),
      { minLength: shape.length, maxLength: shape.length },
    )
    .map((perm) => ({ shape, perm })),
);
add(
  ["transpose", "permute"],
  permArb.map(({ shape, perm }): Case => ({ f: (x) => ag.transpose(x, perm), build: (s) => [T(shape, s)] })),
);
add(
  "mT",
  shapeArb(2, 3).map((shape): Case => ({ f: ag.mT, build: (s) => [T(shape, s)] })),
);
add(
  "expandDims",
  fc
    .record({ shape: shapeArb(), ax: fc.nat() })
    .map(({ shape, ax }): Case => ({ f: (x) => ag.expandDims(x, ax % (shape.length + 1)), build: (s) => [T(shape, s)] })),
);
add(
  "squeeze",
  shapeArb().map((shape): Case => {
    const withOnes = shape.flatMap((d) => [d, 1]);
    return { f: (x) => ag.squeeze(x), build: (s) => [T(withOnes, s)] };
  }),
);
add(
  "broadcastTo",
  pairArb.map(([a, b]): Case => {
    const target = ag.broadcastShapes("test", a, b);
    return { f: (x) => ag.broadcastTo(x, target), build: (s) => [T(a, s)] };
  }),
);
add(
  "sumToShape",
  pairArb.map(([a, b]): Case => {
    const big = ag.broadcastShapes("test", a, b);
    return { f: (x) => ag.sumToShape(x, a), build: (s) => [T(big, s)] };
  }),
);
add(
  "slice",
  shapeArb(1, 3).chain((shape) =>
    fc
      .record({
        b: fc.tuple(...shape.map((d) => fc.integer({ min: -d, max: d - 1 }))),
        len: fc.tuple(...shape.map((d) => fc.integer({ min: 1, max: d }))),
        st: fc.tuple(...shape.map(() => fc.integer({ min: 1, max: 2 }))),
      })
      .map(
        ({ b, len, st }): Case => ({
          f: (x) =>
            ag.slice(
              x,
              b,
              b.map((v, i) => (v < 0 ? v + shape[i] : v) + len[i]),
              st,
            ),
          build: (s) => [T(shape, s)],
        }),
      ),
  ),
);
add(
  "concat",
  fc
    .record({ shape: shapeArb(1, 3), ax: fc.nat(), sizes: fc.array(dim, { minLength: 1, maxLength: 3 }) })
    .map(({ shape, ax, sizes }): Case => {
      const a = ax % shape.length;
      const shapes = sizes.map((d) => shape.map((v, i) => (i === a ? d : v)));
      return { f: (...xs) => ag.concat(xs, a), build: (s) => shapes.map((sh, i) => T(sh, s + i)) };
    }),
);
add(
  "stack",
  fc.record({ shape: shapeArb(), ax: fc.nat(), n: fc.integer({ min: 1, max: 3 }) }).map(
    ({ shape, ax, n }): Case => ({
      f: (...xs) => ag.stack(xs, ax % (shape.length + 1)),
      build: (s) => Array.from({ length: n }, (_, i) => T(shape, s + i)),
    }),
  ),
);
add(
  "split",
  fc.record({ shape: shapeArb(1, 3), ax: fc.nat() }).map(({ shape, ax }): Case => {
    const a = ax % shape.length;
    const full = shape.map((d, i) => (i === a ? d + 1 : d));
    return { f: (x) => ag.split(x, [1, shape[a]], a), build: (s) => [T(full, s)] };
  }),
);
add(
  "cast",
  shapeArb().map((shape): Case => ({ f: (x) => ag.cast(ag.cast(x, "float32"), "float64"), build: (s) => [T(shape, s)] })),
);
add(
  ["take", "gather"],
  fc.record({ shape: shapeArb(1, 3), ax: fc.nat(), idx: shapeArb(0, 2) }).map(({ shape, ax, idx }): Case => {
    const a = ax % shape.length;
    return { f: (x, i) => ag.take(x, i, a), build: (s) => [T(shape, s), I(idx, s + 3, shape[a])] };
  }),
);
add(
  "scatterAdd",
  fc.record({ shape: shapeArb(1, 3), ax: fc.nat(), idx: shapeArb(0, 2) }).map(({ shape, ax, idx }): Case => {
    const a = ax % shape.length;
    const upd = [...shape.slice(0, a), ...idx, ...shape.slice(a + 1)];
    return { f: (b, i, u) => ag.scatterAdd(b, i, u, a), build: (s) => [T(shape, s), I(idx, s + 3, shape[a]), T(upd, s + 5)] };
  }),
);
add(
  ["softmax", "logSoftmax"],
  fc.record({ shape: shapeArb(1, 3), ax: fc.nat(), log: fc.boolean() }).map(
    ({ shape, ax, log }): Case => ({
      f: (x) => (log ? ag.logSoftmax(x, ax % shape.length) : ag.softmax(x, ax % shape.length)),
      build: (s) => [T(shape, s)],
    }),
  ),
);
const ceArb = fc.record({ n: dim, c: fc.integer({ min: 2, max: 4 }) });
add(
  "softmaxCrossEntropy",
  ceArb.map(
    ({ n, c }): Case => ({ f: (x, t) => ag.softmaxCrossEntropy(x, t), build: (s) => [T([n, c], s), I([n], s + 1, c)], fixed: [1] }),
  ),
);
add(
  "crossEntropy",
  fc
    .record({
      n: dim,
      c: fc.integer({ min: 2, max: 4 }),
      red: fc.constantFrom("mean", "sum", "none") as fc.Arbitrary<"mean" | "sum" | "none">,
    })
    .map(
      ({ n, c, red }): Case => ({
        f: (x, t) => ag.crossEntropy(x, t, { reduction: red }),
        build: (s) => [T([2, n, c], s), I([2, n], s + 1, c)],
        fixed: [1],
      }),
    ),
);
add(
  "linearCrossEntropy",
  fc
    .record({
      n: dim,
      e: dim,
      v: fc.integer({ min: 2, max: 4 }),
      red: fc.constantFrom("mean", "sum", "none") as fc.Arbitrary<"mean" | "sum" | "none">,
    })
    .map(
      ({ n, e, v, red }): Case => ({
        f: (x, w, t) => ag.linearCrossEntropy(x, w, t, { reduction: red }),
        build: (s) => [T([n, e], s), T([v, e], s + 1), I([n], s + 2, v)],
        fixed: [2],
      }),
    ),
);
add(
  "oneHot",
  fc
    .record({ shape: shapeArb(0, 2), n: fc.integer({ min: 1, max: 4 }) })
    .map(({ shape, n }): Case => ({ f: (i) => ag.oneHot(i, n, "float64"), build: (s) => [I(shape, s, n)] })),
);
add(
  "causalMask",
  dim.map((t): Case => ({ f: (x) => ag.where(ag.causalMask(t), x, 0), build: (s) => [T([t, t], s)] })),
);
add(
  "layerNorm",
  fc.record({ shape: shapeArb(1, 3), params: fc.constantFrom(0, 1, 2), full: fc.boolean() }).map(({ shape, params, full }): Case => {
    const c = shape[shape.length - 1];
    const p = full ? shape : [c];
    return {
      f: (x, ...ps) => ag.layerNorm(x, ps[0] ?? null, ps[1] ?? null),
      build: (s) => [T(shape, s), ...Array.from({ length: params }, (_, i) => T(p, s + 1 + i))],
    };
  }),
);
add(
  "dropout",
  shapeArb(1, 3).map((shape): Case => {
    const key = ag.random.key(5);
    return { f: (x) => ag.dropout(x, 0.3, key, true), build: (s) => [T(shape, s)] };
  }),
);
