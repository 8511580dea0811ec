import { test } from "node:test";
import assert from "node:assert/strict";
import { add, grad, jvp, matmul, mul, reshape, square, sum, tanh, vjp, type Tensor } from "@qkvflow/autograd";
import { customVjp, odeint, odeintAdjoint, odeintAdjointVjp, type OdeintOptions, type OdeStats } from "../src/index.js";
import { arr, assertClose, f64, logistic, oscillator, type Osc } from "./helpers.js";

const R = 1.7,
  Y0 = 0.2,
  TS = [0, 0.7, 1.5];

test("backprop through odeint matches the closed-form sensitivities of the logistic equation", () => {
  for (const opts of [
    { method: "rk4", steps: 200 },
    { method: "dopri5", rtol: 1e-11, atol: 1e-11 },
    { method: "tsit5", rtol: 1e-11, atol: 1e-11 },
    // the 0.7 output goes through dop853's extra dense stages
    { method: "dop853", rtol: 1e-11, atol: 1e-11 },
  ] as OdeintOptions[]) {
    // loss = y(0.7) + 2 y(1.5): the 0.7 output is interpolated (dense) by the adaptive methods
    const loss = (y0: Tensor, r: Tensor) => {
      const ys = odeint(logistic.f(r), y0, TS, opts);
      return add(ys[1], mul(ys[2], 2)).sum();
    };
    const [gy0, gr] = grad(loss, { argnums: [0, 1] })(f64([Y0]), f64([R]));
    const ey0 = logistic.dy0(R, Y0, 0.7) + 2 * logistic.dy0(R, Y0, 1.5);
    const er = logistic.dr(R, Y0, 0.7) + 2 * logistic.dr(R, Y0, 1.5);
    assertClose(arr(gy0), [ey0], 1e-8, `${opts.method} ∂L/∂y0`);
    assertClose(arr(gr), [er], 1e-8, `${opts.method} ∂L/∂r`);
  }
});

test("forward mode (jvp) through odeint matches the closed-form sensitivity", () => {
  for (const method of ["rk4", "dopri5"]) {
    const opts: OdeintOptions = method === "rk4" ? { method, steps: 200 } : { method, rtol: 1e-11, atol: 1e-11 };
    const [out, tan] = jvp(
      (y0: Tensor, r: Tensor) => odeint(logistic.f(r), y0, TS, opts)[2],
      [f64([Y0]), f64([R])],
      [f64([1]), f64([0.5])],
    );
    assert.ok(Math.abs(out.item() - logistic.exact(R, Y0, 1.5)) < 1e-8);
    const expected = logistic.dy0(R, Y0, 1.5) + 0.5 * logistic.dr(R, Y0, 1.5);
    assert.ok(Math.abs(tan.item() - expected) < 1e-8, `${method}: tangent ${tan.item()} vs ${expected}`);
  }
});

test("per-step checkpointing gives the same values and gradients as plain backprop", () => {
  const W = f64([
    [0.3, -0.8],
    [0.6, 0.1],
  ]);
  const f = (_t: number, s: { a: Tensor; b: Tensor }, w: Tensor) => {
    const h = tanh(reshape(matmul(w, reshape(add(s.a, s.b), [2, 1])), [2]));
    return { a: h, b: mul(s.a, -0.5) };
  };
  for (const base of [
    { method: "rk4", steps: 12 },
    { method: "dopri5", rtol: 1e-8, atol: 1e-8 },
    { method: "bosh3", rtol: 1e-6, atol: 1e-6 },
  ] as OdeintOptions[]) {
    const loss = (checkpoint: boolean) => (w: Tensor, a0: Tensor) => {
      const ys = odeint((t: number, s: { a: Tensor; b: Tensor }) => f(t, s, w), { a: a0, b: f64([0.1, -0.2]) }, [0, 0.4, 1.3], {
        ...base,
        checkpoint,
      });
      return add(sum(square(ys[1].a)), sum(mul(ys[2].b, ys[2].a)));
    };
    const a0 = f64([0.5, -0.4]);
    const [g1w, g1a] = grad(loss(false), { argnums: [0, 1] })(W, a0);
    const [g2w, g2a] = grad(loss(true), { argnums: [0, 1] })(W, a0);
    assert.equal(loss(true)(W, a0).item(), loss(false)(W, a0).item());
    assertClose(arr(g2w), arr(g1w), 1e-13, `${base.method} ∂L/∂W`);
    assertClose(arr(g2a), arr(g1a), 1e-13, `${base.method} ∂L/∂a0`);
  }
});

// --- adjoint ---------------------------------------------------------------------------------------------

type Params = { W: Tensor; b: Tensor };
const field = (_t: number, y: Tensor, p: Params) => tanh(add(reshape(matmul(p.W, reshape(y, [3, 1])), [3]), p.b));
const P0: Params = {
  W: f64([
    [0.2, -0.5, 0.3],
    [0.4, 0.1, -0.2],
    [-0.3, 0.25, 0.15],
  ]),
  b: f64([0.1, -0.2, 0.05]),
};
const A0 = f64([0.5, -0.3, 0.8]);
const ATS = [0, 0.5, 1.2, 2];
const lossOf = (ys: Tensor[]) => add(sum(square(ys[3])), add(sum(mul(ys[1], 0.3)), sum(mul(ys[2], ys[2]))));

