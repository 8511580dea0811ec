/**
 * ODE solver benchmarks, peers in the same run:
 * - non-stiff: qkvflow's adaptive solvers on plain arrays (Float64Array, f(t, y, dydt)) and on tensor trees against
 *   the `odex` package (Hairer's Gragg–Bulirsch–Stoer extrapolation code on number arrays) at the same tolerances,
 *   with the error at the end of each solve and the ratios qkvflow dopri5 and dop853 (plain) / odex, and a
 *   hand-written dopri5 loop on Float64Array taking the same steps (bench/dopri5-loop.ts), the floor of odeint's
 *   per-step cost;
 * - work against precision on the two non-stiff problems: odex, dopri5 and dop853 over tolerances 1e-4 … 1e-12, and
 *   qkvflow's time at an error no larger than odex's at 1e-6 and 1e-9;
 * - stiff: Rodas3 and Rodas4 (plain arrays, user Jacobian and finite differences) on Robertson's kinetics and Van der Pol
 *   with μ = 1000 against scipy's Radau and BDF (through `python3 bench/ode-scipy-reference.py --bench`, when python3
 *   with scipy is present), errors against tight-tolerance Radau references, and what an explicit method needs there;
 * - the fixed-step solvers on a DiffEqFormer-shaped float32 state against a hand-written Euler loop.
 * Run: npm run bench (all suites) or npx tsx bench/ode.bench.ts [filter] (a name substring; `a|b` for either, e.g. 'odex|plain')
 */
import Benchmark from "benchmark";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { add, matmul, mul, neg, pow, random, square, sub, div, tanh, tensor, type Tensor } from "@qkvflow/autograd";
import { ConstantStepSize, PIDController, odeintWithStats, type ArrayField, type OdeStats } from "@qkvflow/ode";
import { runIfMain } from "./common.js";
import { dopri5Loop } from "./dopri5-loop.js";

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

// ---- non-stiff problems --------------------------------------------------------------------------------
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
function arenstorfPlain(_t: number, y: ArrayLike<number>): number[] {
  const d1 = Math.pow((y[0] + MU) ** 2 + y[1] ** 2, 1.5);
  const d2 = Math.pow((y[0] - MUP) ** 2 + y[1] ** 2, 1.5);
  return [
    y[2],
    y[3],
    y[0] + 2 * y[3] - (MUP * (y[0] + MU)) / d1 - (MU * (y[0] - MUP)) / d2,
    y[1] - 2 * y[2] - (MUP * y[1]) / d1 - (MU * y[1]) / d2,
  ];
}
/** The same field writing into dydt (the plain-array call without an allocation per evaluation). */
const arenstorfInto: ArrayField = (_t, y, d) => {
  const d1 = Math.pow((y[0] + MU) ** 2 + y[1] ** 2, 1.5);
  const d2 = Math.pow((y[0] - MUP) ** 2 + y[1] ** 2, 1.5);
  d[0] = y[2];
  d[1] = y[3];
  d[2] = y[0] + 2 * y[3] - (MUP * (y[0] + MU)) / d1 - (MU * (y[0] - MUP)) / d2;
  d[3] = y[1] - 2 * y[2] - (MUP * y[1]) / d1 - (MU * y[1]) / d2;
};
const f64 = (v: number) => tensor([v], { dtype: "float64" });
const pid = (tol: number) => new PIDController({ rtol: tol, atol: tol, maxSteps: 1e6 });

interface Problem {
  name: string;
  short: string;
  T: number;
  y0: number[];
  exact: number[];
  plain: (t: number, y: number[]) => number[];
  into: ArrayField;
  solveTensor: (method: string, tol: number) => { y: number[]; stats: OdeStats };
}

