import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as ag from "../src/index.js";
import { DIFFERENTIABLE_OPS, type Tensor } from "../src/index.js";
import { checkGradients, lcg, type CheckOptions } from "./gradcheck.js";

type Kind = "any" | "pos" | "away" | "grid" | "gridOff";

function values(n: number, seed: number, kind: Kind): Float64Array {
  const r = lcg(seed);
  const out = new Float64Array(n);
  if (kind === "grid" || kind === "gridOff") {
    // distinct values on a 0.3 grid (shuffled), so extrema and comparisons never tie under a small perturbation
    const idx = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(((r() + 1) / 2) * (i + 1)) % (i + 1);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    for (let i = 0; i < n; i++) out[i] = (idx[i] - n / 2) * 0.3 + (kind === "gridOff" ? 0.1 : 0);
    return out;
  }
  for (let i = 0; i < n; i++) {
    const v = r();
    out[i] = kind === "any" ? 2 * v : kind === "pos" ? 1.5 + v : Math.sign(v || 1) * (0.3 + 1.7 * Math.abs(v));
  }
  return out;
}

function T(shape: number[], seed: number, kind: Kind = "any"): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return ag.tensor(values(n, seed, kind), { dtype: "float64", shape });
}

const dim = fc.integer({ min: 1, max: 4 });
const shapeArb = (minRank = 0, maxRank = 3) => fc.array(dim, { minLength: minRank, maxLength: maxRank });
const seedArb = fc.integer({ min: 1, max: 2 ** 31 - 1 });

/** A shape and a second shape broadcast-compatible with it (leading axes dropped / axes set to 1). */
const bcastPair = fc
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

interface Spec {
  name: string;
  arb: fc.Arbitrary<{ f: (...xs: Tensor[]) => unknown; inputs: Tensor[]; diff: number[]; seed: number; opts?: CheckOptions }>;
}

const covered = new Set<string>();
const specs: Spec[] = [];
function spec(name: string | string[], arb: Spec["arb"]): void {
  for (const n of typeof name === "string" ? [name] : name) {
    covered.add(n);
    specs.push({ name: n, arb });
  }
}

const unaryDomains: [string, (x: Tensor) => Tensor, Kind][] = [
  ["neg", ag.neg, "any"],
  ["exp", ag.exp, "any"],
  ["log", ag.log, "pos"],
  ["log1p", ag.log1p, "pos"],
  ["sqrt", ag.sqrt, "pos"],
  ["rsqrt", ag.rsqrt, "pos"],
  ["abs", ag.abs, "away"],
  ["sin", ag.sin, "any"],
  ["cos", ag.cos, "any"],
  ["tanh", ag.tanh, "any"],
  ["sigmoid", ag.sigmoid, "any"],
  ["relu", ag.relu, "away"],
  ["gelu", ag.gelu, "any"],
  ["silu", ag.silu, "any"],
  ["square", ag.square, "any"],
  ["reciprocal", ag.reciprocal, "away"],
];
for (const [name, f, kind] of unaryDomains) {
  spec(
    name,
    fc.record({ shape: shapeArb(), seed: seedArb }).map(({ shape, seed }) => ({ f, inputs: [T(shape, seed, kind)], diff: [0], seed })),
  );
}

const binaries: [string, (a: Tensor, b: Tensor) => Tensor, Kind, Kind][] = [
  ["add", ag.add, "any", "any"],
  ["sub", ag.sub, "any", "any"],
  ["mul", ag.mul, "any", "any"],
  ["div", ag.div, "any", "away"],
  ["pow", ag.pow, "pos", "any"],
  ["maximum", ag.maximum, "grid", "gridOff"],
  ["minimum", ag.minimum, "grid", "gridOff"],
];
for (const [name, f, ka, kb] of binaries) {
  spec(
    name,
    fc.record({ pair: bcastPair, seed: seedArb }).map(({ pair, seed }) => ({
      f,
      inputs: [T(pair[0], seed, ka), T(pair[1], seed + 1, kb)],
      diff: [0, 1],
      seed,
    })),
  );
}

spec(
  "clamp",
  fc.record({ shape: shapeArb(), seed: seedArb }).map(({ shape, seed }) => ({
    f: (x: Tensor) => ag.clamp(x, -0.8, 0.8),
    inputs: [T(shape, seed, "grid")],
    diff: [0],
    seed,
  })),
);

