/**
 * The study's building blocks: the context every experiment receives (output folder, data, log), training runs
 * that are skipped when finished and resumed exactly when not, cached analysis results, and small statistics.
 *
 * Layout of an output folder: runs/<name>/ (trainer run folders, each with summary.json once finished),
 * cache/<name>.json (finished analysis units), <experiment>/result.json, figures/*.svg, results.json, results.md.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { TrainConfig } from "@qkvflow/train";
import {
  evaluatePerplexity,
  loadModelFrom,
  qkvflowModels,
  readMetrics,
  runFinetune,
  runTrain,
  validateTrainConfig,
  writeFileAtomicSync,
  type ModelBackend,
  type RunData,
  type TokenArray,
  type TrainableModel,
} from "@qkvflow/train";
import type { Schedule, StudySpec } from "./spec.js";

/** Thrown when a training run was interrupted (SIGINT / SIGTERM); the study continues with --resume. */
export class StudyInterrupted extends Error {
  constructor(run: string) {
    super(`interrupted during ${run}; its checkpoint is saved, continue with --resume`);
    this.name = "StudyInterrupted";
  }
}

/** What every experiment receives. */
export interface StudyContext {
  out: string;
  spec: StudySpec;
  log: (msg: string) => void;
  /** WikiText-2 (train / validation / test). */
  wiki: () => Promise<RunData>;
  /** The OpenWebText sample (train = first 90 % of its tokens, test = the rest). */
  owt: () => Promise<RunData>;
  dataDirs: { wikitext: string; owt: string };
}

/** Timing and memory of a run: measured, so they differ between runs of identical results. */
export interface RunTiming {
  /** Wall-clock seconds of the training updates (summed over resumed segments). */
  seconds: number;
  /** Median training tokens per second over the updates. */
  tokensPerSec: number;
  /** Largest resident set size seen after an update of the last segment (MiB; the whole process). */
  peakRssMiB: number;
}

/** What a finished training run leaves in summary.json. */
export interface RunSummary {
  name: string;
  kind: string;
  seed: number;
  steps: number;
  parameters: number;
  trainable: number;
  tokensPerStep: number;
  /** Evaluations logged during training (validation for pretraining, the held-out target for fine-tuning). */
  curve: { step: number; elapsed: number; ppl: number }[];
  /** Perplexity on the run's test split (capped at spec.testBatches batches). */
  test: { split: string; ppl: number; tokens: number };
  /** Fine-tuning: perplexity on the evaluation split before the first update. */
  before: number | null;
  timing: RunTiming;
}

/** A test-split perplexity with the study's cap. */
export function testPerplexity(
  ctx: StudyContext,
  model: TrainableModel,
  tokens: TokenArray,
  onBatch?: () => void,
): { ppl: number; tokens: number } {
  const r = evaluatePerplexity(model, tokens, {
    seqLen: ctx.spec.seqLen,
    batchSize: ctx.spec.evalBatchSize,
    maxBatches: ctx.spec.testBatches,
    ...(onBatch ? { onBatch } : {}),
  });
  return { ppl: r.ppl, tokens: r.tokens };
}

