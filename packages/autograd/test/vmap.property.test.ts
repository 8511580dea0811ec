/**
 * vmap against a loop over slices, for every op of the op modules: for random shapes, batch sizes and mapped axes
 * (some arguments left unmapped), vmap(f)(xs) equals stacking f over the slices of xs, and the per-example
 * gradients vmap(grad(loss∘f)) equal the gradients of each slice, in float64. Plus the batching-rule table's
 * coverage of the backend kernels, composition (grad of vmap, jvp of vmap, nested vmap, jacfwd/jacrev against
 * jacobian) and the errors.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import * as ag from "../src/index.js";
import type { Tensor } from "../src/index.js";
import { OP_MODULES } from "../src/op-registry.js";
import { BATCHING_RULES } from "../src/transforms/batching.js";
import { CREATION_KERNELS, OPERAND_KERNELS } from "../src/transforms/staging.js";
import { lcg } from "./gradcheck.js";

type Kind = "any" | "pos" | "grid";

function values(n: number, seed: number, kind: Kind): Float64Array {
  const r = lcg(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = r();
    out[i] = kind === "any" ? 2 * v : kind === "pos" ? 1.5 + v : Math.round(v * 6) * 0.3;
  }
  return out;
}
const T = (shape: number[], seed: number, kind: Kind = "any"): Tensor =>
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
interface Case {
  f: (...xs: Tensor[]) => Tensor | Tensor[];
  build: (seed: number) => Tensor[];
  /** inputs that must stay unmapped (read on the host by the op) */
  fixed?: number[];
}

const dim = fc.integer({ min: 1, max: 3 });
const shapeArb = (minRank = 0, maxRank = 3) => fc.array(dim, { minLength: minRank, maxLength: maxRank });
const seedArb = fc.integer({ min: 1, max: 2 ** 31 - 1 });

const cases = new Map<string, fc.Arbitrary<Case>>();
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

// ---------------------------------------------------------------- the comparison

function close(actual: Tensor, expected: Tensor, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  const a = actual.data(),
    e = expected.data();
  for (let i = 0; i < a.length; i++) {
    const x = a[i],
      y = e[i];
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue;
    assert.ok(Math.abs(x - y) <= 1e-12 + 1e-12 * Math.abs(y), `${what}: element ${i} is ${x}; expected ${y}`);
  }
}

const leaves = (y: Tensor | Tensor[]): Tensor[] => (Array.isArray(y) ? y : [y]);
/** A smooth scalar of the float outputs (the loss differentiated per example). */
const lossOf = (y: Tensor | Tensor[]): Tensor =>
  leaves(y)
    .filter((t) => t.dtype === "float64")
    .map((t, i) => ag.sum(ag.mul(ag.sin(ag.mul(t, 1 + 0.5 * i)), t)))
    .reduce((a, b) => ag.add(a, b), ag.scalar(0, "float64"));

const batchArb = fc.record({
  B: fc.integer({ min: 1, max: 3 }),
  seed: seedArb,
  axes: fc.array(fc.integer({ min: -1, max: 3 }), { minLength: 6, maxLength: 6 }),
});

const covered: string[] = [];
for (const [name, arb] of cases) {
  covered.push(name);
  test(`vmap ${name}: values and per-example gradients equal a loop over slices`, () => {
    fc.assert(
      fc.property(arb, batchArb, (c, { B, seed, axes }) => {
        const base = c.build(seed);
        // axis per input: −1 = unmapped, otherwise an axis in [0, rank]
        const ax = base.map((x, i): number | null => (c.fixed?.includes(i) ? null : axes[i] < 0 ? null : axes[i] % (x.rank + 1)));
        if (!ax.some((a) => a !== null)) ax[base.findIndex((_, i) => !c.fixed?.includes(i))] = 0;
        const slices = Array.from({ length: B }, (_, b) => c.build(seed + 101 * (b + 1)));
        const args = base.map((x, i) =>
          ax[i] === null
            ? x
            : ag.stack(
                slices.map((s) => s[i]),
                ax[i]!,
              ),
        );
        const sliceArgs = (b: number) => base.map((x, i) => (ax[i] === null ? x : slices[b][i]));
        const got = leaves(ag.vmap(c.f, ax)(...args));
        const per = Array.from({ length: B }, (_, b) => leaves(c.f(...sliceArgs(b))));
        got.forEach((g, k) =>
          close(
            g,
            ag.stack(
              per.map((p) => p[k]),
              0,
            ),
            `${name} output ${k}`,
          ),
        );
        // per-example gradients of the float inputs
        const diff = base.flatMap((x, i) => (x.dtype === "float64" ? [i] : []));
        if (diff.length === 0 || !leaves(c.f(...sliceArgs(0))).some((t) => t.dtype === "float64")) return;
        const g = ag.grad((...xs: Tensor[]) => lossOf(c.f(...xs)), { argnums: diff });
        const gotG = ag.vmap(g, ax)(...args) as Tensor[];
        const perG = Array.from({ length: B }, (_, b) => g(...sliceArgs(b)) as Tensor[]);
        gotG.forEach((t, k) =>
          close(
            t,
            ag.stack(
              perG.map((p) => p[k]),
              0,
            ),
            `${name} gradient of input ${diff[k]}`,
          ),
        );
      }),
      { numRuns: 6, seed: 1234 },
    );
  });
}

