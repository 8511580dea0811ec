import { test } from "node:test";
import assert from "node:assert/strict";
import { getSolver, odeint, registerSolver, unregisterSolver, type ButcherTableau } from "../src/index.js";
import { f64, logistic, loglogSlope, riccati } from "./helpers.js";

/** Ralston's third-order method (not built in). */
const RALSTON3: ButcherTableau = {
  name: "ralston3-test",
  order: 3,
  c: [0, 1 / 2, 3 / 4],
  a: [[], [1 / 2], [0, 3 / 4]],
  b: [2 / 9, 1 / 3, 4 / 9],
};
/** Kutta's 3/8 rule, a fourth-order method (not built in). */
const RK38: ButcherTableau = {
  name: "rk38-test",
  order: 4,
  c: [0, 1 / 3, 2 / 3, 1],
  a: [[], [1 / 3], [-1 / 3, 1], [1, -1, 1]],
  b: [1 / 8, 3 / 8, 3 / 8, 1 / 8],
};

const problems = [
  { name: "y' = -2ty^2 on [0, 2]", f: riccati.f, y0: 1, T: 2, exact: riccati.exact(2) },
  { name: "logistic r = 3 on [0, 2]", f: logistic.f(3), y0: 0.1, T: 2, exact: logistic.exact(3, 0.1, 2) },
];

function measuredOrder(method: string, counts: readonly number[]): { slopes: number[]; table: string[] } {
  const slopes: number[] = [];
  const table: string[] = [];
  for (const p of problems) {
    const hs: number[] = [],
      errs: number[] = [];
    for (const n of counts) {
      const ys = odeint(p.f, f64([p.y0]), [0, p.T], { method, steps: n });
      hs.push(p.T / n);
      errs.push(Math.abs(ys[1].item() - p.exact));
    }
    const slope = loglogSlope(hs, errs);
    slopes.push(slope);
    table.push(
      `${method.padEnd(14)} ${p.name.padEnd(26)} errors ${errs.map((e) => e.toExponential(2)).join(" ")}  slope ${slope.toFixed(3)}`,
    );
  }
  return { slopes, table };
}

const cases: { method: string; order: number; counts: number[] }[] = [
  { method: "euler", order: 1, counts: [40, 80, 160, 320] },
  { method: "midpoint", order: 2, counts: [20, 40, 80, 160] },
  { method: "heun", order: 2, counts: [20, 40, 80, 160] },
  { method: "rk4", order: 4, counts: [20, 40, 80, 160] },
  // adaptive methods used with fixed steps: their solution weights have the advertised order too (step
  // counts chosen in the asymptotic range, above round-off)
  { method: "bosh3", order: 3, counts: [40, 80, 160, 320] },
  { method: "dopri5", order: 5, counts: [64, 96, 128, 192, 256] },
  { method: "tsit5", order: 5, counts: [64, 96, 128, 192, 256] },
  // order 8: errors reach round-off (1e-14) near 20 steps, so the range is short
  { method: "dop853", order: 8, counts: [8, 10, 12, 16] },
];

for (const c of cases) {
  test(`empirical convergence order of ${c.method} is ${c.order} ± 0.2`, () => {
    assert.equal(getSolver(c.method).order, c.order);
    const { slopes, table } = measuredOrder(c.method, c.counts);
    console.log(table.join("\n"));
    for (const s of slopes) assert.ok(Math.abs(s - c.order) <= 0.2, `${c.method}: slope ${s.toFixed(3)}; expected ${c.order} ± 0.2`);
  });
}

test("custom tableaux registered by name converge at their order (Ralston 3, 3/8 rule 4)", () => {
  registerSolver(RALSTON3.name, RALSTON3, { override: true });
  registerSolver(RK38.name, RK38, { override: true });
  try {
    for (const [t, counts] of [
      [RALSTON3, [40, 80, 160, 320]],
      [RK38, [20, 40, 80, 160]],
    ] as const) {
      const { slopes, table } = measuredOrder(t.name, counts);
      console.log(table.join("\n"));
      for (const s of slopes) assert.ok(Math.abs(s - t.order) <= 0.2, `${t.name}: slope ${s.toFixed(3)}; expected ${t.order} ± 0.2`);
    }
  } finally {
    unregisterSolver(RALSTON3.name);
    unregisterSolver(RK38.name);
  }
});

test("dt cuts each output interval into ceil(|Δt|/dt) equal steps landing on the output times", () => {
  // Euler on y' = y: n steps of h give (1 + h)^n exactly.
  const f = (_t: number, y: ReturnType<typeof f64>) => y;
  const ys = odeint(f, f64([1]), [0, 0.3, 1], { method: "euler", dt: 0.1 });
  assert.ok(Math.abs(ys[1].item() - 1.1 ** 3) < 1e-14, `y(0.3) = ${ys[1].item()}`);
  assert.ok(Math.abs(ys[2].item() - 1.1 ** 3 * 1.1 ** 7) < 1e-13, `y(1) = ${ys[2].item()}`);
  // 0.25 does not divide 0.3: ceil(0.3/0.25) = 2 steps of 0.15
  const z = odeint(f, f64([1]), [0, 0.3], { method: "euler", dt: 0.25 });
  assert.ok(Math.abs(z[1].item() - 1.15 ** 2) < 1e-14, `y(0.3) = ${z[1].item()}`);
  // backwards in time: y' = y from 1 down to 0 in 4 steps of −0.25
  const b = odeint(f, f64([Math.E]), [1, 0], { method: "euler", steps: 4 });
  assert.ok(Math.abs(b[1].item() - Math.E * 0.75 ** 4) < 1e-14);
  // without dt/steps a fixed-step method takes one step per output interval (as torchdiffeq does)
  const one = odeint(f, f64([1]), [0, 0.5, 1], { method: "euler" });
  assert.ok(Math.abs(one[2].item() - 2.25) < 1e-14);
});