/** A validated training configuration for the study. */
export function studyConfig(
  ctx: StudyContext,
  o: {
    name: string;
    seed: number;
    model: Record<string, unknown>;
    schedule: Schedule;
    data: "wiki" | "owt";
    finetune?: Record<string, unknown>;
    decayAll?: boolean;
  },
): TrainConfig {
  const s = ctx.spec;
  const data =
    o.data === "wiki"
      ? { dataset: "wikitext-2", dataDir: ctx.dataDirs.wikitext, seqLen: s.seqLen, evalSplit: "validation", splitFallback: false }
      : { dataset: "text", dataDir: ctx.dataDirs.owt, seqLen: s.seqLen, evalSplit: "test", heldOutFraction: 0.1 };
  return validateTrainConfig({
    name: o.name,
    seed: o.seed,
    model: { ...o.model, blockSize: s.seqLen, embdPdrop: 0, residPdrop: 0 },
    data,
    optimizer: {
      lr: s.lr,
      beta2: s.beta2,
      weightDecay: 0.1,
      warmupRatio: s.warmupRatio,
      minLrRatio: 0.1,
      ...(o.decayAll ? { decayPatterns: [".*"] } : {}),
    },
    train: {
      steps: o.schedule.steps,
      batchSize: o.schedule.batchSize,
      evalEvery: o.schedule.evalEvery,
      evalBatches: o.schedule.evalBatches,
      evalBatchSize: s.evalBatchSize,
      checkpointEvery: o.schedule.checkpointEvery,
      keepCheckpoints: 1,
      progress: "none",
      outDir: path.join(ctx.out, "runs", o.name),
    },
    ...(o.finetune ? { finetune: o.finetune } : {}),
  });
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Trains (or fine-tunes) one run of the study: returns its summary.json when the run is finished, else resumes
 * it from its latest checkpoint (or starts it), scores the test split and writes the summary.
 */
export async function trainRun(
  ctx: StudyContext,
  cfg: TrainConfig,
  o: { finetune?: boolean; backend?: ModelBackend; data: RunData; test: TokenArray; testSplit: string },
): Promise<RunSummary> {
  const runDir = cfg.train.outDir!;
  const file = path.join(runDir, "summary.json");
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, "utf8")) as RunSummary;
  ctx.log(`  run ${cfg.name}: ${cfg.train.steps} steps`);
  let peak = 0;
  const opts = {
    data: o.data,
    resume: true,
    progress: "none" as const,
    log: () => undefined,
    afterStep: () => {
      peak = Math.max(peak, process.memoryUsage().rss);
    },
    ...(o.backend ? { backend: o.backend } : {}),
  };
  const r = o.finetune ? await runFinetune(cfg, opts) : await runTrain(cfg, opts);
  if (r.interrupted) throw new StudyInterrupted(cfg.name);
  const recs = readMetrics(r.metricsFile);
  const train = recs.filter((x) => x.type === "train") as unknown as { step: number; tokensPerSec: number; elapsed: number }[];
  const evals = recs.filter((x) => x.type === "eval") as unknown as { step: number; elapsed: number; ppl: number }[];
  const { model } = loadModelFrom(runDir);
  const test = testPerplexity(ctx, model, o.test);
  const summary: RunSummary = {
    name: cfg.name,
    kind: (r.modelConfig as { kind: string }).kind,
    seed: cfg.seed,
    steps: r.step,
    parameters: r.totalParameters,
    trainable: r.trainableParameters,
    tokensPerStep: cfg.train.batchSize * cfg.data.seqLen,
    curve: evals.map((e) => ({ step: e.step, elapsed: e.elapsed, ppl: e.ppl })),
    test: { split: o.testSplit, ppl: test.ppl, tokens: test.tokens },
    before: evals.find((e) => e.step === 0)?.ppl ?? null,
    timing: {
      seconds: train.at(-1)?.elapsed ?? 0,
      tokensPerSec: median(train.map((t) => t.tokensPerSec)),
      peakRssMiB: peak / 2 ** 20,
    },
  };
  writeFileAtomicSync(file, `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}

/** A JSON-serialisable analysis unit: read from cache/<name>.json when present, else computed and written there. */
export async function cached<T>(ctx: StudyContext, name: string, compute: () => T | Promise<T>): Promise<T> {
  const file = path.join(ctx.out, "cache", `${name}.json`);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  ctx.log(`  ${name}`);
  const v = await compute();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomicSync(file, `${JSON.stringify(v)}\n`);
  return v;
}

/** Mean and (sample) standard deviation. */
export function meanStd(xs: readonly number[]): { mean: number; std: number; n: number } {
  const n = xs.length;
  const mean = n ? xs.reduce((a, b) => a + b, 0) / n : NaN;
  const std = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

/** A number with fixed digits, or "n/a" for NaN / null (results read back from JSON hold null for NaN). */
export function fx(v: number | null | undefined, digits = 2): string {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "n/a";
}

/** "12.34 ± 0.56" (or "12.34" for one value). */
export function fmtMeanStd(m: { mean: number; std: number; n: number }, digits = 2): string {
  return m.n > 1 ? `${fx(m.mean, digits)} ± ${fx(m.std, digits)}` : fx(m.mean, digits);
}

/** Integer with thousands separators. */
export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** The model backend, for experiments that build models themselves. */
export const defaultBackend: ModelBackend = qkvflowModels;
