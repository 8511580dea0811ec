/**
 * Experiment 1 (paper §2): GPT-2 against DiffEqFormer at equal width and depth, plus a GPT-2 matched in
 * parameter count (same width, more layers), same token budget and data order (the sampler is seeded by the
 * run's seed, which the three models share), over `spec.seeds` seeds. Cost: parameters, FLOPs per token
 * (analytic), measured tokens/s and peak memory.
 */
import { countParameters, type ModelConfigInput } from "@qkvflow/models";
import { linePlot, type LineSeries } from "@qkvflow/analysis";
import { resolveModelSection, unigramPerplexity, type JsonValue } from "@qkvflow/train";
import { fmtInt, fmtMeanStd, fx, meanStd, studyConfig, trainRun, type RunSummary, type StudyContext } from "./runner.js";
import type { StudySpec } from "./spec.js";

/** The three model families of the comparison. */
export const MAIN_MODELS = ["gpt", "diffeqformer", "gpt-matched"] as const;
export type MainModel = (typeof MAIN_MODELS)[number];

/** Model sections of the comparison's models. */
export function mainModelSections(spec: StudySpec): Record<MainModel, Record<string, unknown>> {
  const w = spec.width;
  const def = {
    preset: "diffeqformer-tiny",
    nEmbd: w.nEmbd,
    nHead: w.nHead,
    nLayer: spec.layers,
    timeEmbedDim: w.timeEmbedDim,
    sinusoidalDim: w.sinusoidalDim,
    solver: { method: "euler-right-time" },
  };
  const gpt = (nLayer: number) => ({ preset: "gpt2-tiny", nEmbd: w.nEmbd, nHead: w.nHead, nLayer });
  const target = countParameters(modelConfigOf(def, spec));
  let best = spec.layers;
  for (let l = 1; l <= 96; l++) {
    if (
      Math.abs(countParameters(modelConfigOf(gpt(l), spec)) - target) < Math.abs(countParameters(modelConfigOf(gpt(best), spec)) - target)
    )
      best = l;
  }
  return { gpt: gpt(spec.layers), diffeqformer: def, "gpt-matched": gpt(best) };
}

/** The validated model configuration of a study model section. */
export function modelConfigOf(section: Record<string, unknown>, spec: StudySpec): ModelConfigInput {
  return resolveModelSection({ ...section, blockSize: spec.seqLen } as Record<string, JsonValue>) as ModelConfigInput;
}

/**
 * Training FLOPs per token (forward + backward ≈ 3 × forward, matmuls only): 2 FLOPs per weight per token in
 * the blocks and the tied head, 2·T·E per layer for the causal attention scores and values; DiffEqFormer adds
 * the generation of its weights, W(t) = f_W(h(t)) at each of its L times, ≈ 2 FLOPs per generator weight per
 * time per forward pass, shared by the batch's tokens.
 */
export function flopsPerToken(section: Record<string, unknown>, spec: StudySpec, batchTokens: number): number {
  const c = modelConfigOf(section, spec) as { kind: string; nEmbd: number; nLayer: number; vocabSize: number; blockSize: number };
  const E = c.nEmbd,
    L = c.nLayer,
    T = spec.seqLen;
  const body = L * (24 * E * E + 2 * T * E) + 2 * E * c.vocabSize;
  let fwd = body;
  if (c.kind === "diffeqformer") {
    const generators = countParameters(c as ModelConfigInput) - c.vocabSize * E - c.blockSize * E - 2 * E;
    fwd += (2 * generators * L) / batchTokens;
  }
  return 3 * fwd;
}

/** One model's row of the comparison. */
export interface MainRow {
  model: MainModel;
  layers: number;
  parameters: number;
  flopsPerToken: number;
  testPpl: { mean: number; std: number; n: number };
  perSeed: number[];
  tokensPerSec: { mean: number; std: number; n: number };
  seconds: { mean: number; std: number; n: number };
  peakRssMiB: number;
}

/** Result of experiment 1. */
export interface MainResult {
  rows: MainRow[];
  runs: Record<MainModel, RunSummary[]>;
  unigramTestPpl: number;
  tokensPerRun: number;
}

/** Name of a main-comparison run. */
export function mainRunName(model: MainModel, seed: number): string {
  return `main-${model}-s${seed}`;
}

/** Trains (or reuses) one main-comparison run. */
export async function mainRun(ctx: StudyContext, model: MainModel, seed: number): Promise<RunSummary> {
  const wiki = await ctx.wiki();
  const section = mainModelSections(ctx.spec)[model];
  const cfg = studyConfig(ctx, { name: mainRunName(model, seed), seed, model: section, schedule: ctx.spec.main, data: "wiki" });
  return trainRun(ctx, cfg, { data: wiki, test: wiki.splits.test!, testSplit: "test" });
}