spec(
  "where",
  fc.record({ pair: bcastPair, seed: seedArb }).map(({ pair, seed }) => {
    const r = lcg(seed + 7);
    const condShape = pair[0];
    const cond = ag.tensor(
      Uint8Array.from({ length: condShape.reduce((a, b) => a * b, 1) }, () => (r() > 0 ? 1 : 0)),
      { dtype: "bool", shape: condShape },
    );
    return { f: (a: Tensor, b: Tensor) => ag.where(cond, a, b), inputs: [T(pair[0], seed), T(pair[1], seed + 1)], diff: [0, 1], seed };
  }),
);

const axesArb = (rank: number) => fc.subarray(Array.from({ length: rank }, (_, i) => i));
const reduceCase = (kind: Kind) =>
  fc
    .record({
      shape: shapeArb(1, 3),
      seed: seedArb,
      keepdims: fc.boolean(),
      mask: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      all: fc.boolean(),
    })
    .map(({ shape, seed, keepdims, mask, all }) => ({
      shape,
      seed,
      keepdims,
      axes: all ? undefined : shape.map((_, i) => i).filter((i) => mask[i]),
      kind,
    }));
void axesArb;
const reductions: [string, (x: Tensor, axes: number[] | undefined, o: { keepdims: boolean }) => Tensor, Kind][] = [
  ["sum", ag.sum, "any"],
  ["mean", ag.mean, "any"],
  ["max", ag.max, "grid"],
  ["min", ag.min, "grid"],
  ["variance", ag.variance, "any"],
  ["logsumexp", ag.logsumexp, "any"],
];
for (const [name, f, kind] of reductions) {
  spec(
    name,
    reduceCase(kind).map(({ shape, seed, keepdims, axes }) => ({
      f: (x: Tensor) => f(x, axes, { keepdims }),
      inputs: [T(shape, seed, kind)],
      diff: [0],
      seed,
    })),
  );
}

// matmul with NumPy rules: 1-D operands and broadcast batch axes
spec(
  "matmul",
  fc
    .record({
      m: dim,
      k: dim,
      n: dim,
      batchA: shapeArb(0, 2),
      ones: fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }),
      vecA: fc.boolean(),
      vecB: fc.boolean(),
      seed: seedArb,
    })
    .map(({ m, k, n, batchA, ones, vecA, vecB, seed }) => {
      const batchB = batchA.map((d, i) => (ones[i] ? 1 : d)).slice(ones[1] ? 1 : 0);
      const a = vecA ? [k] : [...batchA, m, k];
      const b = vecB ? [k] : [...batchB, k, n];
      return { f: ag.matmul, inputs: [T(a, seed), T(b, seed + 1)], diff: [0, 1], seed };
    }),
);
spec(
  "matmulT",
  fc
    .record({ m: dim, k: dim, n: dim, batch: shapeArb(0, 1), tA: fc.boolean(), tB: fc.boolean(), seed: seedArb })
    .map(({ m, k, n, batch, tA, tB, seed }) => ({
      f: (a: Tensor, b: Tensor) => ag.matmulT(a, b, tA, tB),
      inputs: [T([...batch, ...(tA ? [k, m] : [m, k])], seed), T([...(tB ? [n, k] : [k, n])], seed + 1)],
      diff: [0, 1],
      seed,
    })),
);
spec(
  "dot",
  fc.record({ k: dim, seed: seedArb }).map(({ k, seed }) => ({ f: ag.dot, inputs: [T([k], seed), T([k], seed + 1)], diff: [0, 1], seed })),
);

// shape ops
spec(
  "reshape",
  fc.record({ shape: shapeArb(1, 3), seed: seedArb }).map(({ shape, seed }) => ({
    f: (x: Tensor) => ag.mul(ag.reshape(x, [...shape].reverse()), 1.5),
    inputs: [T(shape, seed)],
    diff: [0],
    seed,
  })),
);
const permArb = (rank: number) =>
  fc.shuffledSubarray(
    Array.from({ length: rank }, (_, i) => i),
    { minLength: rank, maxLength: rank },
  );
