/**
 * ODE solver benchmarks: qkvflow's adaptive solvers against the `odex` package (Hairer's Gragg–Bulirsch–Stoer
 * extrapolation code, plain number arrays) at the same tolerances on the same problems, plus the fixed-step
 * solvers on a DiffEqFormer-shaped float32 state against a hand-written Euler loop.
 * qkvflow evaluates the vector field with tensor ops on tiny float64 tensors, so on 2- and 4-dimensional
 * problems it pays a per-op overhead that odex does not; the comparison shows that cost honestly.
 * Run: npm run bench (all suites) or npx tsx bench/ode.bench.ts [filter]
 */
import Benchmark from "benchmark";
import { createRequire } from "node:module";
import { add, matmul, mul, neg, pow, random, square, sub, div, tanh, tensor, type Tensor } from "@qkvflow/autograd";
import { odeintWithStats, type OdeStats } from "@qkvflow/ode";
import { runIfMain } from "./common.js";

interface OdexResult {
  y: number[];
  nStep: number;
  nAccept: number;
  nReject: number;
  nEval: number;
}
interface OdexSolver {
  absoluteTolerance: number;
  relativeTolerance: number;
  maxSteps: number;
  solve(f: (x: number, y: number[]) => number[], x0: number, y0: number[], xEnd: number): OdexResult;
}
const require = createRequire(import.meta.url);
const odex = require("odex") as { Solver: new (n: number) => OdexSolver };

// ---- problems -----------------------------------------------------------------------------------------
const MU = 0.012277471,
  MUP = 1 - MU;
const ARENSTORF_T = 17.0652165601579625588917206249;
const ARENSTORF_Y0 = [0.994, 0, 0, -2.00158510637908252240537862224];
type Body = { x: Tensor; y: Tensor; vx: Tensor; vy: Tensor };
function arenstorfTensor(_t: number, s: Body): Body {
  const d1 = pow(add(square(add(s.x, MU)), square(s.y)), 1.5);
  const d2 = pow(add(square(sub(s.x, MUP)), square(s.y)), 1.5);
  const ax = sub(sub(add(s.x, mul(s.vy, 2)), div(mul(add(s.x, MU), MUP), d1)), div(mul(sub(s.x, MUP), MU), d2));
  const ay = sub(sub(sub(s.y, mul(s.vx, 2)), div(mul(s.y, MUP), d1)), div(mul(s.y, MU), d2));
  return { x: s.vx, y: s.vy, vx: ax, vy: ay };
}
function arenstorfPlain(_t: number, y: number[]): number[] {
  const d1 = Math.pow((y[0] + MU) ** 2 + y[1] ** 2, 1.5);
  const d2 = Math.pow((y[0] - MUP) ** 2 + y[1] ** 2, 1.5);
  return [
    y[2],
    y[3],
    y[0] + 2 * y[3] - (MUP * (y[0] + MU)) / d1 - (MU * (y[0] - MUP)) / d2,
    y[1] - 2 * y[2] - (MUP * y[1]) / d1 - (MU * y[1]) / d2,
  ];
}
const f64 = (v: number) => tensor([v], { dtype: "float64" });

interface Problem {
  name: string;
  T: number;
  y0: number[];
  exact: number[];
  plain: (t: number, y: number[]) => number[];
  solveTensor: (method: string, tol: number) => { y: number[]; stats: OdeStats };
}