const problems: Problem[] = [
  {
    name: "harmonic oscillator (2-D, t in [0, 20])",
    short: "oscillator",
    T: 20,
    y0: [1, 0],
    exact: [Math.cos(20), -Math.sin(20)],
    plain: (_t, y) => [y[1], -y[0]],
    into: (_t, y, d) => {
      d[0] = y[1];
      d[1] = -y[0];
    },
    solveTensor: (method, tol) => {
      const r = odeintWithStats((_t: number, s: { x: Tensor; v: Tensor }) => ({ x: s.v, v: neg(s.x) }), { x: f64(1), v: f64(0) }, [0, 20], {
        method,
        stepSizeController: pid(tol),
      });
      return { y: [r.ys[1].x.item(), r.ys[1].v.item()], stats: r.stats };
    },
  },
  {
    name: "Arenstorf orbit (4-D, one period)",
    short: "Arenstorf",
    T: ARENSTORF_T,
    y0: ARENSTORF_Y0,
    exact: ARENSTORF_Y0,
    plain: arenstorfPlain,
    into: arenstorfInto,
    solveTensor: (method, tol) => {
      const y0: Body = { x: f64(ARENSTORF_Y0[0]), y: f64(ARENSTORF_Y0[1]), vx: f64(ARENSTORF_Y0[2]), vy: f64(ARENSTORF_Y0[3]) };
      const r = odeintWithStats(arenstorfTensor, y0, [0, ARENSTORF_T], { method, stepSizeController: pid(tol) });
      const e = r.ys[1];
      return { y: [e.x.item(), e.y.item(), e.vx.item(), e.vy.item()], stats: r.stats };
    },
  },
];

// ---- stiff problems -------------------------------------------------------------------------------------
const robertson: ArrayField = (_t, y, d) => {
  d[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
  d[1] = 0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] * y[1];
  d[2] = 3e7 * y[1] * y[1];
};
const robertsonJac = (_t: number, y: Float64Array, J: Float64Array) => {
  J.set([-0.04, 1e4 * y[2], 1e4 * y[1], 0.04, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1], 0, 6e7 * y[1], 0]);
};
const VDP_MU = 1000;
const vdp: ArrayField = (_t, y, d) => {
  d[0] = y[1];
  d[1] = VDP_MU * (1 - y[0] * y[0]) * y[1] - y[0];
};
const vdpJac = (_t: number, y: Float64Array, J: Float64Array) => {
  J[0] = 0;
  J[1] = 1;
  J[2] = -2 * VDP_MU * y[0] * y[1] - 1;
  J[3] = VDP_MU * (1 - y[0] * y[0]);
};
// tight-tolerance references: scipy Radau at rtol 1e-12 (bench/ode-scipy-reference.py; also in packages/ode/test/stiff.test.ts)
const ROB_REF = [
  [0.7158270687193865, 9.185534764556822e-6, 0.28416374574584735],
  [0.004938274520980869, 1.984994087954802e-8, 0.9950617056290774],
  [2.0833401438845025e-8, 8.333360747067619e-14, 0.9999999791665148],
];
const VDP_REF = [-1.8636462548108763, -1.5106069367599941];
interface StiffProblem {
  name: string;
  key: string;
  f: ArrayField;
  jac: (t: number, y: Float64Array, J: Float64Array) => void;
  y0: number[];
  ts: number[];
  rtol: number;
  atol: number | number[];
  /** Largest relative error over species and outputs (Robertson), or largest |y₁ − ref| (Van der Pol). */
  error: (ys: readonly Float64Array[]) => number;
  errorName: string;
}
const stiffProblems: StiffProblem[] = [
  {
    name: "Robertson kinetics, t to 1e11 (rtol 1e-6, atol [1e-10, 1e-14, 1e-10])",
    key: "robertson",
    f: robertson,
    jac: robertsonJac,
    y0: [1, 0, 0],
    ts: [0, 40, 4e5, 1e11],
    rtol: 1e-6,
    atol: [1e-10, 1e-14, 1e-10],
    error: (ys) =>
      Math.max(...[1, 2, 3].flatMap((i) => [0, 1, 2].map((k) => Math.abs(ys[i][k] - ROB_REF[i - 1][k]) / Math.abs(ROB_REF[i - 1][k])))),
    errorName: "max relative error of the species at t = 40, 4e5, 1e11",
  },
  {
    name: "Van der Pol, mu = 1000, t in [0, 3000] (rtol = atol = 1e-6)",
    key: "vdp1000",
    f: vdp,
    jac: vdpJac,
    y0: [2, 0],
    ts: [0, 1000, 3000],
    rtol: 1e-6,
    atol: 1e-6,
    error: (ys) => Math.max(Math.abs(ys[1][0] - VDP_REF[0]), Math.abs(ys[2][0] - VDP_REF[1])),
    errorName: "max |y1 - ref| at t = 1000, 3000",
  },
];

