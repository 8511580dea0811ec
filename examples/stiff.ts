/**
 * A stiff problem two ways: Robertson's chemical kinetics on a plain Float64Array with the Rosenbrock method
 * Rodas3 (an analytic Jacobian, or none: finite differences), and a stiff linear system as a tensor state,
 * where the Jacobian comes from autodiff and gradients flow through the implicit solver. An explicit method
 * (dopri5) is shown to need orders of magnitude more steps.
 * Run: npx tsx examples/stiff.ts
 */
import { grad, matmul, mul, reshape, sum, tensor, type Tensor } from "@qkvflow/autograd";
import { odeint, odeintWithStats, PIDController, type ArrayField } from "@qkvflow/ode";

// y1' = −0.04 y1 + 1e4 y2 y3,  y2' = 0.04 y1 − 1e4 y2 y3 − 3e7 y2²,  y3' = 3e7 y2²
const robertson: ArrayField = (_t, y, dydt) => {
  dydt[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
  dydt[1] = 0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] * y[1];
  dydt[2] = 3e7 * y[1] * y[1];
};
const jac = (_t: number, y: Float64Array) => [
  [-0.04, 1e4 * y[2], 1e4 * y[1]],
  [0.04, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]],
  [0, 6e7 * y[1], 0],
];
const ctrl = new PIDController({ rtol: 1e-6, atol: [1e-10, 1e-14, 1e-10], maxSteps: 100_000 });
const ts = [0, 40, 4e5, 1e11];
const sol = odeintWithStats(robertson, [1, 0, 0], ts, { method: "rodas3", jac, stepSizeController: ctrl, denseOutput: false });
console.log("Robertson, Rodas3 with the analytic Jacobian:", sol.stats);
sol.ys.forEach((y, i) => console.log(`  t = ${ts[i].toExponential(0)}: y = [${y.map((v) => v.toExponential(6)).join(", ")}]`));
const fd = odeintWithStats(robertson, [1, 0, 0], ts, { method: "rodas3", stepSizeController: ctrl, denseOutput: false });
console.log(
  "the same with a finite-difference Jacobian:",
  fd.stats,
  "y(1e11) =",
  fd.ys[3].map((v) => v.toExponential(6)),
);
try {
  odeint(robertson, [1, 0, 0], [0, 1e3], { stepSizeController: new PIDController({ rtol: 1e-6, atol: 1e-10, maxSteps: 20_000 }) });
} catch (e) {
  console.log("dopri5 (explicit) on the same problem:", (e as Error).message.split(";")[0]);
}

// A stiff linear system on a tensor state: the Jacobian is exact (forward-mode autodiff), and the solve is
// differentiable, here with respect to the system matrix.
const A = tensor([-1000, 1, 0, -1], { dtype: "float64", shape: [2, 2] });
const y0 = tensor([1, 2], { dtype: "float64" });
const loss = (M: Tensor) => {
  const f = (_t: number, y: Tensor) => reshape(matmul(M, reshape(y, [2, 1])), [2]);
  const yT = odeint(f, y0, [0, 1], { method: "rodas3", stepSizeController: new PIDController({ rtol: 1e-8, atol: 1e-10 }) })[1];
  return sum(mul(yT, yT));
};
console.log(
  "d|y(1)|²/dA through Rodas3:",
  Array.from((grad(loss)(A) as Tensor).data(), (v) => v.toExponential(4)),
);