const problems: Problem[] = [
  {
    name: "harmonic oscillator (2-D, t in [0, 20])",
    T: 20,
    y0: [1, 0],
    exact: [Math.cos(20), -Math.sin(20)],
    plain: (_t, y) => [y[1], -y[0]],
    solveTensor: (method, tol) => {
      const r = odeintWithStats((_t: number, s: { x: Tensor; v: Tensor }) => ({ x: s.v, v: neg(s.x) }), { x: f64(1), v: f64(0) }, [0, 20], {
        method,
        rtol: tol,
        atol: tol,
        maxSteps: 1e6,
      });
      return { y: [r.ys[1].x.item(), r.ys[1].v.item()], stats: r.stats };
    },
  },
  {
    name: "Arenstorf orbit (4-D, one period)",
    T: ARENSTORF_T,
    y0: ARENSTORF_Y0,
    exact: ARENSTORF_Y0,
    plain: arenstorfPlain,
    solveTensor: (method, tol) => {
      const y0: Body = { x: f64(ARENSTORF_Y0[0]), y: f64(ARENSTORF_Y0[1]), vx: f64(ARENSTORF_Y0[2]), vy: f64(ARENSTORF_Y0[3]) };
      const r = odeintWithStats(arenstorfTensor, y0, [0, ARENSTORF_T], { method, rtol: tol, atol: tol, maxSteps: 1e6 });
      const e = r.ys[1];
      return { y: [e.x.item(), e.y.item(), e.vx.item(), e.vy.item()], stats: r.stats };
    },
  },
];

const dist = (a: readonly number[], b: readonly number[]) => Math.hypot(...a.map((v, i) => v - b[i]));

interface Row {
  name: string;
  solver: string;
  tol: string;
  error: string;
  steps: number;
  nfev: number;
  msPerSolve: number;
  stepsPerSec: number;
  fevPerSec: number;
}

function runSuite(suite: Benchmark.Suite): Promise<void> {
  return new Promise((resolve, reject) => {
    suite.on("complete", () => resolve());
    suite.on("error", (e: { target: { error: unknown } }) => reject(e.target.error));
    suite.run({ async: false });
  });
}

function fmtRow(r: Row): string {
  return `| ${r.name} | ${r.solver} | ${r.tol} | ${r.error} | ${r.steps} | ${r.nfev} | ${r.msPerSolve.toFixed(r.msPerSolve < 1 ? 3 : 1)} | ${Math.round(r.stepsPerSec).toLocaleString("en-US")} | ${Math.round(r.fevPerSec).toLocaleString("en-US")} |`;
}