for (const name of ["transpose", "permute"]) {
  spec(
    name,
    shapeArb(1, 3).chain((shape) =>
      fc.record({ perm: permArb(shape.length), seed: seedArb }).map(({ perm, seed }) => ({
        f: (x: Tensor) => (name === "transpose" ? ag.transpose(x, perm) : ag.permute(x, perm)),
        inputs: [T(shape, seed)],
        diff: [0],
        seed,
      })),
    ),
  );
}
spec(
  "mT",
  fc.record({ shape: shapeArb(2, 3), seed: seedArb }).map(({ shape, seed }) => ({ f: ag.mT, inputs: [T(shape, seed)], diff: [0], seed })),
);
spec(
  "expandDims",
  fc.record({ shape: shapeArb(0, 2), seed: seedArb, ax: fc.nat() }).map(({ shape, seed, ax }) => ({
    f: (x: Tensor) => ag.mul(ag.expandDims(x, ax % (shape.length + 1)), 2),
    inputs: [T(shape, seed)],
    diff: [0],
    seed,
  })),
);
spec(
  "squeeze",
  fc.record({ shape: shapeArb(0, 3), seed: seedArb }).map(({ shape, seed }) => ({
    f: (x: Tensor) => ag.mul(ag.squeeze(x), 2),
    inputs: [T([1, ...shape, 1], seed)],
    diff: [0],
    seed,
  })),
);
spec(
  "broadcastTo",
  fc.record({ pair: bcastPair, seed: seedArb }).map(({ pair, seed }) => {
    const target = ag.broadcastShapes("test", pair[0], pair[1]);
    return { f: (x: Tensor) => ag.broadcastTo(x, target), inputs: [T(pair[0], seed)], diff: [0], seed };
  }),
);
spec(
  "sumToShape",
  fc.record({ pair: bcastPair, seed: seedArb }).map(({ pair, seed }) => {
    const big = ag.broadcastShapes("test", pair[0], pair[1]);
    return { f: (x: Tensor) => ag.sumToShape(x, pair[0]), inputs: [T(big, seed)], diff: [0], seed };
  }),
);
spec(
  "slice",
  shapeArb(1, 3).chain((shape) =>
    fc
      .record({
        seed: seedArb,
        b: fc.array(fc.integer({ min: -4, max: 3 }), { minLength: shape.length, maxLength: shape.length }),
        e: fc.array(fc.option(fc.integer({ min: -4, max: 4 })), { minLength: shape.length, maxLength: shape.length }),
        s: fc.array(fc.integer({ min: 1, max: 2 }), { minLength: shape.length, maxLength: shape.length }),
      })
      .map(({ seed, b, e, s }) => ({ f: (x: Tensor) => ag.slice(x, b, e, s), inputs: [T(shape, seed)], diff: [0], seed })),
  ),
);
spec(
  "concat",
  fc
    .record({ shape: shapeArb(1, 3), seed: seedArb, ax: fc.nat(), extra: fc.array(dim, { minLength: 2, maxLength: 3 }) })
    .map(({ shape, seed, ax, extra }) => {
      const a = ax % shape.length;
      const shapes = extra.map((d) => shape.map((s, i) => (i === a ? d : s)));
      return {
        f: (...xs: Tensor[]) => ag.concat(xs, a),
        inputs: shapes.map((s, i) => T(s, seed + i)),
        diff: shapes.map((_, i) => i),
        seed,
      };
    }),
);
spec(
  "stack",
  fc.record({ shape: shapeArb(0, 2), seed: seedArb, ax: fc.nat(), n: fc.integer({ min: 1, max: 3 }) }).map(({ shape, seed, ax, n }) => ({
    f: (...xs: Tensor[]) => ag.stack(xs, ax % (shape.length + 1)),
    inputs: Array.from({ length: n }, (_, i) => T(shape, seed + i)),
    diff: Array.from({ length: n }, (_, i) => i),
    seed,
  })),
);
spec(
  "split",
  fc.record({ shape: shapeArb(1, 3), seed: seedArb, ax: fc.nat() }).map(({ shape, seed, ax }) => {
    const a = ax % shape.length;
    const n = shape[a];
    const sizes = n === 1 ? [1] : [1, n - 1];
    return { f: (x: Tensor) => ag.split(x, sizes, a).map((p, i) => ag.mul(p, i + 1)), inputs: [T(shape, seed)], diff: [0], seed };
  }),
);
const takeCase = fc.record({
  shape: shapeArb(1, 3),
  seed: seedArb,
  ax: fc.nat(),
  idx: fc.array(fc.nat(), { minLength: 1, maxLength: 5 }),
  idx2d: fc.boolean(),
});
for (const name of ["take", "gather"]) {
  spec(
    name,
    takeCase.map(({ shape, seed, ax, idx, idx2d }) => {
      const a = ax % shape.length;
      const ids = idx.map((i) => i % shape[a]);
      const indices =
        idx2d && ids.length % 2 === 0 ? ag.tensor(ids, { dtype: "int32", shape: [2, ids.length / 2] }) : ag.tensor(ids, { dtype: "int32" });
      return {
        f: (x: Tensor) => (name === "take" ? ag.take(x, indices, a) : ag.gather(x, indices, a)),
        inputs: [T(shape, seed)],
        diff: [0],
        seed,
      };
    }),
  );
}
spec(
  "scatterAdd",
  takeCase.map(({ shape, seed, ax, idx }) => {
    const a = ax % shape.length;
    const ids = idx.map((i) => i % shape[a]);
    const upd = [...shape.slice(0, a), ids.length, ...shape.slice(a + 1)];
    const indices = ag.tensor(ids, { dtype: "int32" });
    return {
      f: (base: Tensor, u: Tensor) => ag.scatterAdd(base, indices, u, a),
      inputs: [T(shape, seed), T(upd, seed + 1)],
      diff: [0, 1],
      seed,
    };
  }),
);
spec(
  "cast",
  fc.record({ shape: shapeArb(), seed: seedArb }).map(({ shape, seed }) => ({
    f: (x: Tensor) => ag.cast(ag.mul(ag.cast(x, "float32"), 3), "float64"),
    inputs: [T(shape, seed)],
    diff: [0],
    seed,
    opts: { h: 1e-2, atol: 1e-4, rtol: 1e-4, adjointRtol: 1e-6 },
  })),
);