function finiteDiff(fn: (y0: Tensor, p: Params) => number, eps = 1e-5): { y0: number[]; W: number[]; b: number[] } {
  const bump = (t: Tensor, i: number, d: number) => {
    const v = Float64Array.from(t.data());
    v[i] += d;
    return f64(Array.from(v), [...t.shape]);
  };
  const cd = (make: (d: number) => number) => (make(eps) - make(-eps)) / (2 * eps);
  return {
    y0: arr(A0).map((_, i) => cd((d) => fn(bump(A0, i, d), P0))),
    W: arr(P0.W).map((_, i) => cd((d) => fn(A0, { W: bump(P0.W, i, d), b: P0.b }))),
    b: arr(P0.b).map((_, i) => cd((d) => fn(A0, { W: P0.W, b: bump(P0.b, i, d) }))),
  };
}

test("adjoint gradients agree with backprop-through-solver and with finite differences (dopri5, float64)", () => {
  const opts: OdeintOptions = { method: "dopri5", rtol: 1e-10, atol: 1e-10 };
  const stats: Record<string, OdeStats> = {};
  const bp = grad((y0: Tensor, p: Params) => lossOf(odeint((t: number, y: Tensor) => field(t, y, p), y0, ATS, opts)), { argnums: [0, 1] })(
    A0,
    P0,
  );
  const adj = grad((y0: Tensor, p: Params) => lossOf(odeintAdjoint(field, y0, ATS, p, { ...opts, onStats: (ph, s) => (stats[ph] = s) })), {
    argnums: [0, 1],
  })(A0, P0);
  const fd = finiteDiff((y0, p) =>
    lossOf(odeint((t: number, y: Tensor) => field(t, y, p), y0, ATS, { method: "dopri5", rtol: 1e-12, atol: 1e-12 })).item(),
  );
  console.log(`adjoint: forward ${JSON.stringify(stats.forward)}, backward ${JSON.stringify(stats.backward)}`);
  assert.ok(stats.backward.accepted > 0 && stats.forward.accepted > 0);
  assertClose(arr(adj[0]), arr(bp[0]), 1e-7, "adjoint vs backprop ∂L/∂y0");
  assertClose(arr(adj[1].W), arr(bp[1].W), 1e-7, "adjoint vs backprop ∂L/∂W");
  assertClose(arr(adj[1].b), arr(bp[1].b), 1e-7, "adjoint vs backprop ∂L/∂b");
  assertClose(arr(adj[0]), fd.y0, 1e-6, "adjoint vs finite differences ∂L/∂y0");
  assertClose(arr(adj[1].W), fd.W, 1e-6, "adjoint vs finite differences ∂L/∂W");
  assertClose(arr(adj[1].b), fd.b, 1e-6, "adjoint vs finite differences ∂L/∂b");
  // the loss value is the same as with odeint
  const l1 = lossOf(odeint((t: number, y: Tensor) => field(t, y, P0), A0, ATS, opts)).item();
  const l2 = lossOf(odeintAdjoint(field, A0, ATS, P0, opts)).item();
  assert.equal(l2, l1);
});

test("fixed-step adjoint (rk4) agrees with backprop and finite differences to discretisation accuracy", () => {
  const opts: OdeintOptions = { method: "rk4", steps: 40 };
  const bp = grad((y0: Tensor, p: Params) => lossOf(odeint((t: number, y: Tensor) => field(t, y, p), y0, ATS, opts)), { argnums: [0, 1] })(
    A0,
    P0,
  );
  const adj = grad((y0: Tensor, p: Params) => lossOf(odeintAdjoint(field, y0, ATS, p, opts)), { argnums: [0, 1] })(A0, P0);
  const fd = finiteDiff((y0, p) => lossOf(odeint((t: number, y: Tensor) => field(t, y, p), y0, ATS, opts)).item());
  // backprop through rk4 is the exact derivative of the discrete map, so it matches finite differences closely
  assertClose(arr(bp[0]), fd.y0, 1e-8, "backprop vs finite differences ∂L/∂y0");
  assertClose(arr(bp[1].W), fd.W, 1e-8, "backprop vs finite differences ∂L/∂W");
  // the adjoint solves the continuous adjoint equation with the same steps: O(h⁴) away from the discrete one
  assertClose(arr(adj[0]), arr(bp[0]), 1e-6, "adjoint vs backprop ∂L/∂y0");
  assertClose(arr(adj[1].W), arr(bp[1].W), 1e-6, "adjoint vs backprop ∂L/∂W");
  assertClose(arr(adj[1].b), arr(bp[1].b), 1e-6, "adjoint vs backprop ∂L/∂b");
});