/** Runs the ODE benchmarks whose names contain `filter` (case-insensitive); prints a markdown table. */
export async function run(filter?: string): Promise<void> {
  const want = (name: string) => !filter || name.toLowerCase().includes(filter.toLowerCase());
  const rows: Row[] = [];
  const suite = new Benchmark.Suite("ode");
  const opts = { minSamples: 5, maxTime: 2 };

  for (const p of problems) {
    for (const tol of [1e-6, 1e-9]) {
      const tolS = tol.toExponential(0);
      // odex
      const oname = `ode: ${p.name} odex tol ${tolS}`;
      if (want(oname)) {
        const s = new odex.Solver(p.y0.length);
        s.absoluteTolerance = s.relativeTolerance = tol;
        s.maxSteps = 1e6;
        const probe = s.solve(p.plain, 0, p.y0, p.T);
        const row: Row = {
          name: p.name,
          solver: "odex (GBS)",
          tol: tolS,
          error: dist(probe.y, p.exact).toExponential(2),
          steps: probe.nAccept,
          nfev: probe.nEval,
          msPerSolve: 0,
          stepsPerSec: 0,
          fevPerSec: 0,
        };
        rows.push(row);
        suite.add(oname, () => s.solve(p.plain, 0, p.y0, p.T), {
          ...opts,
          onComplete: (e: { target: Benchmark }) => {
            const hz = e.target.hz ?? 0;
            row.msPerSolve = 1000 / hz;
            row.stepsPerSec = hz * probe.nAccept;
            row.fevPerSec = hz * probe.nEval;
          },
        });
      }
      for (const method of ["dopri5", "tsit5"]) {
        const qname = `ode: ${p.name} qkvflow ${method} tol ${tolS}`;
        if (!want(qname)) continue;
        const probe = p.solveTensor(method, tol);
        const row: Row = {
          name: p.name,
          solver: `qkvflow ${method}`,
          tol: tolS,
          error: dist(probe.y, p.exact).toExponential(2),
          steps: probe.stats.accepted,
          nfev: probe.stats.nfev,
          msPerSolve: 0,
          stepsPerSec: 0,
          fevPerSec: 0,
        };
        rows.push(row);
        suite.add(qname, () => p.solveTensor(method, tol), {
          ...opts,
          onComplete: (e: { target: Benchmark }) => {
            const hz = e.target.hz ?? 0;
            row.msPerSolve = 1000 / hz;
            row.stepsPerSec = hz * probe.stats.accepted;
            row.fevPerSec = hz * probe.stats.nfev;
          },
        });
      }
    }
  }

  // DiffEqFormer-shaped state: float32 [B, T, E] = [4, 32, 64], f(t, X) = tanh(X (W0 + t W1)).
  const B = 4,
    T = 32,
    E = 64;
  const [k1, k2, k3] = random.split(random.key(0), 3);
  const X0 = random.normal(k1, [B, T, E], { std: 0.5 });
  const W0 = random.normal(k2, [E, E], { std: 0.1 });
  const W1 = random.normal(k3, [E, E], { std: 0.1 });
  const block = (t: number, X: Tensor) => tanh(matmul(X, add(W0, mul(W1, t))));
  const fixed: { name: string; fn: () => unknown; steps: number; nfev: number }[] = [
    {
      name: "hand-written Euler loop, 12 steps",
      steps: 12,
      nfev: 12,
      fn: () => {
        let X = X0;
        for (let i = 0; i < 12; i++) X = add(X, mul(block(i / 12, X), 1 / 12));
        return X;
      },
    },
    { name: "odeint euler, 12 steps", steps: 12, nfev: 12, fn: () => odeintWithStats(block, X0, [0, 1], { method: "euler", steps: 12 }) },
    {
      name: "odeint midpoint, 6 steps",
      steps: 6,
      nfev: 12,
      fn: () => odeintWithStats(block, X0, [0, 1], { method: "midpoint", steps: 6 }),
    },
    { name: "odeint rk4, 3 steps", steps: 3, nfev: 12, fn: () => odeintWithStats(block, X0, [0, 1], { method: "rk4", steps: 3 }) },
    {
      name: "odeint dopri5, rtol 1e-4 atol 1e-6 (adaptive)",
      steps: 0,
      nfev: 0,
      fn: () => odeintWithStats(block, X0, [0, 1], { method: "dopri5" }),
    },
  ];
  const probeAdaptive = odeintWithStats(block, X0, [0, 1], { method: "dopri5" });
  fixed[4].steps = probeAdaptive.stats.accepted;
  fixed[4].nfev = probeAdaptive.stats.nfev;
  for (const c of fixed) {
    const name = `ode: [${B}, ${T}, ${E}] float32 ${c.name}`;
    if (!want(name)) continue;
    const row: Row = {
      name: `DiffEqFormer-shaped [${B}, ${T}, ${E}] float32`,
      solver: c.name,
      tol: "-",
      error: "-",
      steps: c.steps,
      nfev: c.nfev,
      msPerSolve: 0,
      stepsPerSec: 0,
      fevPerSec: 0,
    };
    rows.push(row);
    suite.add(name, c.fn, {
      ...opts,
      onComplete: (e: { target: Benchmark }) => {
        const hz = e.target.hz ?? 0;
        row.msPerSolve = 1000 / hz;
        row.stepsPerSec = hz * c.steps;
        row.fevPerSec = hz * c.nfev;
      },
    });
  }

  if (suite.length === 0) {
    console.log(`ode: no benchmark matches '${filter}'`);
    return;
  }
  suite.on("cycle", (e: { target: Benchmark }) => console.log(String(e.target)));
  await runSuite(suite);
  console.log("\n| problem | solver | rtol = atol | error at end | accepted steps | f evals | ms / solve | steps / s | f evals / s |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) console.log(fmtRow(r));
}

runIfMain(import.meta.url, run);
