/**
 * jit against eager execution: for every op of the op modules (random shapes, float64) the jitted function's
 * outputs are bit-identical to op-by-op execution; random elementwise chains (float32 and float64, with scalars
 * and broadcasting) are fused into generated loops and stay bit-identical; composition with grad, vmap and
 * itself; caching per signature; the error on host reads while tracing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import * as ag from "../src/index.js";
import type { Tensor } from "../src/index.js";
import { lcg } from "./gradcheck.js";
import { OP_MODULES } from "../src/op-registry.js";
import { cases, seedArb, T } from "./op-cases.js";

function identical(actual: Tensor, expected: Tensor, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  const a = actual.data(),
    e = expected.data();
  for (let i = 0; i < a.length; i++) {
    if (Object.is(a[i], e[i]) || (a[i] === 0 && e[i] === 0)) continue;
    assert.fail(`${what}: element ${i} is ${a[i]}; expected ${e[i]} (bit-identical)`);
  }
}
const leaves = (y: Tensor | Tensor[]): Tensor[] => (Array.isArray(y) ? y : [y]);

for (const [name, arb] of cases) {
  test(`jit ${name}: bit-identical to eager execution`, () => {
    fc.assert(
      fc.property(arb, seedArb, (c, seed) => {
        // inputs an op reads on the host (cross-entropy targets) are closed over: constants of the program
        const all = c.build(seed);
        const fixed = c.fixed ?? [];
        const f = (...free: Tensor[]) => {
          let k = 0;
          return c.f(...all.map((x, i) => (fixed.includes(i) ? x : free[k++])));
        };
        const free = (s: number) => c.build(s).filter((_, i) => !fixed.includes(i));
        const xs = free(seed);
        const jf = ag.jit(f);
        const want = leaves(f(...xs));
        const got = leaves(jf(...xs));
        got.forEach((g, k) => identical(g, want[k], `${name} output ${k}`));
        // a second call runs the cached program on new values of the same shapes
        const xs2 = free(seed + 17);
        leaves(jf(...xs2)).forEach((g, k) => identical(g, leaves(f(...xs2))[k], `${name} output ${k} (cached)`));
        assert.equal(jf.cacheSize, 1);
      }),
      { numRuns: 4, seed: 4321 },
    );
  });
}

test("jit bit-identity tests cover every op of the op modules", () => {
  const ops = new Set<string>();
  for (const m of Object.values(OP_MODULES)) for (const [k, v] of Object.entries(m)) if (typeof v === "function") ops.add(k);
  const missing = [...ops].filter((n) => !cases.has(n));
  console.log(`jit bit-identity tests cover ${ops.size - missing.length} of ${ops.size} ops`);
  assert.deepEqual(missing, []);
});

// ---------------------------------------------------------------- fused elementwise chains

const UNARY: ((x: Tensor) => Tensor)[] = [
  ag.exp,
  ag.tanh,
  ag.sigmoid,
  ag.sin,
  ag.neg,
  ag.square,
  ag.relu,
  ag.silu,
  ag.abs,
  (x) => ag.sqrt(ag.abs(x)),
];
const BINARY: ((a: Tensor, b: Tensor) => Tensor)[] = [
  ag.add,
  ag.sub,
  ag.mul,
  ag.div,
  ag.maximum,
  ag.minimum,
  (a, b) => ag.where(ag.gt(a, b), a, b),
];

/** A random program of elementwise ops over inputs of one shape, a scalar and a broadcast row, from a seed. */
function chain(seed: number, steps: number): (x: Tensor, y: Tensor, s: Tensor, row: Tensor) => Tensor[] {
  const r = lcg(seed);
  const pick = (n: number) => Math.floor(((r() + 1) / 2) * n) % n;
  const plan = Array.from({ length: steps }, () => ({
    u: pick(UNARY.length + 2),
    b: pick(BINARY.length),
    i: pick(100),
    j: pick(100),
    c: r(),
  }));
  return (x, y, s, row) => {
    const vals = [x, y, ag.mul(x, s), ag.add(y, row)];
    for (const p of plan) {
      const a = vals[p.i % vals.length],
        b = vals[p.j % vals.length];
      let v = p.u < UNARY.length ? UNARY[p.u](a) : p.u === UNARY.length ? ag.mul(a, p.c) : ag.add(a, p.c);
      v = BINARY[p.b](v, b);
      vals.push(v);
    }
    return [vals[vals.length - 1], vals[vals.length - 2], ag.sum(vals[vals.length - 1], -1)];
  };
}

test("jit fuses random elementwise chains into loops, bit-identical to eager in float32 and float64", () => {
  fc.assert(
    fc.property(
      seedArb,
      fc.integer({ min: 1, max: 12 }),
      fc.constantFrom("float32", "float64") as fc.Arbitrary<"float32" | "float64">,
      fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }),
      (seed, steps, dtype, shape) => {
        const f = chain(seed, steps);
        const mk = (sh: number[], s: number) => ag.cast(T(sh, s), dtype);
        const args = [mk(shape, seed), mk(shape, seed + 1), mk([], seed + 2), mk([shape[shape.length - 1]], seed + 3)] as const;
        const jf = ag.jit(f);
        const got = jf(...args);
        const want = f(...args);
        got.forEach((g, k) => identical(g, want[k], `chain output ${k}`));
        const { loops } = jf.lower(...args);
        assert.ok(loops >= 1, "at least one fused loop");
      },
    ),
    { numRuns: 60, seed: 99 },
  );
});

