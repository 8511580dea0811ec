import { test } from "node:test";
import assert from "node:assert/strict";
import { add, grad, matmul, mul, random, sum, tanh, type Tensor } from "@qkvflow/autograd";
import { odeint } from "../src/index.js";

// The call shape DiffEqFormer uses: odeint(f, X0, [0, 1], {method, steps}) with X a float32 [B, T, E] tensor.
const B = 2,
  T = 3,
  E = 8,
  L = 6;
const key = random.key(7);
const [k1, k2, k3] = random.split(key, 3);
const X0 = random.normal(k1, [B, T, E], { std: 0.5 });
const W0 = random.normal(k2, [E, E], { std: 0.3 });
const W1 = random.normal(k3, [E, E], { std: 0.3 });
/** A time-dependent block: tanh(X (W0 + t W1)). */
const block = (t: number, X: Tensor, w0: Tensor, w1: Tensor) => tanh(matmul(X, add(w0, mul(w1, t))));

function manualEuler(X: Tensor, w0: Tensor, w1: Tensor, shift = 0): Tensor {
  const dt = 1 / L;
  for (let i = 0; i < L; i++) X = add(X, mul(block(i / L + shift, X, w0, w1), dt));
  return X;
}

test("euler with steps on a float32 [B, T, E] state equals the hand-written Euler loop, values and gradients", () => {
  const seen: number[] = [];
  const out = odeint(
    (t: number, X: Tensor) => {
      seen.push(t);
      return block(t, X, W0, W1);
    },
    X0,
    [0, 1],
    { method: "euler", steps: L },
  );
  assert.equal(out.length, 2);
  assert.equal(out[0], X0);
  assert.equal(out[1].dtype, "float32");
  assert.deepEqual(out[1].shape, [B, T, E]);
  assert.deepEqual(Array.from(out[1].data()), Array.from(manualEuler(X0, W0, W1).data()));
  // step i evaluates f at the left end point t_i = i/L
  assert.deepEqual(
    seen,
    Array.from({ length: L }, (_, i) => i / L),
  );

  for (const checkpoint of [false, true]) {
    const lossOde = (x: Tensor, w0: Tensor, w1: Tensor) =>
      sum(mul(odeint((t: number, X: Tensor) => block(t, X, w0, w1), x, [0, 1], { method: "euler", steps: L, checkpoint })[1], 0.1));
    const lossRef = (x: Tensor, w0: Tensor, w1: Tensor) => sum(mul(manualEuler(x, w0, w1), 0.1));
    const g = grad(lossOde, { argnums: [0, 1, 2] })(X0, W0, W1) as Tensor[];
    const r = grad(lossRef, { argnums: [0, 1, 2] })(X0, W0, W1) as Tensor[];
    for (let i = 0; i < 3; i++)
      assert.deepEqual(Array.from(g[i].data()), Array.from(r[i].data()), `gradient ${i} (checkpoint ${checkpoint})`);
  }
});

test("the reference code's right-end-point convention (t_i = (i+1)/L) is a shift of t in f", () => {
  const dt = 1 / L;
  const out = odeint((t: number, X: Tensor) => block(t + dt, X, W0, W1), X0, [0, 1], { method: "euler", steps: L });
  assert.deepEqual(Array.from(out[1].data()), Array.from(manualEuler(X0, W0, W1, dt).data()));
});

test("higher-order fixed-step and adaptive methods run on float32 [B, T, E] states", () => {
  const f = (t: number, X: Tensor) => block(t, X, W0, W1);
  const ref = odeint(f, X0, [0, 1], { method: "rk4", steps: 64 })[1];
  for (const [method, opts] of [
    ["midpoint", { steps: 16 }],
    ["rk4", { steps: 8 }],
    ["dopri5", {}],
    ["tsit5", {}],
    ["bosh3", {}],
  ] as const) {
    const y = odeint(f, X0, [0, 1], { method, ...opts })[1];
    assert.equal(y.dtype, "float32");
    const a = y.data(),
      b = ref.data();
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    assert.ok(worst < 2e-3, `${method}: max deviation from the fine rk4 solution ${worst}`);
  }
});