interface ScipyRow {
  problem: string;
  method: string;
  nfev: number;
  njev: number;
  nlu: number;
  error: number;
  ms: number;
  success: boolean;
}
/** scipy's Radau and BDF timed by python3 in this run, or null (with the reason printed) when unavailable. */
function scipyPeers(): ScipyRow[] | null {
  const script = join(dirname(fileURLToPath(import.meta.url)), "ode-scipy-reference.py");
  const r = spawnSync("python3", [script, "--bench"], { encoding: "utf8", timeout: 600_000 });
  if (r.error || r.status !== 0) {
    console.log(`scipy peers unavailable (${r.error?.message ?? r.stderr.trim().split("\n").pop()}); stiff rows show qkvflow only`);
    return null;
  }
  return (JSON.parse(r.stdout) as { rows: ScipyRow[] }).rows;
}

const dist = (a: ArrayLike<number>, b: readonly number[]) => Math.hypot(...Array.from(a, (v, i) => v - b[i]));

interface Row {
  name: string;
  solver: string;
  tol: string;
  error: string;
  steps: number | string;
  nfev: number;
  njev?: number | string;
  msPerSolve: number;
}

function runSuite(suite: Benchmark.Suite): Promise<void> {
  return new Promise((resolve, reject) => {
    suite.on("complete", () => resolve());
    suite.on("error", (e: { target: { error: unknown } }) => reject(e.target.error));
    suite.run({ async: false });
  });
}

const fmtMs = (ms: number) => ms.toFixed(ms < 1 ? 3 : 1);

/** One point of a work-precision sweep: a solver at one tolerance, its error at the end and its best ms per solve. */
interface WorkPoint {
  solver: string;
  tol: number;
  error: number;
  nfev: number;
  ms: number;
  solve: () => unknown;
}

/**
 * Work against precision (how codes are compared in Hairer, Nørsett & Wanner's books): each solver over tolerances
 * 1e-4 … 1e-12 in half decades, timed in interleaved rounds (best of 15 rounds of ≥ 2 ms each, so every point sees
 * the same machine state). For odex at 1e-6 and 1e-9, qkvflow's time at the loosest swept tolerance whose error is no
 * larger than odex's: the comparison at comparable (here: no worse) error.
 */
function workPrecision(p: Problem): void {
  const tols = Array.from({ length: 17 }, (_, i) => 10 ** (-4 - i / 2));
  const points: WorkPoint[] = [];
  for (const tol of tols) {
    const s = new odex.Solver(p.y0.length);
    s.absoluteTolerance = s.relativeTolerance = tol;
    s.maxSteps = 1e6;
    const r = s.solve(p.plain, 0, p.y0, p.T);
    points.push({
      solver: "odex",
      tol,
      error: dist(r.y, p.exact),
      nfev: r.nEval,
      ms: Infinity,
      solve: () => s.solve(p.plain, 0, p.y0, p.T),
    });
    for (const method of ["dopri5", "dop853"]) {
      const y0 = Float64Array.from(p.y0);
      const c = pid(tol);
      const solve = () => odeintWithStats(p.into, y0, [0, p.T], { method, stepSizeController: c });
      const q = solve();
      points.push({ solver: method, tol, error: dist(q.ys[1], p.exact), nfev: q.stats.nfev, ms: Infinity, solve });
    }
  }
  const reps = points.map((pt) => {
    const t0 = performance.now();
    pt.solve();
    return Math.max(1, Math.ceil(2 / Math.max(1e-3, performance.now() - t0)));
  });
  for (let round = 0; round < 15; round++) {
    points.forEach((pt, i) => {
      const t0 = performance.now();
      for (let k = 0; k < reps[i]; k++) pt.solve();
      pt.ms = Math.min(pt.ms, (performance.now() - t0) / reps[i]);
    });
  }
  console.log(`\nwork-precision, ${p.name}: error at the end and ms per solve (best of 15 interleaved rounds)`);
  console.log("| rtol = atol | odex error | odex ms | dopri5 error | dopri5 ms | dop853 error | dop853 ms |");
  console.log("|---|---|---|---|---|---|---|");
  for (const tol of tols) {
    const at = (solver: string) => points.find((pt) => pt.solver === solver && pt.tol === tol)!;
    const cells = ["odex", "dopri5", "dop853"].map((sv) => `${at(sv).error.toExponential(2)} | ${fmtMs(at(sv).ms)}`);
    console.log(`| ${tol.toExponential(1)} | ${cells.join(" | ")} |`);
  }
  console.log(`\n${p.short}: qkvflow at an error no larger than odex's`);
  console.log(
    "| odex rtol = atol | odex error | odex ms | method | qkvflow rtol = atol | qkvflow error | qkvflow ms | ratio qkvflow / odex |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  for (const tol of [1e-6, 1e-9]) {
    const o = points.find((pt) => pt.solver === "odex" && Math.abs(pt.tol / tol - 1) < 1e-9)!;
    for (const method of ["dopri5", "dop853"]) {
      // the loosest tolerance (tols descend) whose error is ≤ odex's
      const q = points.find((pt) => pt.solver === method && pt.error <= o.error);
      if (!q) {
        console.log(
          `| ${tol.toExponential(0)} | ${o.error.toExponential(2)} | ${fmtMs(o.ms)} | ${method} | none down to 1e-12 | - | - | - |`,
        );
        continue;
      }
      console.log(
        `| ${tol.toExponential(0)} | ${o.error.toExponential(2)} | ${fmtMs(o.ms)} | ${method} | ${q.tol.toExponential(1)} | ${q.error.toExponential(2)} | ${fmtMs(q.ms)} | ${(q.ms / o.ms).toFixed(2)} |`,
      );
    }
  }
}