test("a fused chain runs as one loop and reuses its intermediate buffers", () => {
  const f = (x: Tensor, y: Tensor) => ag.tanh(ag.add(ag.mul(ag.exp(x), y), ag.mul(x, 0.5)));
  const jf = ag.jit(f);
  const x = T([5], 1),
    y = T([5], 2);
  assert.deepEqual(jf.lower(x, y), { loops: 1, calls: 0 });
  const a = jf(x, y),
    b = jf(x, y);
  assert.notEqual(a.data(), b.data(), "outputs get fresh buffers on every call");
  identical(a, f(x, y), "fused");
  // broadcast rows (bias [C]) and columns ([N, 1]) are read in the loop too
  const g = (m: Tensor, bias: Tensor, col: Tensor) => ag.sigmoid(ag.add(ag.mul(m, col), bias));
  const m = T([4, 3], 3),
    bias = T([3], 4),
    col = T([4, 1], 5);
  const jg = ag.jit(g);
  assert.deepEqual(jg.lower(m, bias, col), { loops: 1, calls: 0 });
  identical(jg(m, bias, col), g(m, bias, col), "fused with broadcast operands");
});

// ---------------------------------------------------------------- composition and caching

const W = T([3, 2], 11);
const X = T([4, 3], 12);
const loss = (w: Tensor, x: Tensor) => ag.mean(ag.square(ag.tanh(ag.matmul(x, w))));

test("jit(grad(f)), grad(jit(f)), jit(vmap(f)) and vmap(jit(f)) equal the untransformed results", () => {
  identical(ag.jit(ag.grad(loss))(W, X), ag.grad(loss)(W, X), "jit(grad)");
  identical(ag.grad(ag.jit(loss))(W, X), ag.grad(loss)(W, X), "grad(jit)");
  const pe = (w: Tensor, x: Tensor) => ag.vmap(ag.grad(loss), [null, 0])(w, x);
  identical(ag.jit(pe)(W, X), pe(W, X), "jit(vmap(grad))");
  const row = (x: Tensor) => ag.sum(ag.exp(ag.mul(x, 0.3)));
  identical(ag.vmap(ag.jit(row))(X), ag.vmap(row)(X), "vmap(jit)");
  identical(ag.jit(ag.jit(row))(X), row(X), "jit(jit)");
  const [, t1] = ag.jvp(ag.jit(row), [X], [T([4, 3], 3)]);
  const [, t2] = ag.jvp(row, [X], [T([4, 3], 3)]);
  identical(t1 as Tensor, t2 as Tensor, "jvp(jit)");
});

test("grad(jit(f)) runs a compiled forward and a compiled pullback; closures over tracked tensors and second order stay exact", () => {
  const jl = ag.jit(loss);
  identical(ag.grad(jl, { argnums: [0, 1] })(W, X)[1], ag.grad(loss, { argnums: [0, 1] })(W, X)[1], "grad(jit) in x");
  assert.equal(jl.cacheSize, 1, "the forward program is reused under grad");
  // a closed-over tensor tracked by the outer grad: f runs op by op, so its gradient is not lost
  const viaClosure = (w: Tensor) => ag.jit((x: Tensor) => loss(w, x))(X);
  identical(ag.grad(viaClosure)(W), ag.grad(loss)(W, X), "closure over a tracked tensor");
  // second order: the jitted pullback is itself differentiated
  const f = (x: Tensor) => ag.sum(ag.mul(ag.sin(x), ag.exp(x)));
  const jfn = ag.jit(f);
  const x = T([3], 21);
  const h1 = ag.grad((v: Tensor) => ag.sum(ag.mul(ag.grad(jfn)(v), v)))(x);
  const h2 = ag.grad((v: Tensor) => ag.sum(ag.mul(ag.grad(f)(v), v)))(x);
  identical(h1, h2, "grad of grad(jit)");
});

test("jit retraces per input signature and bakes in non-tensor arguments", () => {
  let traces = 0;
  const f = (x: Tensor, k: number) => {
    traces++;
    return ag.mul(x, k);
  };
  const jf = ag.jit(f);
  jf(T([2], 1), 2);
  jf(T([2], 2), 2);
  assert.equal(traces, 1);
  identical(jf(T([2], 1), 3), f(T([2], 1), 3), "static argument 3");
  jf(T([3], 1), 2);
  jf(ag.cast(T([3], 1), "float32"), 2);
  assert.equal(jf.cacheSize, 4);
});

test("jit refuses host reads of traced values with an error that says why", () => {
  const f = (x: Tensor) => (ag.sum(x).item() > 0 ? x : ag.neg(x));
  assert.throws(
    () => ag.jit(f)(T([3], 1)),
    /jit: the traced function read the values of a traced tensor .* control flow may depend on shapes and non-tensor arguments only/,
  );
});

test("jit works on a backend without fusion (interpreted program) with the same results", () => {
  const f = (x: Tensor, y: Tensor) => ag.softmax(ag.add(ag.matmul(x, y), 1), -1);
  const jf = ag.jit(f, { fuse: false });
  assert.equal(jf.lower(X, W).loops, 0);
  identical(jf(X, W), f(X, W), "interpreted");
});
