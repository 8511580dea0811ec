import { test } from "node:test";
import assert from "node:assert/strict";
import { grad, matmul, mul, reshape, sum, type Tensor } from "@qkvflow/autograd";
import { getSolver, listSolvers, odeint, odeintAdjoint, odeintWithStats, type OdeintOptions } from "../src/index.js";
import { arr, assertClose, f64 } from "./helpers.js";

// y' = A y with A = [[0, 1, 0], [−ω², 0, 0], [0, 0, −k]], written once on a nested tree and once on a packed vector.
const OMEGA = 1.5,
  K = 0.8,
  T = 2;
type Tree = { osc: { x: Tensor; v: Tensor }; decay: [Tensor] };
const treeField = (_t: number, s: Tree): Tree => ({ osc: { x: s.osc.v, v: mul(s.osc.x, -OMEGA * OMEGA) }, decay: [mul(s.decay[0], -K)] });
const A = f64([
  [0, 1, 0],
  [-OMEGA * OMEGA, 0, 0],
  [0, 0, -K],
]);
const packedField = (_t: number, y: Tensor): Tensor => reshape(matmul(A, reshape(y, [3, 1])), [3]);
const x0 = 0.3,
  v0 = 1.1,
  c0 = 2;
const treeY0 = (): Tree => ({ osc: { x: f64([x0]), v: f64([v0]) }, decay: [f64([c0])] });
const exact = (t: number) => [
  x0 * Math.cos(OMEGA * t) + (v0 / OMEGA) * Math.sin(OMEGA * t),
  -x0 * OMEGA * Math.sin(OMEGA * t) + v0 * Math.cos(OMEGA * t),
  c0 * Math.exp(-K * t),
];
const flat = (s: Tree) => [s.osc.x.item(), s.osc.v.item(), s.decay[0].item()];

const builtins = ["euler", "midpoint", "heun", "rk4", "bosh3", "dopri5", "tsit5", "dop853"];

test("every built-in method is registered", () => {
  for (const m of builtins) assert.ok(listSolvers().includes(m), `${m} missing from ${listSolvers().join(", ")}`);
});

for (const method of builtins) {
  test(`${method}: a nested tree state gives the same solution as the packed vector, close to the closed form`, () => {
    const s = getSolver(method);
    const opts: OdeintOptions = s.adaptive ? { method, rtol: 1e-8, atol: 1e-8 } : { method, steps: 400 };
    const ts = [0, 0.5, T];
    const tr = odeintWithStats(treeField, treeY0(), ts, opts);
    const pk = odeintWithStats(packedField, f64([x0, v0, c0]), ts, opts);
    assert.deepEqual(tr.stats, pk.stats, "same steps for the tree and the packed state");
    for (let i = 1; i < ts.length; i++) {
      assertClose(flat(tr.ys[i]), arr(pk.ys[i]), 1e-13, `${method} tree vs packed at t=${ts[i]}`);
      const tol = { euler: 1e-2, midpoint: 1e-4, heun: 1e-4 }[method as "euler"] ?? 1e-6;
      assertClose(flat(tr.ys[i]), exact(ts[i]), tol, `${method} vs closed form at t=${ts[i]}`);
    }
    // the structure is preserved and ys[0] is the initial tree itself
    assert.ok(Array.isArray(tr.ys[2].decay) && tr.ys[2].decay.length === 1);
    assert.deepEqual(Object.keys(tr.ys[2]), ["osc", "decay"]);
  });
}

test("a tree state works through gradients and the adjoint for fixed and adaptive methods", () => {
  // L = x(T) + decay(T): ∂L/∂x0 = cos ωT, ∂L/∂c0 = e^(−kT)
  for (const opts of [
    { method: "heun", steps: 300 },
    { method: "dopri5", rtol: 1e-10, atol: 1e-10 },
  ] as OdeintOptions[]) {
    const loss = (y0: Tree) => {
      const ys = odeint(treeField, y0, [0, T], opts);
      return sum(ys[1].osc.x).add(sum(ys[1].decay[0]));
    };
    const g = grad(loss)(treeY0()) as Tree;
    const tol = opts.method === "heun" ? 1e-4 : 1e-8;
    assert.ok(Math.abs(g.osc.x.item() - Math.cos(OMEGA * T)) < tol, `${opts.method} ∂L/∂x0 ${g.osc.x.item()}`);
    assert.ok(Math.abs(g.decay[0].item() - Math.exp(-K * T)) < tol, `${opts.method} ∂L/∂c0 ${g.decay[0].item()}`);
    const ga = grad(
      (y0: Tree, k: Tensor) => {
        const ys = odeintAdjoint(
          (_t: number, s: Tree, p: { k: Tensor }) => ({
            osc: { x: s.osc.v, v: mul(s.osc.x, -OMEGA * OMEGA) },
            decay: [mul(s.decay[0], mul(p.k, -1))] as [Tensor],
          }),
          y0,
          [0, T],
          { k },
          opts,
        );
        return sum(ys[1].osc.x).add(sum(ys[1].decay[0]));
      },
      { argnums: [0, 1] },
    )(treeY0(), f64([K])) as [Tree, Tensor];
    assert.ok(Math.abs(ga[0].osc.x.item() - Math.cos(OMEGA * T)) < tol);
    assert.ok(Math.abs(ga[0].decay[0].item() - Math.exp(-K * T)) < tol);
    // ∂(c0 e^(−kT))/∂k = −T c0 e^(−kT)
    assert.ok(Math.abs(ga[1].item() + T * c0 * Math.exp(-K * T)) < 10 * tol, `${opts.method} ∂L/∂k ${ga[1].item()}`);
  }
});