/** Runs experiment 1. */
export async function runMain(ctx: StudyContext): Promise<{ result: MainResult; figures: Record<string, string> }> {
  const spec = ctx.spec;
  const sections = mainModelSections(spec);
  const runs = { gpt: [], diffeqformer: [], "gpt-matched": [] } as Record<MainModel, RunSummary[]>;
  for (let seed = 0; seed < spec.seeds; seed++) for (const m of MAIN_MODELS) runs[m].push(await mainRun(ctx, m, seed));
  const wiki = await ctx.wiki();
  const first = runs.gpt[0]!;
  const scored = wiki.splits.test!.subarray(1, 1 + first.test.tokens);
  const rows = MAIN_MODELS.map((m): MainRow => {
    const rs = runs[m];
    return {
      model: m,
      layers: (sections[m] as { nLayer: number }).nLayer,
      parameters: rs[0]!.parameters,
      flopsPerToken: flopsPerToken(sections[m], spec, spec.main.batchSize * spec.seqLen),
      testPpl: meanStd(rs.map((r) => r.test.ppl)),
      perSeed: rs.map((r) => r.test.ppl),
      tokensPerSec: meanStd(rs.map((r) => r.timing.tokensPerSec)),
      seconds: meanStd(rs.map((r) => r.timing.seconds)),
      peakRssMiB: Math.max(...rs.map((r) => r.timing.peakRssMiB)),
    };
  });
  const result: MainResult = {
    rows,
    runs,
    unigramTestPpl: unigramPerplexity(wiki.train.tokens, scored).perplexity,
    tokensPerRun: spec.main.steps * spec.main.batchSize * spec.seqLen,
  };
  return { result, figures: mainFigures(result) };
}

const LABEL: Record<MainModel, string> = { gpt: "GPT-2", diffeqformer: "DiffEqFormer", "gpt-matched": "GPT-2 param-matched" };

/** Display name of a main-comparison model with its depth. */
export function mainLabel(row: { model: MainModel; layers: number }): string {
  return `${LABEL[row.model]} (L ${row.layers})`;
}

function meanCurve(rs: RunSummary[], x: "step" | "elapsed"): [number, number][] {
  const n = Math.min(...rs.map((r) => r.curve.length));
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    out.push([meanStd(rs.map((r) => r.curve[i]![x])).mean, meanStd(rs.map((r) => r.curve[i]!.ppl)).mean]);
  }
  return out;
}

function mainFigures(r: MainResult): Record<string, string> {
  const series = (x: "step" | "elapsed"): LineSeries[] =>
    r.rows.map((row) => ({ label: `${mainLabel(row)}, mean of ${row.testPpl.n}`, points: meanCurve(r.runs[row.model], x) }));
  return {
    "main-valid-steps": linePlot(series("step"), {
      title: "Validation perplexity over training (WikiText-2)",
      xLabel: "update step",
      yLabel: "validation perplexity",
    }),
    "main-valid-seconds": linePlot(series("elapsed"), {
      title: "Validation perplexity over wall-clock time",
      xLabel: "training time (s, 2 shared cores)",
      yLabel: "validation perplexity",
    }),
  };
}

/** Markdown of experiment 1. */
export function mainMarkdown(r: MainResult): string {
  const lines = [
    `Every run: ${fmtInt(r.tokensPerRun)} training tokens; test perplexity on the WikiText-2 test split (unigram baseline ${fx(r.unigramTestPpl, 1)}).`,
    "",
    "| model | layers | parameters | training FLOPs / token | test perplexity (mean ± std) | per seed | tokens/s | training s | peak RSS MiB |",
    "|---|---|---|---|---|---|---|---|---|",
    ...r.rows.map(
      (x) =>
        `| ${LABEL[x.model]} | ${x.layers} | ${fmtInt(x.parameters)} | ${(x.flopsPerToken / 1e6).toFixed(2)} M | ${fmtMeanStd(x.testPpl)} | ${x.perSeed.map((p) => fx(p)).join(", ")} | ${fx(x.tokensPerSec.mean, 0)} | ${fx(x.seconds.mean, 0)} | ${fx(x.peakRssMiB, 0)} |`,
    ),
    "",
    "![Validation perplexity per step](figures/main-valid-steps.svg)",
    "",
    "![Validation perplexity per second](figures/main-valid-seconds.svg)",
  ];
  return lines.join("\n");
}
