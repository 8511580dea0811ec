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
import { cases, seedArb, T } from "./op-cases.js";

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

test("vmap takes inAxes and outAxes as trees matching the arguments and outputs", () => {
  const p = { w: T([3, 2], 31), b: T([2], 32) };
  const xs = T([3, 5], 33); // examples along axis 1
  const f = (q: { w: Tensor; b: Tensor }, x: Tensor) => ({ y: ag.add(ag.matmul(x, q.w), q.b), n: ag.sum(ag.square(x)) });
  const got = ag.vmap(f, [{ w: null, b: null }, 1], { y: 1, n: 0 })(p, xs);
  assert.deepEqual(got.y.shape, [2, 5]);
  assert.deepEqual(got.n.shape, [5]);
  const cols = Array.from({ length: 5 }, (_, i) => f(p, ag.squeeze(ag.slice(xs, [0, i], [3, i + 1]), 1)));
  close(
    got.y,
    ag.stack(
      cols.map((c) => c.y),
      1,
    ),
    "tree outAxes y",
  );
  close(got.n, ag.stack(cols.map((c) => c.n)), "tree outAxes n");
  assert.throws(() => ag.vmap(f, [{ w: null }, 1])(p, xs), /inAxes at argument 0 has keys \{w\}; expected the argument's keys \{w, b\}/);
});