test("vmap property tests cover every op of the op modules", () => {
  const ops = new Set<string>();
  for (const m of Object.values(OP_MODULES)) for (const [k, v] of Object.entries(m)) if (typeof v === "function") ops.add(k);
  const missing = [...ops].filter((n) => !covered.includes(n));
  console.log(`vmap property tests cover ${ops.size - missing.length} of ${ops.size} ops`);
  assert.deepEqual(missing, []);
});

test("batching rules cover every backend kernel that takes operands", () => {
  const be = new ag.CpuBackend() as unknown as Record<string, unknown>;
  const kernels = Object.getOwnPropertyNames(Object.getPrototypeOf(be)).filter((k) => k !== "constructor" && typeof be[k] === "function");
  const ruled = Object.keys(BATCHING_RULES);
  const missing = kernels.filter((k) => !ruled.includes(k) && !(CREATION_KERNELS as readonly string[]).includes(k));
  const n = OPERAND_KERNELS.length;
  console.log(
    `vmap rules cover ${ruled.filter((k) => (OPERAND_KERNELS as readonly string[]).includes(k)).length} of ${n} kernels with operands`,
  );
  assert.deepEqual(missing, []);
  assert.deepEqual([...ruled].sort(), [...OPERAND_KERNELS].sort());
});

// ---------------------------------------------------------------- composition

const W = T([3, 2], 11);
const X = T([4, 3], 12);
const model = (w: Tensor, x: Tensor) => ag.sum(ag.tanh(ag.matmul(x, w)));

test("grad of vmap sums the per-example gradients of a shared (closed-over) tensor", () => {
  const viaVmap = ag.grad((w: Tensor) => ag.sum(ag.vmap((x: Tensor) => model(w, x))(X)))(W);
  const loop = ag.grad((w: Tensor) => ag.sum(ag.stack(ag.split(X, 4, 0).map((x) => model(w, ag.squeeze(x, 0))))))(W);
  close(viaVmap, loop, "grad of vmap");
  const viaArg = ag.grad((w: Tensor) => ag.sum(ag.vmap(model, [null, 0])(w, X)))(W);
  close(viaArg, loop, "grad of vmap (unmapped argument)");
});

test("jvp of vmap equals vmap of jvp", () => {
  const tw = T([3, 2], 13);
  const [, t1] = ag.jvp((w: Tensor) => ag.vmap((x: Tensor) => model(w, x))(X), [W], [tw]);
  const t2 = ag.vmap((x: Tensor) => ag.jvp((w: Tensor) => model(w, x), [W], [tw])[1])(X);
  close(t1 as Tensor, t2, "jvp of vmap");
});

test("nested vmap equals the doubly looped function", () => {
  const A = T([2, 3, 4], 14);
  const v = T([4], 15);
  const f = (a: Tensor, b: Tensor) => ag.sum(ag.mul(ag.exp(a), b));
  const got = ag.vmap(ag.vmap(f, [0, null]), [1, null])(A, v);
  assert.deepEqual(got.shape, [3, 2]);
  const want = ag.stack(
    Array.from({ length: 3 }, (_, j) =>
      ag.stack(Array.from({ length: 2 }, (_, i) => f(ag.squeeze(ag.slice(A, [i, j], [i + 1, j + 1]), [0, 1]), v))),
    ),
  );
  close(got, want, "nested vmap");
});

test("jacfwd and jacrev equal jacobian; hessian by jacfwd of grad", () => {
  const f = (x: Tensor) => ag.tanh(ag.matmul(W, ag.sin(x)));
  const x = T([2], 16);
  const ref = ag.jacobian(f)(x);
  close(ag.jacfwd(f)(x), ref, "jacfwd");
  close(ag.jacrev(f)(x), ref, "jacrev");
  const h = (v: Tensor) => ag.sum(ag.exp(ag.matmul(W, v)));
  close(ag.jacfwd(ag.grad(h))(x), ag.jacobian(ag.grad(h))(x), "hessian");
});

test("vmap refuses mismatched batch sizes, bad inAxes and host reads with errors that say so", () => {
  assert.throws(() => ag.vmap(ag.add)(T([2, 3], 1), T([3, 3], 2)), /different sizes: .* has 2, .* has 3/);
  assert.throws(() => ag.vmap(ag.neg, [0, 0])(T([2], 1)), /inAxes has 2 entries for 1 arguments/);
  assert.throws(() => ag.vmap(ag.neg, null)(T([2], 1)), /no argument is mapped/);
  assert.throws(() => ag.vmap((x: Tensor) => ag.scalar(x.item()))(T([2], 1)), /read on the host inside vmap/);
  assert.throws(() => ag.vmap(ag.neg, 0, null)(T([2], 1)), /outAxes is null/);
});