// nn ops
for (const name of ["softmax", "logSoftmax"]) {
  spec(
    name,
    fc.record({ shape: shapeArb(1, 3), seed: seedArb, ax: fc.nat() }).map(({ shape, seed, ax }) => ({
      f: (x: Tensor) => (name === "softmax" ? ag.softmax(x, ax % shape.length) : ag.logSoftmax(x, ax % shape.length)),
      inputs: [T(shape, seed)],
      diff: [0],
      seed,
    })),
  );
}
spec(
  "softmaxCrossEntropy",
  fc
    .record({
      n: dim,
      c: fc.integer({ min: 2, max: 5 }),
      seed: seedArb,
      t: fc.array(fc.integer({ min: -1, max: 4 }), { minLength: 4, maxLength: 4 }),
    })
    .map(({ n, c, seed, t }) => {
      const targets = ag.tensor(
        Array.from({ length: n }, (_, i) => (t[i] < 0 ? -100 : t[i] % c)),
        { dtype: "int32" },
      );
      return { f: (x: Tensor) => ag.softmaxCrossEntropy(x, targets), inputs: [T([n, c], seed)], diff: [0], seed };
    }),
);
spec(
  "crossEntropy",
  fc
    .record({
      b: dim,
      t: dim,
      c: fc.integer({ min: 2, max: 5 }),
      seed: seedArb,
      red: fc.constantFrom("mean", "sum", "none") as fc.Arbitrary<"mean" | "sum" | "none">,
    })
    .map(({ b, t, c, seed, red }) => {
      const r = lcg(seed + 3);
      const targets = ag.tensor(
        Array.from({ length: b * t }, (_, i) => (i === 0 ? 0 : r() > 0.7 ? -1 : Math.floor(((r() + 1) / 2) * c) % c)),
        { dtype: "int32", shape: [b, t] },
      );
      return {
        f: (x: Tensor) => ag.crossEntropy(x, targets, { ignoreIndex: -1, reduction: red }),
        inputs: [T([b, t, c], seed)],
        diff: [0],
        seed,
      };
    }),
);
const linCeCase = fc
  .record({
    lead: shapeArb(1, 2),
    e: fc.integer({ min: 1, max: 4 }),
    v: fc.integer({ min: 2, max: 6 }),
    seed: seedArb,
    red: fc.constantFrom("mean", "sum", "none") as fc.Arbitrary<"mean" | "sum" | "none">,
  })
  .map(({ lead, e, v, seed, red }) => {
    const r = lcg(seed + 5);
    const n = lead.reduce((a, b) => a * b, 1);
    const targets = ag.tensor(
      Array.from({ length: n }, (_, i) => (i === 0 ? 0 : r() > 0.7 ? -1 : Math.floor(((r() + 1) / 2) * v) % v)),
      { dtype: "int32", shape: lead },
    );
    return { x: T([...lead, e], seed), w: T([v, e], seed + 1), targets, red, seed };
  });
