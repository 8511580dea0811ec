/**
 * jit and vmap against eager execution, each pair measured in the same run:
 * - the Arenstorf field on a float64 [4] state: eager ops against the jitted field (µs per evaluation);
 * - its adaptive dopri5 solve to 1e-9 over one period as tensors: the step (7 field evaluations, the 5th-order
 *   combination and the error norm) eager against jitted, the accept/reject control in JavaScript; plus odeint
 *   with the eager and the jitted field, and odex (plain number arrays) for scale;
 * - a small MLP training step (loss, gradients and the SGD update) eager against jitted;
 * - per-example gradients of a small model: a loop of grad over the examples against vmap(grad) and jit(vmap(grad));
 * - per-token Jacobian blocks of a DiffEqFormer field (analysis' fieldJacobianBlocks, now vmap over the pullback)
 *   against the previous method (the state tiled over a batch, one forward per Jacobian row).
 * Run: npx tsx bench/jit.bench.ts [filter]
 */
import { createRequire } from "node:module";
import * as ag from "@qkvflow/autograd";
import type { Tensor } from "@qkvflow/autograd";
import { dynamicsOf, fieldJacobianBlocks } from "@qkvflow/analysis";
import { createModel } from "@qkvflow/models";
import { DOPRI5, odeintWithStats } from "@qkvflow/ode";
import { runIfMain } from "./common.js";

const require = createRequire(import.meta.url);
const odex = require("odex") as {
  Solver: new (
    n: number,
  ) => {
    absoluteTolerance: number;
    relativeTolerance: number;
    maxSteps: number;
    solve(f: (x: number, y: number[]) => number[], x0: number, y0: number[], xEnd: number): { y: number[] };
  };
};

/** Mean milliseconds per call of `fn` (warm-up, then repeated for at least `ms` milliseconds). */
function time(fn: () => unknown, ms = 1500): number {
  const t0 = performance.now();
  while (performance.now() - t0 < ms / 5) fn();
  let n = 0;
  const t1 = performance.now();
  let t = t1;
  while (t - t1 < ms) {
    fn();
    n++;
    t = performance.now();
  }
  return (t - t1) / n;
}

