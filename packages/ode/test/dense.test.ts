import { test } from "node:test";
import assert from "node:assert/strict";
import { mul, type Tensor } from "@qkvflow/autograd";
import { DOP853, DOPRI5, TSIT5, explicitRK, odeintWithStats, registerSolver, unregisterSolver, type ButcherTableau } from "../src/index.js";
import { f64, loglogSlope, oscillator } from "./helpers.js";

const OMEGA = 3,
  X0 = 0.7,
  V0 = -1.1,
  T = 6;
const y0 = () => ({ x: f64([X0]), v: f64([V0]) });
const N_OUT = 1201;
const grid = (n: number) => Array.from({ length: n }, (_, i) => (T * i) / (n - 1));

for (const [method, tol] of [
  ["dopri5", 1e-8],
  ["tsit5", 1e-8],
  ["bosh3", 1e-6],
] as const) {
  test(`${method}: dense output matches the closed form between steps, and many output times do not add steps`, () => {
    const opts = { method, rtol: tol, atol: tol };
    const coarse = odeintWithStats(oscillator.f(OMEGA), y0(), [0, T], opts);
    const ts = grid(N_OUT);
    const fine = odeintWithStats(oscillator.f(OMEGA), y0(), ts, opts);
    assert.deepEqual(
      fine.stats,
      coarse.stats,
      `${method}: stats with ${N_OUT} output times ${JSON.stringify(fine.stats)} vs 2 output times ${JSON.stringify(coarse.stats)}`,
    );
    assert.ok(ts.length > coarse.stats.accepted, "the test needs more output times than steps");
    let worst = 0;
    fine.ys.forEach((s, i) => {
      const ex = oscillator.exact(OMEGA, X0, V0, ts[i]);
      worst = Math.max(worst, Math.abs(s.x.item() - ex.x), Math.abs(s.v.item() - ex.v));
    });
    console.log(`${method}: ${coarse.stats.accepted} steps, ${N_OUT} outputs, max |error| ${worst.toExponential(2)}`);
    assert.ok(worst < 200 * tol, `${method}: max interpolation error ${worst}; expected < ${200 * tol}`);
    // the final state is the step's own solution, identical with or without intermediate outputs
    assert.equal(fine.ys[ts.length - 1].x.item(), coarse.ys[1].x.item());
  });
}

test("the continuous extensions of dopri5 and tsit5 have local error O(h^5) (fourth-order interpolants)", () => {
  // y' = y cos t, y = exp(sin t)
  const f = (t: number, y: readonly Tensor[]) => [mul(y[0], Math.cos(t))];
  for (const tb of [DOPRI5, TSIT5]) {
    const s = explicitRK(tb);
    for (const theta of [0.5, 0.8]) {
      const hs = [0.2, 0.1, 0.05, 0.025];
      const errs = hs.map((h) => {
        const t0 = 0.3;
        const r = s.step(f, t0, [f64([Math.exp(Math.sin(t0))])], h, null);
        return Math.abs(r.interpolate!(theta)[0].item() - Math.exp(Math.sin(t0 + theta * h)));
      });
      const slope = loglogSlope(hs, errs);
      assert.ok(
        slope > 4.5 && slope < 5.5,
        `${tb.name} θ=${theta}: slope ${slope.toFixed(3)} (errors ${errs.map((e) => e.toExponential(2)).join(", ")}); expected ≈ 5`,
      );
    }
    // θ = 1 reproduces the step's solution, θ = 0 its start
    const r = s.step(f, 0.3, [f64([1.2])], 0.1, null);
    assert.ok(Math.abs(r.interpolate!(1)[0].item() - r.y1[0].item()) < 1e-13);
    assert.ok(Math.abs(r.interpolate!(0)[0].item() - 1.2) < 1e-15);
  }
});

test("dop853: dense output matches the closed form between steps; the three extra stages are evaluated once per step with outputs", () => {
  const opts = { method: "dop853", rtol: 1e-10, atol: 1e-10 };
  const coarse = odeintWithStats(oscillator.f(OMEGA), y0(), [0, T], opts);
  const ts = grid(N_OUT);
  const fine = odeintWithStats(oscillator.f(OMEGA), y0(), ts, opts);
  assert.equal(fine.stats.accepted, coarse.stats.accepted);
  assert.equal(fine.stats.rejected, coarse.stats.rejected);
  // every accepted step has outputs inside (many more outputs than steps): 3 extra evaluations each, not per output
  assert.ok(ts.length > 10 * coarse.stats.accepted, "the test needs many outputs per step");
  assert.ok(
    fine.stats.nfev >= coarse.stats.nfev + 3 * (coarse.stats.accepted - 1) &&
      fine.stats.nfev <= coarse.stats.nfev + 3 * coarse.stats.accepted,
    `nfev ${fine.stats.nfev} with ${N_OUT} outputs, ${coarse.stats.nfev} without, ${coarse.stats.accepted} steps`,
  );
  let worst = 0;
  fine.ys.forEach((s, i) => {
    const ex = oscillator.exact(OMEGA, X0, V0, ts[i]);
    worst = Math.max(worst, Math.abs(s.x.item() - ex.x), Math.abs(s.v.item() - ex.v));
  });
  console.log(`dop853: ${coarse.stats.accepted} steps, ${N_OUT} outputs, max |error| ${worst.toExponential(2)}`);
  assert.ok(worst < 200 * 1e-10, `dop853: max interpolation error ${worst}`);
  assert.equal(fine.ys[ts.length - 1].x.item(), coarse.ys[1].x.item());
});

