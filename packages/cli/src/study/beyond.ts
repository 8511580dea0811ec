/**
 * Experiment 5 (paper §6, items 4–5): (a) the trained DiffEqFormer integrated at inference by other solvers
 * (the paper's Euler grid at several step counts, midpoint, RK4, adaptive dopri5): perplexity against vector-field
 * evaluations; (b) training on jittered time grids (the paper's unused `generate_t`: a random first step
 * dt0 ~ U(0, dt) per batch, nodes dt0 + k·dt, the last at 1) and its effect on the zero-shot perplexity at M ≠ L,
 * against the fixed grid.
 */
import * as path from "node:path";
import { random, type Key, type Tensor } from "@qkvflow/autograd";
import { linePlot, type LineSeries } from "@qkvflow/analysis";
import { DiffEqFormer, blockFns, blockForward, validateConfig, type DiffEqFormerConfig, type ForwardOptions } from "@qkvflow/models";
import { loadModelFrom, qkvflowModels, type ModelBackend, type TrainableModel } from "@qkvflow/train";
import { mainModelSections, mainRun } from "./main-comparison.js";
import { cached, fmtMeanStd, fx, meanStd, studyConfig, testPerplexity, trainRun, type RunSummary, type StudyContext } from "./runner.js";

/**
 * The jittered grid of one training batch: nodes t_k = dt0 + k/n (k < n − 1) and t_{n−1} = 1, steps dt_k = t_k − t_{k−1}
 * (t_{−1} = 0), for dt0 = u/n with u ∈ [0, 1). u = 1 gives the paper's fixed grid t_k = (k+1)/n.
 */
export function jitteredGrid(n: number, u: number): { t: number[]; dt: number[] } {
  const t = Array.from({ length: n }, (_, k) => (k === n - 1 ? 1 : (u + k) / n));
  return { t, dt: t.map((tk, k) => tk - (k ? t[k - 1]! : 0)) };
}

/** A DiffEqFormer trained on a jittered Euler grid (training passes only; evaluation uses the fixed grid). */
export class JitteredGridDiffEqFormer extends DiffEqFormer {
  override hidden(x0: Tensor, opts?: ForwardOptions): Tensor {
    const key: Key | undefined = opts?.key;
    if (!opts?.training || key === undefined) return super.hidden(x0, opts);
    const c = this.config;
    const u = random.uniform(random.foldIn(key, 0x6a17), [1], { dtype: "float64" }).data()[0]!;
    const grid = jitteredGrid(c.nLayer, u);
    const ws = this.block.weightsAt(grid.t);
    const o = { nHead: c.nHead, arch: "parallel" as const, rate: c.residPdrop, training: true };
    let x = x0;
    ws.forEach((w, i) => {
      x = blockForward(x, blockFns(w, c.layerNormEps), { ...o, key: random.foldIn(key, i), dt: grid.dt[i]! });
    });
    this.lastEvaluations = c.nLayer;
    return x;
  }
}

/** The model backend that builds jittered-grid DiffEqFormers. */
export const jitteredBackend: ModelBackend = {
  ...qkvflowModels,
  create: (config, key) => new JitteredGridDiffEqFormer(validateConfig(config) as DiffEqFormerConfig, key),
};

/** One solver setting's result. */
export interface SolverPoint {
  method: string;
  setting: string;
  evaluations: number;
  ppl: number;
}

/** Result of experiment 5. */
export interface BeyondResult {
  solvers: SolverPoint[];
  /** Per M: zero-shot test perplexity of the fixed-grid and the jittered-grid models (mean ± std over seeds). */
  grids: { layers: number; fixed: { mean: number; std: number; n: number }; jittered: { mean: number; std: number; n: number } }[];
  trainLayers: number;
  jitteredRuns: RunSummary[];
}

function withSolver(model: TrainableModel, solver: Record<string, unknown>): TrainableModel {
  const cfg = { ...(model.config as Record<string, unknown>), solver };
  return qkvflowModels.fromState(cfg, model.stateDict());
}

function solverScore(ctx: StudyContext, model: TrainableModel, tokens: ArrayLike<number>): { ppl: number; evaluations: number } {
  let evals = 0,
    batches = 0;
  const m = model as unknown as DiffEqFormer;
  const r = testPerplexity(ctx, model, tokens as Uint16Array, () => {
    evals += m.lastEvaluations;
    batches++;
  });
  return { ppl: r.ppl, evaluations: evals / Math.max(1, batches) };
}