const rows: string[][] = [];
function row(task: string, eagerMs: number, fastMs: number, how: string, note = ""): void {
  rows.push([task, fmtMs(eagerMs), fmtMs(fastMs), how, `${(eagerMs / fastMs).toFixed(1)}×`, note]);
}
const fmtMs = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`);

// ---------------------------------------------------------------- Arenstorf
const MU = 0.012277471,
  MUP = 1 - MU;
const PERIOD = 17.0652165601579625588917206249;
const Y0 = [0.994, 0, 0, -2.00158510637908252240537862224];

function arenstorf(y: Tensor): Tensor {
  const [x1, x2, v1, v2] = ag.split(y, 4, 0);
  const d1 = ag.pow(ag.add(ag.square(ag.add(x1, MU)), ag.square(x2)), 1.5);
  const d2 = ag.pow(ag.add(ag.square(ag.sub(x1, MUP)), ag.square(x2)), 1.5);
  const a1 = ag.sub(ag.sub(ag.add(x1, ag.mul(v2, 2)), ag.div(ag.mul(ag.add(x1, MU), MUP), d1)), ag.div(ag.mul(ag.sub(x1, MUP), MU), d2));
  const a2 = ag.sub(ag.sub(ag.sub(x2, ag.mul(v1, 2)), ag.div(ag.mul(x2, MUP), d1)), ag.div(ag.mul(x2, MU), d2));
  return ag.concat([v1, v2, a1, a2]);
}
function arenstorfPlain(_t: number, y: number[]): number[] {
  const d1 = ((y[0] + MU) ** 2 + y[1] ** 2) ** 1.5;
  const d2 = ((y[0] - MUP) ** 2 + y[1] ** 2) ** 1.5;
  return [
    y[2],
    y[3],
    y[0] + 2 * y[3] - (MUP * (y[0] + MU)) / d1 - (MU * (y[0] - MUP)) / d2,
    y[1] - 2 * y[2] - (MUP * y[1]) / d1 - (MU * y[1]) / d2,
  ];
}

// Dormand–Prince 5(4): the coefficients odeint's dopri5 runs
const A = DOPRI5.a;
const B5 = DOPRI5.b;
const E = errorWeights(DOPRI5.bErr);
function errorWeights(w: readonly number[] | undefined): readonly number[] {
  if (w === undefined) throw new Error("jit bench: the DOPRI5 tableau has no embedded error weights (bErr); expected dopri5's");
  return w;
}

/** One dopri5 step of size h (a [] tensor): the new state and the scaled RMS error norm. */
function dopriStep(y: Tensor, h: Tensor, tol: number): [Tensor, Tensor] {
  const k: Tensor[] = [arenstorf(y)];
  for (let s = 1; s < 6; s++) {
    let acc = y;
    A[s].forEach((a, j) => {
      if (a !== 0) acc = ag.add(acc, ag.mul(k[j], ag.mul(h, a)));
    });
    k.push(arenstorf(acc));
  }
  let y5 = y;
  B5.forEach((b, j) => {
    if (b !== 0) y5 = ag.add(y5, ag.mul(k[j], ag.mul(h, b)));
  });
  k.push(arenstorf(y5));
  let err: Tensor | null = null;
  E.forEach((e, j) => {
    if (e === 0) return;
    const term = ag.mul(k[j], ag.mul(h, e));
    err = err ? ag.add(err, term) : term;
  });
  const scale = ag.add(ag.mul(ag.maximum(ag.abs(y), ag.abs(y5)), tol), tol);
  const norm = ag.sqrt(ag.mean(ag.square(ag.div(err!, scale))));
  return [y5, norm];
}

/** The adaptive loop (I controller) around a step function; returns the final state and the number of steps. */
function solve(step: (y: Tensor, h: Tensor) => [Tensor, Tensor], T: number): { y: number[]; steps: number } {
  let y = ag.tensor(Y0, { dtype: "float64" });
  let t = 0,
    h = 1e-3,
    steps = 0;
  while (t < T) {
    if (t + h > T) h = T - t;
    const [y5, errT] = step(y, ag.scalar(h, "float64"));
    const err = errT.item();
    if (err <= 1) {
      t += h;
      y = y5;
      steps++;
    }
    h *= Math.min(10, Math.max(0.2, 0.9 * err ** -0.2));
  }
  return { y: Array.from(y.data()), steps };
}

function arenstorfRows(): void {
  const y = ag.tensor(Y0, { dtype: "float64" });
  const jf = ag.jit(arenstorf);
  row(
    "Arenstorf field, one evaluation (float64 [4])",
    time(() => arenstorf(y)),
    time(() => jf(y)),
    "jit(field)",
  );
  const tol = 1e-9;
  const jstep = ag.jit((yy: Tensor, h: Tensor) => dopriStep(yy, h, tol));
  const eager = solve((yy, h) => dopriStep(yy, h, tol), PERIOD);
  const fast = solve(jstep, PERIOD);
  const same = eager.y.every((v, i) => Object.is(v, fast.y[i])) && eager.steps === fast.steps;
  const err = Math.hypot(...fast.y.map((v, i) => v - Y0[i]));
  const tE = time(() => solve((yy, h) => dopriStep(yy, h, tol), PERIOD), 3000);
  const tJ = time(() => solve(jstep, PERIOD), 3000);
  row(
    "Arenstorf dopri5 solve, tol 1e-9, one period",
    tE,
    tJ,
    "jit(dopri5 step)",
    `${fast.steps} steps, error ${err.toExponential(2)}, eager and jit trajectories ${same ? "bit-identical" : "DIFFER"}`,
  );
  const s = new odex.Solver(4);
  s.absoluteTolerance = s.relativeTolerance = tol;
  s.maxSteps = 1e6;
  const tOdex = time(() => s.solve(arenstorfPlain, 0, Y0, PERIOD));
  rows.push([
    "  same problem: odex (plain number arrays)",
    "",
    fmtMs(tOdex),
    "odex",
    "",
    "for scale: jit step vs odex " + (tJ / tOdex).toFixed(1) + "× slower",
  ]);
  const ode = (field: (y: Tensor) => Tensor) => () =>
    odeintWithStats((_t: number, yy: Tensor) => field(yy), ag.tensor(Y0, { dtype: "float64" }), [0, PERIOD], {
      method: "dopri5",
      rtol: tol,
      atol: tol,
      maxSteps: 1e6,
    });
  row(
    "Arenstorf odeint dopri5 (tensor state [4]), tol 1e-9",
    time(ode(arenstorf), 3000),
    time(ode(jf), 3000),
    "odeint(jit(field))",
    "solver ops stay eager",
  );
}

// ---------------------------------------------------------------- MLP step, per-example gradients
function mlpRows(): void {
  const [k1, k2, k3, k4] = ag.random.split(ag.random.key(1), 4);
  const params = {
    w1: ag.random.normal(k1, [16, 32], { std: 0.2 }),
    b1: ag.zeros([32]),
    w2: ag.random.normal(k2, [32, 4], { std: 0.2 }),
    b2: ag.zeros([4]),
  };
  const x = ag.random.normal(k3, [32, 16]);
  const yT = ag.random.normal(k4, [32, 4]);
  type P = typeof params;
  const net = (p: P, xs: Tensor) => ag.add(ag.matmul(ag.tanh(ag.add(ag.matmul(xs, p.w1), p.b1)), p.w2), p.b2);
  const loss = (p: P, xs: Tensor, ys: Tensor) => ag.mean(ag.square(ag.sub(net(p, xs), ys)));
  const vg = ag.valueAndGrad(loss);
  const step = (p: P, xs: Tensor, ys: Tensor): [Tensor, P] => {
    const [l, g] = vg(p, xs, ys) as [Tensor, P];
    return [l, ag.treeZip(p, g, (a, b) => ag.sub(a, ag.mul(b, 0.05)))];
  };
  const jstep = ag.jit(step);
  const a = step(params, x, yT),
    b = jstep(params, x, yT);
  const same = ag.treeLeaves(a).every((t, i) => t.data().every((v, j) => Object.is(v, ag.treeLeaves(b)[i].data()[j])));
  row(
    "MLP training step (16→32→4, batch 32, float32)",
    time(() => step(params, x, yT)),
    time(() => jstep(params, x, yT)),
    "jit(step)",
    same ? "bit-identical" : "DIFFERS",
  );

  const gl = ag.grad(loss);
  const gjl = ag.grad(ag.jit(loss));
  row(
    "MLP gradient (16→32→4, batch 32, float32)",
    time(() => gl(params, x, yT)),
    time(() => gjl(params, x, yT)),
    "grad(jit(loss))",
    "compiled forward + jitted pullback",
  );
  const pl = (p: P, xi: Tensor, yi: Tensor) => loss(p, ag.expandDims(xi, 0), ag.expandDims(yi, 0));
  const g = ag.grad(pl);
  const loop = () => {
    const gs: P[] = [];
    for (let i = 0; i < 32; i++)
      gs.push(g(params, ag.squeeze(ag.slice(x, [i], [i + 1]), 0), ag.squeeze(ag.slice(yT, [i], [i + 1]), 0)) as P);
    return {
      w1: ag.stack(gs.map((q) => q.w1)),
      b1: ag.stack(gs.map((q) => q.b1)),
      w2: ag.stack(gs.map((q) => q.w2)),
      b2: ag.stack(gs.map((q) => q.b2)),
    };
  };
  const pe = ag.vmap(g, [null, 0, 0]);
  const jpe = ag.jit(pe);
  const diff = Math.max(...ag.treeLeaves(loop()).map((t, i) => ag.max(ag.abs(ag.sub(t, ag.treeLeaves(pe(params, x, yT))[i]))).item()));
  const tLoop = time(loop);
  row(
    "per-example gradients (MLP, 32 examples)",
    tLoop,
    time(() => pe(params, x, yT)),
    "vmap(grad)",
    `max |vmap − loop| ${diff.toExponential(1)}`,
  );
  row(
    "per-example gradients (MLP, 32 examples)",
    tLoop,
    time(() => jpe(params, x, yT)),
    "jit(vmap(grad))",
  );
}

// ---------------------------------------------------------------- per-token Jacobians
/** The previous method of fieldJacobianBlocks: the state tiled over c copies, one forward pass per batch of rows. */
function tiledBlocks(field: (x: Tensor) => Tensor, x: Tensor, query: number): Float64Array[] {
  const [, T, E] = x.shape;
  const blocks = Array.from({ length: query + 1 }, () => new Float64Array(E * E));
  const xb = ag.add(ag.broadcastTo(x, [E, T, E]), 0);
  const [out, pull] = ag.vjp(field, xb);
  const ct = out.dtype === "float64" ? new Float64Array(E * T * E) : new Float32Array(E * T * E);
  for (let b = 0; b < E; b++) ct[b * T * E + query * E + b] = 1;
  const g = ag.cast(pull(ag.tensor(ct, { shape: [E, T, E], dtype: out.dtype }))[0], "float64").data();
  for (let b = 0; b < E; b++) for (let k = 0; k <= query; k++) blocks[k].set(g.subarray(b * T * E + k * E, b * T * E + k * E + E), b * E);
  return blocks;
}

function jacobianRows(): void {
  const dm = dynamicsOf(
    createModel(
      {
        kind: "diffeqformer",
        vocabSize: 32,
        blockSize: 16,
        nEmbd: 32,
        nHead: 4,
        nLayer: 3,
        timeEmbedDim: 4,
        sinusoidalDim: 4,
        initStd: 0.2,
      },
      ag.random.key(3),
    ),
  );
  const ws = dm.stepWeights();
  const field = (x: Tensor) => dm.update(x, ws[0]);
  const x = dm.embed([1, 5, 9, 2, 7, 3, 3, 8, 11, 4, 6, 0, 2, 9, 1, 5]);
  const x3 = x.rank === 2 ? ag.expandDims(x, 0) : x;
  const q = x3.shape[1] - 1;
  const a = tiledBlocks(field, x3, q);
  const b = fieldJacobianBlocks(field, x3, q).blocks;
  let d = 0;
  a.forEach((blk, k) => blk.forEach((v, i) => (d = Math.max(d, Math.abs(v - b[k][i])))));
  row(
    "per-token Jacobian blocks, DiffEqFormer field (T 16, E 32)",
    time(() => tiledBlocks(field, x3, q), 3000),
    time(() => fieldJacobianBlocks(field, x3, q), 3000),
    "vmap(pullback)",
    `vs tiled forward; max |diff| ${d.toExponential(1)}`,
  );
}

export async function run(filter?: string): Promise<void> {
  const want = (n: string) => !filter || n.toLowerCase().includes(filter.toLowerCase());
  if (want("arenstorf")) arenstorfRows();
  if (want("mlp")) mlpRows();
  if (want("jacobian")) jacobianRows();
  console.log("| task | eager | transformed | how | speed-up | notes |");
  console.log("|---|---|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

runIfMain(import.meta.url, run);
