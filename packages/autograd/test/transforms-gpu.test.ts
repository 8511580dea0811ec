/**
 * vmap and jit on the gpu backend (gpu.js in its cpu mode, always available in Node; float32): results equal the
 * per-slice loop and eager execution on the same backend, inside `tidy` too (batched device buffers survive
 * when returned), and jit runs its program kernel by kernel there (no generated loops).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as ag from "../src/index.js";
import type { Backend, Tensor } from "../src/index.js";
import { createGpuBackend } from "../src/backend/gpu/index.js";

let prev: Backend;
before(() => {
  prev = ag.getBackend();
  ag.setBackend(createGpuBackend({ mode: "cpu", name: "gpu-cpu-transforms" }));
});
after(() => {
  ag.setBackend(prev);
});

const close = (a: Tensor, b: Tensor, what: string, tol = 1e-5) => {
  assert.deepEqual(a.shape, b.shape, what);
  const x = a.data(),
    y = b.data();
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) <= tol * (1 + Math.abs(y[i])), `${what}: ${x[i]} vs ${y[i]}`);
};

test("vmap(grad) and jit on the gpu backend equal the loop and eager results", () => {
  const w = ag.tensor([
    [0.5, -1, 0.3],
    [2, 0.25, -0.7],
  ]);
  const xs = ag.tensor([
    [1, 2],
    [3, -4],
    [0.5, 6],
    [-1, 0],
  ]);
  const loss = (w: Tensor, x: Tensor) => ag.sum(ag.softmax(ag.tanh(ag.matmul(x, w))));
  const per = ag.tidy(() => ag.vmap(ag.grad(loss), [null, 0])(w, xs));
  const loop = ag.stack([0, 1, 2, 3].map((i) => ag.grad(loss)(w, ag.squeeze(ag.slice(xs, [i], [i + 1]), 0)) as Tensor));
  close(per, loop, "per-example gradients");
  const inner = ag.vmap((x: Tensor) => ag.tidy(() => ag.exp(ag.mul(x, 2))))(xs);
  close(inner, ag.exp(ag.mul(xs, 2)), "a batched tensor returned from tidy inside vmap");
  const f = (x: Tensor) => ag.layerNorm(ag.add(ag.mul(x, 3), 1));
  const jf = ag.jit(f);
  close(jf(xs), f(xs), "jit");
  assert.equal(jf.lower(xs).loops, 0);
});