spec(
  "linearCrossEntropy",
  linCeCase.map(({ x, w, targets, red, seed }) => ({
    f: (a: Tensor, b: Tensor) => ag.linearCrossEntropy(a, b, targets, { ignoreIndex: -1, reduction: red }),
    inputs: [x, w],
    diff: [0, 1],
    seed,
  })),
);
spec(
  "linearCrossEntropy (second order)",
  linCeCase.map(({ x, w, targets, seed }) => {
    const f = (a: Tensor, b: Tensor, g: Tensor) =>
      ag.vjp((p: Tensor, q: Tensor) => ag.linearCrossEntropy(p, q, targets, { ignoreIndex: -1, reduction: "none" }), a, b)[1](g);
    return { f, inputs: [x, w, T(targets.shape as number[], seed + 2)], diff: [0, 1, 2], seed };
  }),
);
// under reverse mode a summed / averaged loss takes its gradients from the forward pass (another primitive)
spec(
  "linearCrossEntropy (second order, mean / sum)",
  linCeCase.map(({ x, w, targets, red, seed }) => {
    const reduction = red === "none" ? "mean" : red;
    const f = (a: Tensor, b: Tensor, g: Tensor) =>
      ag.vjp((p: Tensor, q: Tensor) => ag.linearCrossEntropy(p, q, targets, { ignoreIndex: -1, reduction }), a, b)[1](g);
    return { f, inputs: [x, w, T([], seed + 2)], diff: [0, 1, 2], seed };
  }),
);
/** gamma/beta layouts: [E] (fused), [1, E] (fused after a reshape), none, and a full-shape gamma (affine as ordinary ops). */
const lnCase = fc.record({
  lead: shapeArb(0, 2),
  e: fc.integer({ min: 2, max: 5 }),
  seed: seedArb,
  layout: fc.constantFrom("E", "1E", "none", "full"),
});
function lnParams({ lead, e, seed, layout }: { lead: number[]; e: number; seed: number; layout: string }): { x: Tensor; params: Tensor[] } {
  const x = T([...lead, e], seed);
  if (layout === "none") return { x, params: [] };
  const gShape = layout === "E" ? [e] : layout === "1E" ? [1, e] : [...lead, e];
  return { x, params: [T(gShape, seed + 1), T(layout === "full" ? [e] : gShape, seed + 2)] };
}
const lnApply = (x: Tensor, ...p: Tensor[]) => ag.layerNorm(x, p[0] ?? null, p[1] ?? null, 1e-5);
spec(
  "layerNorm",
  lnCase.map((c) => {
    const { x, params } = lnParams(c);
    return { f: lnApply, inputs: [x, ...params], diff: [0, ...params.map((_, i) => i + 1)], seed: c.seed };
  }),
);
// The fused backward kernels are primitives with their own rules: check those rules (second derivatives)
// by differentiating the first-order gradient once more.
spec(
  "layerNorm (second order)",
  lnCase.map((c) => {
    const { x, params } = lnParams(c);
    const k = 1 + params.length;
    const f = (...xs: Tensor[]) => ag.vjp((...ys: Tensor[]) => lnApply(ys[0], ...ys.slice(1)), ...xs.slice(0, k))[1](xs[k]);
    const ct = T(ag.layerNorm(x, params[0] ?? null, params[1] ?? null).shape as number[], c.seed + 3);
    return { f, inputs: [x, ...params, ct], diff: Array.from({ length: k + 1 }, (_, i) => i), seed: c.seed };
  }),
);
spec(
  "gelu (second order)",
  fc.record({ shape: shapeArb(0, 3), seed: seedArb }).map(({ shape, seed }) => ({
    f: (x: Tensor, g: Tensor) => ag.vjp(ag.gelu, x)[1](g)[0],
    inputs: [T(shape, seed, "any"), T(shape, seed + 1)],
    diff: [0, 1],
    seed,
  })),
);
spec(
  "dropout",
  fc.record({ shape: shapeArb(1, 3), seed: seedArb }).map(({ shape, seed }) => {
    const key = ag.random.key(seed);
    return { f: (x: Tensor) => ag.dropout(x, 0.3, key, true), inputs: [T(shape, seed)], diff: [0], seed };
  }),
);

test("every exported differentiable op has a gradient property test", () => {
  const missing = DIFFERENTIABLE_OPS.filter((n) => !covered.has(n));
  const exported = DIFFERENTIABLE_OPS.filter((n) => typeof (ag as Record<string, unknown>)[n] !== "function");
  console.log(
    `gradient property tests cover ${DIFFERENTIABLE_OPS.filter((n) => covered.has(n)).length} of ${DIFFERENTIABLE_OPS.length} differentiable ops`,
  );
  assert.deepEqual(exported, [], "names listed in DIFFERENTIABLE_OPS that are not exported functions");
  assert.deepEqual(missing, [], "differentiable ops without a property test");
});

for (const s of specs) {
  test(`gradient properties: ${s.name} (VJP vs finite differences, JVP vs finite differences, <u,Jv> = <Jᵀu,v>)`, () => {
    fc.assert(
      fc.property(s.arb, ({ f, inputs, diff, seed, opts }) => {
        checkGradients(s.name, f, inputs, diff, seed, opts);
      }),
      { numRuns: 25, seed: 20251126 },
    );
  });
}