test("adjoint with a tree state and tree params: odeintAdjointVjp.backward equals grad of odeintAdjoint and the closed form", () => {
  // x'' = −ω²x: x(T) = x0 cos ωT + v0/ω sin ωT, so ∂x(T)/∂x0 = cos ωT, ∂x(T)/∂v0 = sin(ωT)/ω,
  // ∂x(T)/∂ω = −x0 T sin ωT + v0 (T cos ωT / ω − sin ωT / ω²)
  const f = (_t: number, s: Osc, p: { omega: Tensor }) => ({ x: s.v, v: mul(s.x, mul(square(p.omega), -1)) });
  const w = 1.3,
    x0 = 0.4,
    v0 = -0.9,
    T = 2.5;
  const y0 = { x: f64([x0]), v: f64([v0]) };
  const opts: OdeintOptions = { method: "tsit5", rtol: 1e-11, atol: 1e-11 };
  const sol = odeintAdjointVjp(f, y0, [0, T], { omega: f64([w]) }, opts);
  assert.ok(Math.abs(sol.ys[1].x.item() - oscillator.exact(w, x0, v0, T).x) < 1e-9);
  const back = sol.backward([null, { x: f64([1]), v: f64([0]) }]);
  const ex = {
    dx0: Math.cos(w * T),
    dv0: Math.sin(w * T) / w,
    dw: -x0 * T * Math.sin(w * T) + v0 * ((T * Math.cos(w * T)) / w - Math.sin(w * T) / (w * w)),
  };
  assert.ok(Math.abs(back.y0.x.item() - ex.dx0) < 1e-8, `∂x/∂x0 ${back.y0.x.item()} vs ${ex.dx0}`);
  assert.ok(Math.abs(back.y0.v.item() - ex.dv0) < 1e-8, `∂x/∂v0 ${back.y0.v.item()} vs ${ex.dv0}`);
  assert.ok(Math.abs(back.params.omega.item() - ex.dw) < 1e-8, `∂x/∂ω ${back.params.omega.item()} vs ${ex.dw}`);
  const g = grad((s0: Osc, p: { omega: Tensor }) => odeintAdjoint(f, s0, [0, T], p, opts)[1].x.sum(), { argnums: [0, 1] })(y0, {
    omega: f64([w]),
  });
  assert.equal(g[0].x.item(), back.y0.x.item());
  assert.equal(g[0].v.item(), back.y0.v.item());
  assert.equal(g[1].omega.item(), back.params.omega.item());
});

/** Number of distinct autodiff nodes reachable from a tensor. */
function graphSize(t: Tensor): number {
  const seen = new Set<number>();
  const stack: Tensor[] = [t];
  while (stack.length > 0) {
    const x = stack.pop()!;
    const n = x._node;
    if (!n || seen.has(n.id)) continue;
    seen.add(n.id);
    stack.push(...n.parents);
  }
  return seen.size;
}

test("odeintAdjoint records a graph whose size does not depend on the number of steps (backprop's grows)", () => {
  const sizes = (steps: number) => {
    let adj = 0,
      bp = 0;
    vjp(
      (y0: Tensor, W: Tensor, b: Tensor) => {
        const ya = odeintAdjoint(field, y0, [0, 1], { W, b }, { method: "rk4", steps });
        const yb = odeint((t: number, y: Tensor) => field(t, y, { W, b }), y0, [0, 1], { method: "rk4", steps });
        adj = graphSize(ya[1]);
        bp = graphSize(yb[1]);
        return add(sum(ya[1]), sum(yb[1]));
      },
      A0,
      P0.W,
      P0.b,
    );
    return { adj, bp };
  };
  const s10 = sizes(10),
    s100 = sizes(100);
  assert.equal(s100.adj, s10.adj, `adjoint graph: ${s10.adj} nodes for 10 steps, ${s100.adj} for 100`);
  assert.ok(s100.bp > 5 * s10.bp, `backprop graph should grow with steps: ${s10.bp} → ${s100.bp}`);
});

test("customVjp uses the supplied backward once for all outputs and keeps aliased inputs intact", () => {
  let calls = 0;
  // forward: [x, 2x]; deliberately unusual backward: ∂/∂x = 10·ct0 + 100·ct1 (so we can tell it was used)
  const g = customVjp(
    (x: Tensor) => [x, mul(x, 2)],
    (ct: Tensor[]): [Tensor] => {
      calls++;
      return [add(mul(ct[0], 10), mul(ct[1], 100))];
    },
  );
  const x = f64([1, 2]);
  const gx = grad((x: Tensor) => {
    const [a, b] = g(x);
    return add(sum(mul(a, f64([1, 3]))), add(sum(b), sum(x)));
  })(x);
  // ct0 = [1, 3], ct1 = [1, 1], plus the direct path ∂sum(x)/∂x = 1
  assert.deepEqual(arr(gx), [10 * 1 + 100 + 1, 10 * 3 + 100 + 1]);
  assert.equal(calls, 1);
  // without recording it is just the forward
  const [a, b] = g(x);
  assert.deepEqual(arr(a), [1, 2]);
  assert.deepEqual(arr(b), [2, 4]);
  // forward mode is refused with a clear message
  assert.throws(() => jvp((x: Tensor) => g(x)[1], [x], [f64([1, 0])]), /forward-mode differentiation \(jvp\) is not supported/);
});