/** Runs the ODE benchmarks whose names contain `filter` (case-insensitive; `a|b`: either); prints markdown tables. */
export async function run(filter?: string): Promise<void> {
  const alternatives = filter ? filter.toLowerCase().split("|") : [];
  const want = (name: string) => alternatives.length === 0 || alternatives.some((a) => name.toLowerCase().includes(a));
  const rows: Row[] = [];
  const stiffRows: Row[] = [];
  const suite = new Benchmark.Suite("ode");
  const opts = { minSamples: 5, maxTime: 2 };
  const timed = (name: string, row: Row, fn: () => unknown) => {
    suite.add(name, fn, {
      ...opts,
      onComplete: (e: { target: Benchmark }) => {
        row.msPerSolve = 1000 / (e.target.hz ?? NaN);
      },
    });
  };
  const ratios: { label: string; odex: Row; ours: Row; method: string; bare: Row | null }[] = [];

  for (const p of problems) {
    for (const tol of [1e-6, 1e-9]) {
      const tolS = tol.toExponential(0);
      let odexRow: Row | null = null;
      const oname = `ode: ${p.name} odex tol ${tolS}`;
      if (want(oname)) {
        const s = new odex.Solver(p.y0.length);
        s.absoluteTolerance = s.relativeTolerance = tol;
        s.maxSteps = 1e6;
        const probe = s.solve(p.plain, 0, p.y0, p.T);
        odexRow = {
          name: p.name,
          solver: "odex (GBS)",
          tol: tolS,
          error: dist(probe.y, p.exact).toExponential(2),
          steps: probe.nAccept,
          nfev: probe.nEval,
          msPerSolve: NaN,
        };
        rows.push(odexRow);
        timed(oname, odexRow, () => s.solve(p.plain, 0, p.y0, p.T));
      }
      for (const method of ["dopri5", "tsit5", "dop853"]) {
        const qname = `ode: ${p.name} qkvflow ${method} plain tol ${tolS}`;
        if (!want(qname)) continue;
        const y0 = Float64Array.from(p.y0);
        const solve = () => odeintWithStats(p.into, y0, [0, p.T], { method, stepSizeController: pid(tol) });
        const probe = solve();
        const row: Row = {
          name: p.name,
          solver: `qkvflow ${method}, Float64Array`,
          tol: tolS,
          error: dist(probe.ys[1], p.exact).toExponential(2),
          steps: probe.stats.accepted,
          nfev: probe.stats.nfev,
          msPerSolve: NaN,
        };
        rows.push(row);
        timed(qname, row, solve);
        if (method !== "tsit5" && odexRow) ratios.push({ label: `${p.short} ${tolS}`, odex: odexRow, ours: row, method, bare: null });
      }
      // the floor: a hand-written dopri5 loop taking the same steps (bench/dopri5-loop.ts)
      const bname = `ode: ${p.name} hand-written dopri5 loop plain tol ${tolS}`;
      if (want(bname)) {
        const y0 = Float64Array.from(p.y0);
        const probe = dopri5Loop(p.into, y0, 0, p.T, tol);
        const row: Row = {
          name: p.name,
          solver: "hand-written dopri5 loop, Float64Array",
          tol: tolS,
          error: dist(probe.y, p.exact).toExponential(2),
          steps: probe.stats.accepted,
          nfev: probe.stats.nfev,
          msPerSolve: NaN,
        };
        rows.push(row);
        timed(bname, row, () => dopri5Loop(p.into, y0, 0, p.T, tol));
        const r = ratios.find((x) => x.label === `${p.short} ${tolS}` && x.method === "dopri5");
        if (r) r.bare = row;
      }
      const tname = `ode: ${p.name} qkvflow dopri5 tensor tree tol ${tolS}`;
      if (want(tname)) {
        const probe = p.solveTensor("dopri5", tol);
        const row: Row = {
          name: p.name,
          solver: "qkvflow dopri5, tensor tree",
          tol: tolS,
          error: dist(probe.y, p.exact).toExponential(2),
          steps: probe.stats.accepted,
          nfev: probe.stats.nfev,
          msPerSolve: NaN,
        };
        rows.push(row);
        timed(tname, row, () => p.solveTensor("dopri5", tol));
      }
    }
  }

  // stiff problems: Rodas3 with the user's Jacobian and with finite differences; an explicit method for contrast
  const stiffWanted = stiffProblems.filter((sp) => want(`ode: stiff ${sp.name}`));
  for (const sp of stiffWanted) {
    const c = new PIDController({ rtol: sp.rtol, atol: sp.atol, maxSteps: 1e6 });
    // Rodas3 is of order 3 against Radau's 5: at the same tolerances its error is larger, so it also runs with
    // tolerances 100× tighter, for an error comparable to Radau's
    const tight = new PIDController({
      rtol: sp.rtol / 100,
      atol: Array.isArray(sp.atol) ? sp.atol.map((a) => a / 100) : (sp.atol as number) / 100,
      maxSteps: 1e6,
    });
    for (const [method, label, jac, ctrl, tol] of [
      ["rodas3", "user Jacobian", sp.jac, c, `${sp.rtol}`],
      ["rodas3", "finite-difference Jacobian", undefined, c, `${sp.rtol}`],
      ["rodas3", "user Jacobian, tolerances / 100", sp.jac, tight, `${sp.rtol / 100}`],
      ["rodas4", "user Jacobian", sp.jac, c, `${sp.rtol}`],
      ["rodas4", "finite-difference Jacobian", undefined, c, `${sp.rtol}`],
    ] as const) {
      const solve = () => odeintWithStats(sp.f, sp.y0, sp.ts, { method, stepSizeController: ctrl, jac, denseOutput: false });
      const probe = solve();
      const row: Row = {
        name: sp.name,
        solver: `qkvflow ${method}, ${label}`,
        tol,
        error: sp.error(probe.ys.map((y) => Float64Array.from(y))).toExponential(2),
        steps: probe.stats.accepted,
        nfev: probe.stats.nfev,
        njev: probe.stats.njev,
        msPerSolve: NaN,
      };
      stiffRows.push(row);
      timed(`ode: stiff ${sp.name} ${method} ${label}`, row, solve);
    }
    // an explicit method: dopri5 with a budget of 1e6 step attempts, run once
    const t0 = performance.now();
    let row: Row;
    try {
      const r = odeintWithStats(sp.f, Float64Array.from(sp.y0), sp.ts, { stepSizeController: c });
      row = {
        name: sp.name,
        solver: "qkvflow dopri5 (explicit), one run",
        tol: `${sp.rtol}`,
        error: sp.error(r.ys).toExponential(2),
        steps: r.stats.accepted,
        nfev: r.stats.nfev,
        msPerSolve: performance.now() - t0,
      };
    } catch (e) {
      const m = /exceeded at t = ([\d.e+-]+)/.exec((e as Error).message);
      row = {
        name: sp.name,
        solver: "qkvflow dopri5 (explicit), one run",
        tol: `${sp.rtol}`,
        error: `failed: 1e6 step attempts reached t = ${m ? Number(m[1]).toPrecision(3) : "?"}`,
        steps: "> 1e6",
        nfev: NaN,
        msPerSolve: performance.now() - t0,
      };
    }
    stiffRows.push(row);
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
  const steps = (n: number) => ({ stepSizeController: new ConstantStepSize({ steps: n }) });
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
    {
      name: "odeint euler, 12 steps",
      steps: 12,
      nfev: 12,
      fn: () => odeintWithStats(block, X0, [0, 1], { method: "euler", ...steps(12) }),
    },
    {
      name: "odeint midpoint, 6 steps",
      steps: 6,
      nfev: 12,
      fn: () => odeintWithStats(block, X0, [0, 1], { method: "midpoint", ...steps(6) }),
    },
    { name: "odeint rk4, 3 steps", steps: 3, nfev: 12, fn: () => odeintWithStats(block, X0, [0, 1], { method: "rk4", ...steps(3) }) },
    {
      name: "odeint dopri5, rtol 1e-4 atol 1e-6 (adaptive)",
      steps: 0,
      nfev: 0,
      fn: () => odeintWithStats(block, X0, [0, 1], { method: "dopri5", stepSizeController: new PIDController() }),
    },
  ];
  for (const c of fixed) {
    const name = `ode: [${B}, ${T}, ${E}] float32 ${c.name}`;
    if (!want(name)) continue;
    if (c.steps === 0) {
      const probe = odeintWithStats(block, X0, [0, 1], { method: "dopri5", stepSizeController: new PIDController() });
      c.steps = probe.stats.accepted;
      c.nfev = probe.stats.nfev;
    }
    const row: Row = {
      name: `DiffEqFormer-shaped [${B}, ${T}, ${E}] float32`,
      solver: c.name,
      tol: "-",
      error: "-",
      steps: c.steps,
      nfev: c.nfev,
      msPerSolve: NaN,
    };
    rows.push(row);
    timed(name, row, c.fn);
  }

  const workPrecisionWanted = problems.filter((p) => want(`ode: work-precision ${p.name}`));
  if (suite.length === 0 && workPrecisionWanted.length === 0) {
    console.log(`ode: no benchmark matches '${filter}'`);
    return;
  }
  suite.on("cycle", (e: { target: Benchmark }) => console.log(String(e.target)));
  if (suite.length > 0) await runSuite(suite);
  const scipy = stiffWanted.length > 0 ? scipyPeers() : null;

  console.log("\n| problem | solver | rtol = atol | error at end | accepted steps | f evals | ms / solve |");
  console.log("|---|---|---|---|---|---|---|");
  for (const r of rows)
    console.log(`| ${r.name} | ${r.solver} | ${r.tol} | ${r.error} | ${r.steps} | ${r.nfev} | ${fmtMs(r.msPerSolve)} |`);
  if (ratios.length > 0) {
    console.log(
      "\n| problem, tol | qkvflow method (Float64Array) | odex ms | qkvflow ms | ratio qkvflow / odex | error odex | error qkvflow | f evals odex | f evals qkvflow | hand-written dopri5 loop ms | ratio qkvflow / loop |",
    );
    console.log("|---|---|---|---|---|---|---|---|---|---|---|");
    for (const r of ratios) {
      // the loop's ratio is per step only when it took odeint's steps (it should: same tableau, order and controller)
      const same = r.bare && r.bare.nfev === r.ours.nfev && r.bare.steps === r.ours.steps;
      const loop = r.bare ? `${fmtMs(r.bare.msPerSolve)}${same ? "" : ` (other steps: ${r.bare.steps} / ${r.bare.nfev} f evals)`}` : "-";
      console.log(
        `| ${r.label} | ${r.method} | ${fmtMs(r.odex.msPerSolve)} | ${fmtMs(r.ours.msPerSolve)} | ${(r.ours.msPerSolve / r.odex.msPerSolve).toFixed(2)} | ${r.odex.error} | ${r.ours.error} | ${r.odex.nfev} | ${r.ours.nfev} | ${loop} | ${r.bare ? (r.ours.msPerSolve / r.bare.msPerSolve).toFixed(2) : "-"} |`,
      );
    }
  }
  if (stiffRows.length > 0) {
    for (const sp of stiffWanted) {
      console.log(`\n${sp.name}; error = ${sp.errorName}`);
      console.log("| solver | rtol | error | accepted steps | f evals | Jacobians | ms / solve | ms / scipy Radau ms |");
      console.log("|---|---|---|---|---|---|---|---|");
      const radau = scipy?.find((r) => r.problem === sp.key && r.method === "Radau");
      for (const r of stiffRows.filter((x) => x.name === sp.name))
        console.log(
          `| ${r.solver} | ${r.tol} | ${r.error} | ${r.steps} | ${r.nfev} | ${r.njev ?? "-"} | ${fmtMs(r.msPerSolve)} | ${radau ? (r.msPerSolve / radau.ms).toPrecision(2) : "-"} |`,
        );
      for (const r of scipy?.filter((x) => x.problem === sp.key) ?? [])
        console.log(
          `| scipy ${r.method} (python3, analytic Jacobian) | ${sp.rtol} | ${r.error.toExponential(2)} | - | ${r.nfev} | ${r.njev} | ${fmtMs(r.ms)} | ${radau ? (r.ms / radau.ms).toPrecision(2) : "-"} |`,
        );
    }
  }
  for (const p of workPrecisionWanted) workPrecision(p);
}

runIfMain(import.meta.url, run);