test("the continuous extension of dop853 has local error O(h^8) (a seventh-order interpolant)", () => {
  // y' = y cos t, y = exp(sin t)
  const f = (t: number, y: readonly Tensor[]) => [mul(y[0], Math.cos(t))];
  const s = explicitRK(DOP853);
  for (const theta of [0.3, 0.5, 0.8]) {
    const hs = [0.4, 0.3, 0.2, 0.15];
    const errs = hs.map((h) => {
      const t0 = 0.3;
      const r = s.step(f, t0, [f64([Math.exp(Math.sin(t0))])], h, null);
      return Math.abs(r.interpolate!(theta)[0].item() - Math.exp(Math.sin(t0 + theta * h)));
    });
    const slope = loglogSlope(hs, errs);
    console.log(`dop853 θ=${theta}: errors ${errs.map((e) => e.toExponential(2)).join(", ")}, slope ${slope.toFixed(3)}`);
    assert.ok(slope > 7.5 && slope < 8.6, `dop853 θ=${theta}: slope ${slope.toFixed(3)}; expected ≈ 8`);
  }
  const r = s.step(f, 0.3, [f64([1.2])], 0.1, null);
  assert.ok(Math.abs(r.interpolate!(1)[0].item() - r.y1[0].item()) < 1e-14);
  assert.ok(Math.abs(r.interpolate!(0)[0].item() - 1.2) < 1e-15);
  // 13 stages without f0 given, then the three extra stages, counted once, on the first interpolation
  assert.equal(r.nfev, 13 + 3);
});

/** Cash–Karp 5(4): adaptive, neither first-same-as-last nor dense, so outputs use Hermite interpolation. */
const CASH_KARP: ButcherTableau = {
  name: "cashkarp-test",
  order: 5,
  errorOrder: 4,
  c: [0, 1 / 5, 3 / 10, 3 / 5, 1, 7 / 8],
  a: [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [3 / 10, -9 / 10, 6 / 5],
    [-11 / 54, 5 / 2, -70 / 27, 35 / 27],
    [1631 / 55296, 175 / 512, 575 / 13824, 44275 / 110592, 253 / 4096],
  ],
  b: [37 / 378, 0, 250 / 621, 125 / 594, 0, 512 / 1771],
  bErr: [37 / 378 - 2825 / 27648, 0, 250 / 621 - 18575 / 48384, 125 / 594 - 13525 / 55296, -277 / 14336, 512 / 1771 - 1 / 4],
};

test("a method without its own dense output interpolates with cubic Hermite; outputs do not change its steps", () => {
  registerSolver(CASH_KARP.name, CASH_KARP, { override: true });
  try {
    const tol = 1e-8;
    const opts = { method: CASH_KARP.name, rtol: tol, atol: tol };
    const coarse = odeintWithStats(oscillator.f(OMEGA), y0(), [0, T], opts);
    const ts = grid(121);
    const fine = odeintWithStats(oscillator.f(OMEGA), y0(), ts, opts);
    assert.equal(fine.stats.accepted, coarse.stats.accepted);
    assert.equal(fine.stats.rejected, coarse.stats.rejected);
    // f(t1, y1) is evaluated for steps that contain outputs and reused as the next step's first stage
    assert.ok(fine.stats.nfev <= coarse.stats.nfev + coarse.stats.accepted, `nfev ${fine.stats.nfev} vs ${coarse.stats.nfev}`);
    let worst = 0;
    fine.ys.forEach((s, i) => {
      const ex = oscillator.exact(OMEGA, X0, V0, ts[i]);
      worst = Math.max(worst, Math.abs(s.x.item() - ex.x));
    });
    assert.ok(worst < 1e-4, `Hermite interpolation error ${worst}`);
    // denseOutput: false lands a step on every output time instead: more steps, no interpolation error
    const exactSteps = odeintWithStats(oscillator.f(OMEGA), y0(), ts, { ...opts, denseOutput: false });
    assert.ok(exactSteps.stats.accepted >= ts.length - 1, `accepted ${exactSteps.stats.accepted}`);
    let worstExact = 0;
    exactSteps.ys.forEach((s, i) => {
      const ex = oscillator.exact(OMEGA, X0, V0, ts[i]);
      worstExact = Math.max(worstExact, Math.abs(s.x.item() - ex.x));
    });
    console.log(
      `cash-karp: max output error ${worst.toExponential(2)} with Hermite interpolation, ${worstExact.toExponential(2)} stepping onto outputs`,
    );
    assert.ok(worstExact < 100 * tol && worstExact < worst / 10, `stepping onto outputs: error ${worstExact}`);
  } finally {
    unregisterSolver(CASH_KARP.name);
  }
});
