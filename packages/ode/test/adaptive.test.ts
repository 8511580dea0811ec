import { test } from "node:test";
import assert from "node:assert/strict";
import { odeintWithStats, type OdeStats } from "../src/index.js";
import { ARENSTORF_T, ARENSTORF_Y0, arenstorf, f64, oscillator, type Body, type Osc } from "./helpers.js";

const OMEGA = 2,
  X0 = 1,
  V0 = 0.5,
  T = 10;

function oscError(method: string, tol: number): { err: number; stats: OdeStats } {
  const r = odeintWithStats(oscillator.f(OMEGA), { x: f64([X0]), v: f64([V0]) }, [0, T], { method, rtol: tol, atol: tol });
  const ex = oscillator.exact(OMEGA, X0, V0, T);
  return { err: Math.hypot(r.ys[1].x.item() - ex.x, r.ys[1].v.item() - ex.v), stats: r.stats };
}

const tolerances: Record<string, number[]> = {
  bosh3: [1e-4, 1e-6, 1e-8],
  dopri5: [1e-4, 1e-6, 1e-8, 1e-10],
  tsit5: [1e-4, 1e-6, 1e-8, 1e-10],
  dop853: [1e-4, 1e-6, 1e-8, 1e-10],
};

for (const method of Object.keys(tolerances)) {
  test(`${method} reaches the closed-form harmonic oscillator solution; error shrinks with the tolerance`, () => {
    const rows = tolerances[method].map((tol) => ({ tol, ...oscError(method, tol) }));
    console.log(`harmonic oscillator x'' = -${OMEGA * OMEGA}x on [0, ${T}], ${method}`);
    console.log("  rtol=atol   |error|     nfev  accepted  rejected");
    for (const r of rows) {
      console.log(
        `  ${r.tol.toExponential(0).padEnd(10)}  ${r.err.toExponential(2)}  ${String(r.stats.nfev).padStart(6)}  ${String(r.stats.accepted).padStart(8)}  ${String(r.stats.rejected).padStart(8)}`,
      );
    }
    for (let i = 0; i < rows.length; i++) {
      assert.ok(rows[i].err < 100 * rows[i].tol, `${method} tol ${rows[i].tol}: error ${rows[i].err}; expected < 100·tol`);
      if (i > 0) {
        assert.ok(rows[i].err < rows[i - 1].err / 5, `${method}: error did not shrink from tol ${rows[i - 1].tol} to ${rows[i].tol}`);
        assert.ok(rows[i].stats.nfev > rows[i - 1].stats.nfev, `${method}: nfev did not grow as the tolerance tightened`);
      }
    }
  });
}

test("adaptive integration backwards in time returns to the initial state", () => {
  const ex = oscillator.exact(OMEGA, X0, V0, T);
  const r = odeintWithStats(oscillator.f(OMEGA), { x: f64([ex.x]), v: f64([ex.v]) }, [T, 0], {
    method: "dopri5",
    rtol: 1e-10,
    atol: 1e-10,
  });
  assert.ok(Math.abs(r.ys[1].x.item() - X0) < 1e-8, `x(0) = ${r.ys[1].x.item()}`);
  assert.ok(Math.abs(r.ys[1].v.item() - V0) < 1e-8, `v(0) = ${r.ys[1].v.item()}`);
  assert.ok(r.stats.accepted > 10);
});

test("Arenstorf orbit: after one period the state returns to its start (dopri5, tsit5, dop853)", () => {
  const y0: Body = { x: f64([ARENSTORF_Y0[0]]), y: f64([ARENSTORF_Y0[1]]), vx: f64([ARENSTORF_Y0[2]]), vy: f64([ARENSTORF_Y0[3]]) };
  console.log(`Arenstorf orbit, one period T = ${ARENSTORF_T}`);
  console.log("  method  rtol=atol  |y(T)-y0|   nfev  accepted  rejected");
  for (const method of ["dopri5", "tsit5", "dop853"]) {
    const errs: number[] = [];
    for (const tol of [1e-6, 1e-8, 1e-10]) {
      const r = odeintWithStats(arenstorf, y0, [0, ARENSTORF_T], { method, rtol: tol, atol: tol });
      const e = r.ys[1];
      const err = Math.hypot(
        e.x.item() - ARENSTORF_Y0[0],
        e.y.item() - ARENSTORF_Y0[1],
        e.vx.item() - ARENSTORF_Y0[2],
        e.vy.item() - ARENSTORF_Y0[3],
      );
      errs.push(err);
      console.log(
        `  ${method.padEnd(6)}  ${tol.toExponential(0).padEnd(9)}  ${err.toExponential(2)}  ${String(r.stats.nfev).padStart(6)}  ${String(r.stats.accepted).padStart(8)}  ${String(r.stats.rejected).padStart(8)}`,
      );
    }
    // the orbit is very sensitive near the close approach to the moon: global error ≫ tolerance at loose tol
    assert.ok(errs[0] < 0.1, `${method}: error ${errs[0]} at tol 1e-6`);
    assert.ok(errs[2] < 1e-4, `${method}: error ${errs[2]} at tol 1e-10; expected < 1e-4`);
    assert.ok(errs[2] < errs[0] / 100, `${method}: error does not shrink with the tolerance (${errs.join(", ")})`);
  }
});

test("per-leaf tolerances, PI coefficients, firstStep and maxStep change the steps taken but not the answer", () => {
  const f = oscillator.f(OMEGA);
  const y0 = { x: f64([X0]), v: f64([V0]) };
  const ex = oscillator.exact(OMEGA, X0, V0, T);
  const run = (o: Parameters<typeof odeintWithStats<Osc>>[3]) => {
    const r = odeintWithStats(f, y0, [0, T], { method: "dopri5", ...o });
    return { ...r.stats, err: Math.hypot(r.ys[1].x.item() - ex.x, r.ys[1].v.item() - ex.v) };
  };
  const tight = run({ rtol: 1e-9, atol: 1e-9 });
  const treeTight = run({ rtol: { x: 1e-9, v: 1e-9 }, atol: { x: 1e-9, v: 1e-9 } });
  assert.deepEqual(treeTight, tight, "a tree of equal tolerances behaves like the scalar");
  const mixed = run({ rtol: { x: 1e-9, v: 1e-3 }, atol: { x: 1e-9, v: 1e-3 } });
  const loose = run({ rtol: 1e-3, atol: 1e-3 });
  assert.ok(
    mixed.accepted < tight.accepted && mixed.accepted > loose.accepted,
    `accepted steps: loose ${loose.accepted}, mixed ${mixed.accepted}, tight ${tight.accepted}`,
  );

  const pi = run({ rtol: 1e-9, atol: 1e-9, pcoeff: 0.2, icoeff: 0.65 });
  assert.notDeepEqual(pi, tight);
  assert.ok(pi.err < 1e-6, `PI controller error ${pi.err}`);

  const first = run({ rtol: 1e-9, atol: 1e-9, firstStep: 1e-6 });
  assert.ok(first.err < 1e-6);
  assert.ok(first.nfev < tight.nfev + 60, "a tiny first step recovers within a few steps");

  const capped = run({ rtol: 1e-6, atol: 1e-6, maxStep: 0.05 });
  assert.ok(capped.accepted >= T / 0.05, `maxStep 0.05 on [0, ${T}] needs >= ${T / 0.05} steps; got ${capped.accepted}`);
  assert.ok(capped.err < 1e-4);
});