/** Runs experiment 5. */
export async function runBeyond(ctx: StudyContext): Promise<{ result: BeyondResult; figures: Record<string, string> }> {
  const spec = ctx.spec;
  const b = spec.beyond;
  const wiki = await ctx.wiki();
  const test = wiki.splits.test!;
  const base = await mainRun(ctx, "diffeqformer", 0);
  const settings: { method: string; setting: string; solver: Record<string, unknown> }[] = [
    ...b.euler.map((n) => ({
      method: "Euler (paper grid)",
      setting: `${n} step${n > 1 ? "s" : ""}`,
      solver: { method: "euler-right-time", steps: n },
    })),
    ...b.midpoint.map((n) => ({ method: "midpoint", setting: `${n} step${n > 1 ? "s" : ""}`, solver: { method: "midpoint", steps: n } })),
    ...b.rk4.map((n) => ({ method: "RK4", setting: `${n} step${n > 1 ? "s" : ""}`, solver: { method: "rk4", steps: n } })),
    ...b.dopri5.map((tol) => ({
      method: "dopri5 (adaptive)",
      setting: `rtol = atol = ${tol}`,
      solver: { method: "dopri5", rtol: tol, atol: tol },
    })),
  ];
  const solvers = await cached(ctx, `solvers-${base.name}`, () => {
    const { model } = loadModelFrom(path.join(ctx.out, "runs", base.name));
    return settings.map((s): SolverPoint => {
      const r = solverScore(ctx, withSolver(model, s.solver), test);
      return { method: s.method, setting: s.setting, evaluations: r.evaluations, ppl: r.ppl };
    });
  });

  const jitteredRuns: RunSummary[] = [];
  const perSeed: { fixed: number[]; jittered: number[] }[] = [];
  for (let seed = 0; seed < b.seeds; seed++) {
    const fixed = await mainRun(ctx, "diffeqformer", seed);
    const name = `beyond-jittered-diffeqformer-s${seed}`;
    const cfg = studyConfig(ctx, { name, seed, model: mainModelSections(spec).diffeqformer, schedule: spec.main, data: "wiki" });
    const jit = await trainRun(ctx, cfg, { backend: jitteredBackend, data: wiki, test, testSplit: "test" });
    jitteredRuns.push(jit);
    perSeed.push(
      await cached(ctx, `zeroshot-grid-s${seed}`, () => {
        const score = (run: string) => {
          const { model } = loadModelFrom(path.join(ctx.out, "runs", run));
          return b.zeroShot.map((M) => testPerplexity(ctx, withSolver(model, { method: "euler-right-time", steps: M }), test).ppl);
        };
        return { fixed: score(fixed.name), jittered: score(jit.name) };
      }),
    );
  }
  const grids = b.zeroShot.map((M, i) => ({
    layers: M,
    fixed: meanStd(perSeed.map((p) => p.fixed[i]!)),
    jittered: meanStd(perSeed.map((p) => p.jittered[i]!)),
  }));
  const result: BeyondResult = { solvers, grids, trainLayers: spec.layers, jitteredRuns };
  return { result, figures: beyondFigures(result) };
}

function beyondFigures(r: BeyondResult): Record<string, string> {
  const methods = [...new Set(r.solvers.map((s) => s.method))];
  const series: LineSeries[] = methods.map((m) => ({
    label: m,
    points: r.solvers.filter((s) => s.method === m).map((s) => [s.evaluations, s.ppl] as [number, number]),
  }));
  return {
    "beyond-solvers": linePlot(series, {
      title: "Inference solver: test perplexity against vector-field evaluations",
      xLabel: "vector-field evaluations per forward pass",
      yLabel: "WikiText-2 test perplexity",
    }),
    "beyond-grids": linePlot(
      [
        { label: `fixed grid (L=${r.trainLayers}), mean of ${r.grids[0]?.fixed.n}`, points: r.grids.map((g) => [g.layers, g.fixed.mean]) },
        {
          label: `jittered grid (L=${r.trainLayers}), mean of ${r.grids[0]?.jittered.n}`,
          points: r.grids.map((g) => [g.layers, g.jittered.mean]),
        },
      ],
      {
        title: "Zero-shot Euler steps M ≠ L: fixed against jittered training grids",
        xLabel: "Euler steps M at inference",
        yLabel: "WikiText-2 test perplexity",
      },
    ),
  };
}

/** Markdown of experiment 5. */
export function beyondMarkdown(r: BeyondResult): string {
  const ms = (m: { mean: number; std: number; n: number }) => fmtMeanStd(m);
  return [
    "(a) The main comparison's DiffEqFormer (seed 0) integrated by other solvers at inference (no retraining):",
    "",
    "| solver | setting | vector-field evaluations | test perplexity |",
    "|---|---|---|---|",
    ...r.solvers.map((s) => `| ${s.method} | ${s.setting} | ${fx(s.evaluations, 1)} | ${fx(s.ppl)} |`),
    "",
    "![Solvers](figures/beyond-solvers.svg)",
    "",
    `(b) DiffEqFormers trained at L = ${r.trainLayers} on the fixed grid (the main comparison's runs) and on jittered grids (same seeds, data and schedule), run at M Euler steps without fine-tuning:`,
    "",
    "| M | fixed grid | jittered grid |",
    "|---|---|---|",
    ...r.grids.map((g) => `| ${g.layers}${g.layers === r.trainLayers ? " (= L)" : ""} | ${ms(g.fixed)} | ${ms(g.jittered)} |`),
    "",
    "![Grids](figures/beyond-grids.svg)",
  ].join("\n");
}
