import { test } from "node:test";
import assert from "node:assert/strict";
import { add, grad, mul, noGrad, sub, sum, type Tensor } from "@qkvflow/autograd";
import {
  combine,
  getSolver,
  listSolvers,
  odeint,
  odeintWithStats,
  registerSolver,
  unregisterSolver,
  type FlatField,
  type Solver,
  type StepResult,
} from "../src/index.js";
import { f64, loglogSlope, logistic, oscillator, riccati } from "./helpers.js";

/**
 * A solver that is not a Butcher tableau: Euler with Richardson extrapolation. One full Euler step and two
 * half steps; their difference estimates the error of Euler, and 2·(two halves) − (full) is second order.
 */
const richardsonEuler: Solver = {
  name: "richardson-euler",
  order: 2,
  errorOrder: 1,
  adaptive: true,
  fsal: false,
  dense: false,
  step(f: FlatField, t: number, y: readonly Tensor[], h: number, f0: readonly Tensor[] | null, needError = true): StepResult {
    const k0 = f0 ? [...f0] : f(t, y);
    const full = combine(y, h, [1], [k0]);
    const half = combine(y, h / 2, [1], [k0]);
    const k1 = f(t + h / 2, half);
    const twoHalves = combine(half, h / 2, [1], [k1]);
    const y1 = twoHalves.map((x, i) => sub(mul(x, 2), full[i]));
    const err = needError ? noGrad(() => twoHalves.map((x, i) => sub(x, full[i]))) : null;
    return { y1, err, f0: k0, f1: null, nfev: f0 ? 1 : 2 };
  },
};

test("a custom Solver implementation registered by name is usable everywhere, fixed-step and adaptive", () => {
  registerSolver("richardson-euler", richardsonEuler);
  try {
    assert.ok(listSolvers().includes("richardson-euler"));
    assert.equal(getSolver("richardson-euler"), richardsonEuler);
    // fixed steps: second order
    const counts = [20, 40, 80, 160];
    const errs = counts.map((n) =>
      Math.abs(odeint(riccati.f, f64([1]), [0, 2], { method: "richardson-euler", steps: n })[1].item() - riccati.exact(2)),
    );
    const slope = loglogSlope(
      counts.map((n) => 2 / n),
      errs,
    );
    assert.ok(Math.abs(slope - 2) <= 0.2, `slope ${slope}`);
    // adaptive: reaches the closed form, by name or by object
    for (const method of ["richardson-euler", richardsonEuler]) {
      const r = odeintWithStats(oscillator.f(1), { x: f64([1]), v: f64([0]) }, [0, 1, 3], { method, rtol: 1e-6, atol: 1e-6 });
      assert.ok(Math.abs(r.ys[2].x.item() - Math.cos(3)) < 1e-4, `x(3) = ${r.ys[2].x.item()}`);
      assert.ok(Math.abs(r.ys[1].x.item() - Math.cos(1)) < 1e-4, `x(1) (Hermite output) = ${r.ys[1].x.item()}`);
      assert.ok(r.stats.accepted > 20);
    }
    // gradients flow through a custom solver
    const g = grad((y0: Tensor) => sum(odeint(logistic.f(2), y0, [0, 1], { method: "richardson-euler", rtol: 1e-7, atol: 1e-7 })[1]))(
      f64([0.3]),
    );
    assert.ok(Math.abs(g.item() - logistic.dy0(2, 0.3, 1)) < 1e-4, `∂y/∂y0 = ${g.item()} vs ${logistic.dy0(2, 0.3, 1)}`);
    // replacing needs override
    assert.throws(() => registerSolver("richardson-euler", richardsonEuler), /already registered/);
    registerSolver("richardson-euler", { ...richardsonEuler }, { override: true });
  } finally {
    assert.equal(unregisterSolver("richardson-euler"), true);
  }
  assert.ok(!listSolvers().includes("richardson-euler"));
  assert.throws(() => getSolver("richardson-euler"), /unknown method 'richardson-euler'; registered methods: euler/);
  assert.throws(() => unregisterSolver("dopri5"), /'dopri5' is a built-in method/);
});

test("an adaptive Solver must declare the order of its error estimate", () => {
  assert.throws(
    () => registerSolver("no-err-order", { ...richardsonEuler, errorOrder: undefined }),
    /adaptive solver 'richardson-euler' has errorOrder undefined/,
  );
  assert.throws(
    () => odeint((_t: number, y: Tensor) => add(y, 0), f64([1]), [0, 1], { method: { ...richardsonEuler, order: 0 } }),
    /odeint: solver 'richardson-euler' has order 0/,
  );
});
