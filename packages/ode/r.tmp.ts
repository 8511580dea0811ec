import { odeintWithStats, ConstantStepSize, PIDController } from "./src/index.js";
// convergence: y' = -2t y^2 → 1/(1+t^2), and a stiff linear system with closed form
const ric = (t: number, y: Float64Array) => [-2 * t * y[0] * y[0]];
const errs: number[] = [];
for (const n of [10, 20, 40, 80]) {
  const r = odeintWithStats(ric, [1], [0, 2], { method: "rodas3", stepSizeController: new ConstantStepSize({ steps: n }) });
  errs.push(Math.abs(r.ys[1][0] - 1 / 5));
}
console.log(errs, errs.slice(1).map((e, i) => Math.log2(errs[i] / e)));
// Robertson
const rob = (_t: number, y: Float64Array, d: Float64Array) => { d[0] = -0.04*y[0] + 1e4*y[1]*y[2]; d[1] = 0.04*y[0] - 1e4*y[1]*y[2] - 3e7*y[1]*y[1]; d[2] = 3e7*y[1]*y[1]; };
const robJ = (_t: number, y: Float64Array) => [[-0.04, 1e4*y[2], 1e4*y[1]], [0.04, -1e4*y[2]-6e7*y[1], -1e4*y[1]], [0, 6e7*y[1], 0]];
let t0 = performance.now();
const r = odeintWithStats(rob, [1, 0, 0], [0, 40, 4e5, 1e11], { method: "rodas3", jac: robJ, stepSizeController: new PIDController({ rtol: 1e-6, atol: [1e-10, 1e-14, 1e-10], maxSteps: 1e5 }) });
console.log("rob", performance.now() - t0, r.stats, r.ys.map((y) => Array.from(y)));
const MU = 1000;
const vdp = (_t: number, y: Float64Array, d: Float64Array) => { d[0] = y[1]; d[1] = MU * (1 - y[0]*y[0]) * y[1] - y[0]; };
const vdpJ = (_t: number, y: Float64Array) => [[0, 1], [-2*MU*y[0]*y[1] - 1, MU*(1 - y[0]*y[0])]];
t0 = performance.now();
const v = odeintWithStats(vdp, [2, 0], [0, 1000, 3000], { method: "rodas3", jac: vdpJ, stepSizeController: new PIDController({ rtol: 1e-6, atol: 1e-6, maxSteps: 1e6 }) });
console.log("vdp", performance.now() - t0, v.stats, v.ys.map((y) => Array.from(y)));
t0 = performance.now();
const v2 = odeintWithStats(vdp, [2, 0], [0, 1000, 3000], { method: "rodas3", stepSizeController: new PIDController({ rtol: 1e-6, atol: 1e-6, maxSteps: 1e6 }) });
console.log("vdp fd", performance.now() - t0, v2.stats, v2.ys.map((y) => Array.from(y)));
