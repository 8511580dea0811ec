/**
 * Adding ODE solvers that are not built in: Kutta's 3/8 rule (fixed step, order 4) and the Cash–Karp 5(4)
 * pair (adaptive), each given as a Butcher tableau and registered by name, then used on problems with known
 * solutions.
 * Run: npx tsx examples/custom-solver.ts
 */
import { mul, neg, square, tensor, type Tensor } from "@qkvflow/autograd";
import { listSolvers, odeint, odeintWithStats, PIDController, registerSolver, type ButcherTableau } from "@qkvflow/ode";

// Kutta's 3/8 rule: four stages, fourth order.
const rk38: ButcherTableau = {
  name: "rk38",
  order: 4,
  c: [0, 1 / 3, 2 / 3, 1],
  a: [[], [1 / 3], [-1 / 3, 1], [1, -1, 1]],
  b: [1 / 8, 3 / 8, 3 / 8, 1 / 8],
};

// Cash–Karp: six stages, a fifth-order solution and an embedded fourth-order one. bErr = b − b̂ drives the
// step-size controller, so the method is adaptive.
const b5 = [37 / 378, 0, 250 / 621, 125 / 594, 0, 512 / 1771];
const b4 = [2825 / 27648, 0, 18575 / 48384, 13525 / 55296, 277 / 14336, 1 / 4];
const cashKarp: ButcherTableau = {
  name: "cashkarp",
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
  b: b5,
  bErr: b5.map((v, i) => v - b4[i]),
};

registerSolver("rk38", rk38);
registerSolver("cashkarp", cashKarp);
console.log("registered methods:", listSolvers().join(", "));

// y' = −2t·y², y(0) = 1, exact y = 1/(1 + t²).
const f = (t: number, y: Tensor) => mul(neg(square(y)), 2 * t);
const y0 = tensor([1], { dtype: "float64" });
const exact = 1 / (1 + 4);

console.log("\n3/8 rule on y' = -2ty^2, y(2) = 1/5:");
let prev = 0;
for (const steps of [10, 20, 40, 80]) {
  const err = Math.abs(odeint(f, y0, [0, 2], { method: "rk38", steps })[1].item() - exact);
  const order = prev ? Math.log2(prev / err).toFixed(2) : "";
  console.log(`  steps ${String(steps).padStart(3)}  |error| ${err.toExponential(3)}  ${order && `observed order ${order}`}`);
  prev = err;
}

console.log("\nCash–Karp (adaptive) on the same problem:");
for (const tol of [1e-4, 1e-7, 1e-10]) {
  const { ys, stats } = odeintWithStats(f, y0, [0, 2], {
    method: "cashkarp",
    stepSizeController: new PIDController({ rtol: tol, atol: tol }),
  });
  console.log(
    `  rtol=atol ${tol.toExponential(0)}  |error| ${Math.abs(ys[1].item() - exact).toExponential(3)}  ` +
      `nfev ${stats.nfev}  accepted ${stats.accepted}  rejected ${stats.rejected}`,
  );
}

// Harmonic oscillator as a tree state {x, v}: x(t) = cos t.
const osc = (_t: number, s: { x: Tensor; v: Tensor }) => ({ x: s.v, v: neg(s.x) });
const ts = [0, 1, 2, 3, 4, 5];
const sol = odeint(osc, { x: tensor([1], { dtype: "float64" }), v: tensor([0], { dtype: "float64" }) }, ts, {
  method: "cashkarp",
  stepSizeController: new PIDController({ rtol: 1e-9, atol: 1e-9 }),
});
const worst = Math.max(...sol.map((s, i) => Math.abs(s.x.item() - Math.cos(ts[i]))));
console.log(`\nCash–Karp on x'' = -x with outputs at t = ${ts.join(", ")}:`);
console.log(`  max |x - cos t| = ${worst.toExponential(3)} (outputs by cubic Hermite interpolation: Cash–Karp has no dense output)`);
// Without a continuous extension, landing steps on the output times is more accurate at these times.
const onto = odeint(osc, { x: tensor([1], { dtype: "float64" }), v: tensor([0], { dtype: "float64" }) }, ts, {
  method: "cashkarp",
  stepSizeController: new PIDController({ rtol: 1e-9, atol: 1e-9 }),
  denseOutput: false,
});
const worstOnto = Math.max(...onto.map((s, i) => Math.abs(s.x.item() - Math.cos(ts[i]))));
console.log(`  max |x - cos t| = ${worstOnto.toExponential(3)} (denseOutput: false, steps land on the output times)`);
