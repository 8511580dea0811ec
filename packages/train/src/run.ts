/**
 * Whole runs, as the CLI and the examples start them: `runTrain` (pretraining from a configuration),
 * `runFinetune` (load a pretrained checkpoint, discretise a DiffEqFormer to M layers, optionally add LoRA,
 * train on another data set), `runEval` (perplexity of a checkpoint on a split) and `loadModelFrom`.
 *
 * Run folder (`train.outDir`, default `runs/<name>`; layout in @qkvflow/models' checkpoint-layout): config.json
 * (the resolved configuration), metrics.jsonl and checkpoints/ (see checkpoint.ts). A fresh run refuses a folder that already holds
 * checkpoints unless asked to resume.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { random } from "@qkvflow/autograd";
import { CHECKPOINTS_DIR, CONFIG_FILE, METRICS_FILE, checkpointFallbackNote } from "@qkvflow/models";
import { decodeModelFile, loadCheckpoint, resolveCheckpointDir, writeFileAtomicSync } from "./checkpoint.js";
import type { TrainConfig } from "./config.js";
import { countEvalWindows, unigramPerplexity, type TokenArray } from "./data/index.js";
import { evaluatePerplexity, type EvalResult } from "./evaluate.js";
import type { ProgressMode } from "./metrics.js";
import { defaultDecayPatterns, qkvflowModels, type ModelBackend, type ModelConfigLike } from "./model-backend.js";
import type { TrainableModel } from "./model-types.js";
import { huggingFaceGpt2 } from "./hf-model.js";
import { ensureOutDir } from "./out-dir.js";
import { checkScheduleChange, pickResumeCheckpoint } from "./resume-checks.js";
import { loadRunData, type RunData } from "./run-data.js";
import { Trainer, type StepInfo, type TrainResult } from "./trainer.js";

/** Options shared by the run functions. */
export interface RunOptions {
  /** Model family (default: @qkvflow/models). */
  backend?: ModelBackend;
  /** Log lines (default console.log). */
  log?: (msg: string) => void;
  /** Progress display (default: the configuration's train.progress). */
  progress?: ProgressMode;
  /** Checkpoint on SIGINT (default true). */
  handleSignals?: boolean;
  /** Continue from the run folder's latest checkpoint (a fresh start when there is none). */
  resume?: boolean;
  /** Resume from the newest intact checkpoint when the latest is damaged (default false: refuse, naming it). */
  resumeFallback?: boolean;
  /** Accept a changed learning-rate schedule (steps, lr, warmup, decay) on resume (default false: refuse). */
  allowScheduleChange?: boolean;
  /** Pre-loaded splits (skips loading the data section). */
  data?: RunData;
  /** Called after each update. */
  afterStep?: (info: StepInfo) => void | Promise<void>;
}

/** What a run returns. */
export interface RunResult extends TrainResult {
  runDir: string;
  /** Model configuration as trained. */
  modelConfig: unknown;
  /** Number of trainable scalars. */
  trainableParameters: number;
  /** Number of scalars of the whole model. */
  totalParameters: number;
  /** Splits used. */
  trainSplit: string;
  evalSplit: string;
  dataSource: string;
  dataNote: string | null;
}

/** The run folder of a configuration. */
export function runDirOf(cfg: TrainConfig): string {
  return path.resolve(cfg.train.outDir ?? path.join("runs", cfg.name));
}

function maxToken(t: TokenArray): number {
  let m = 0;
  for (let i = 0; i < t.length; i++) if (t[i]! > m) m = t[i]!;
  return m;
}

function checkModelFitsData(who: string, mc: ModelConfigLike, cfg: TrainConfig, data: RunData): void {
  if (mc.blockSize < cfg.data.seqLen) {
    throw new Error(
      `${who}: data.seqLen ${cfg.data.seqLen} exceeds the model's blockSize ${mc.blockSize}; lower data.seqLen or raise model.blockSize`,
    );
  }
  const top = Math.max(maxToken(data.train.tokens), maxToken(data.eval.tokens));
  if (top >= mc.vocabSize)
    throw new Error(
      `${who}: the data has token id ${top}, outside the model's vocabulary of ${mc.vocabSize}; expected vocabSize >= ${top + 1}`,
    );
}

function count(model: TrainableModel, names?: readonly string[]): number {
  const p = model.parameters();
  let n = 0;
  for (const k of names ?? Object.keys(p)) n += p[k]!.size;
  return n;
}

/**
 * Decides between a fresh start and a resume for a run folder; returns the checkpoint to resume from. Nothing in
 * the folder is changed when this throws (see resume-checks.ts).
 */
function prepareRunDir(who: string, cfg: TrainConfig, runDir: string, opts: RunOptions, log: (m: string) => void): string | null {
  ensureOutDir(runDir, `${who}: train.outDir (--out)`);
  if (opts.resume ?? false) {
    const ck = pickResumeCheckpoint(who, runDir, opts.resumeFallback ?? false, log);
    if (ck === null) log(`resume: ${runDir} has no checkpoint yet; starting from scratch`);
    else {
      checkScheduleChange(who, ck.config, cfg, ck.step, opts.allowScheduleChange ?? false, log);
      return ck.dir;
    }
  } else {
    const ck = fs.existsSync(path.join(runDir, CHECKPOINTS_DIR)) ? resolveCheckpointDir(runDir) : null;
    if (ck !== null)
      throw new Error(
        `${who}: ${runDir} already holds checkpoints (latest ${ck}); pass --resume to continue that run, or choose another train.outDir / --out`,
      );
  }
  fs.rmSync(path.join(runDir, METRICS_FILE), { force: true });
  return null;
}

async function dataFor(cfg: TrainConfig, opts: RunOptions, log: (m: string) => void): Promise<RunData> {
  const data = opts.data ?? (await loadRunData(cfg.data, log));
  if (data.note !== null) log(`data: ${data.note}`);
  return data;
}

async function trainModel(
  who: string,
  cfg: TrainConfig,
  model: TrainableModel,
  data: RunData,
  runDir: string,
  resumeFrom: string | null,
  opts: RunOptions,
  extra: Record<string, unknown>,
  evalAtStart: boolean,
): Promise<RunResult> {
  const log = opts.log ?? ((m: string) => console.log(m));
  const mc = model.config as ModelConfigLike;
  checkModelFitsData(who, mc, cfg, data);
  const decay = cfg.optimizer.decayPatterns ?? defaultDecayPatterns(mc.kind);
  const writeConfig = (): void => writeFileAtomicSync(path.join(runDir, CONFIG_FILE), `${JSON.stringify(cfg, null, 2)}\n`);
  if (resumeFrom === null) writeConfig(); // a resume rewrites it only once the checkpoint has loaded
  const trainable = model.trainableNames();
  log(
    `${who}: ${mc.kind} model, ${count(model).toLocaleString("en-US")} parameters (${count(model, trainable).toLocaleString("en-US")} trainable); ` +
      `train '${data.train.name}' ${data.train.tokens.length.toLocaleString("en-US")} tokens, eval '${data.eval.name}' ${data.eval.tokens.length.toLocaleString("en-US")} tokens; run folder ${runDir}`,
  );
  const trainer = new Trainer({
    model,
    config: cfg,
    trainTokens: data.train.tokens,
    evalSplit: data.eval,
    runDir,
    decayPatterns: decay,
    resumeFrom,
    log,
    ...(opts.progress !== undefined ? { progress: opts.progress } : {}),
    ...(opts.handleSignals !== undefined ? { handleSignals: opts.handleSignals } : {}),
    ...(opts.afterStep !== undefined ? { afterStep: opts.afterStep } : {}),
    evalAtStart,
    ...(resumeFrom !== null ? { onResumed: writeConfig } : {}),
    extraState: { data: { source: data.source, train: data.train.name, eval: data.eval.name }, ...extra },
  });
  const r = await trainer.run();
  return {
    ...r,
    runDir,
    modelConfig: model.config,
    trainableParameters: count(model, trainable),
    totalParameters: count(model),
    trainSplit: data.train.name,
    evalSplit: data.eval.name,
    dataSource: data.source,
    dataNote: data.note,
  };
}

/** Pretrains a model from a configuration (resuming when asked). */
export async function runTrain(cfg: TrainConfig, opts: RunOptions = {}): Promise<RunResult> {
  const backend = opts.backend ?? qkvflowModels;
  const log = opts.log ?? ((m: string) => console.log(m));
  const mc = backend.resolveConfig(cfg.model);
  const runDir = runDirOf(cfg);
  const resumeFrom = prepareRunDir("train", cfg, runDir, opts, log);
  const data = await dataFor(cfg, opts, log);
  const model = backend.create(mc, random.foldIn(random.key(cfg.seed), 0));
  return trainModel("train", cfg, model, data, runDir, resumeFrom, opts, {}, false);
}

/** A model from a checkpoint folder, a run folder or a model .safetensors file. */
export function loadModelFrom(
  p: string,
  backend: ModelBackend = qkvflowModels,
): { model: TrainableModel; source: string; step: number | null; fallback: string | null } {
  const abs = path.resolve(p);
  if (fs.existsSync(abs) && fs.statSync(abs).isFile()) {
    const b = fs.readFileSync(abs);
    const bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    const hf = huggingFaceGpt2(bytes, abs, backend === qkvflowModels);
    if (hf !== null) return { model: hf, source: `${abs} (Hugging Face GPT-2)`, step: null, fallback: null };
    const { model, modelConfig } = decodeModelFile(bytes, abs);
    return { model: backend.fromState(modelConfig, model), source: abs, step: null, fallback: null };
  }
  const ck = loadCheckpoint(abs);
  // a run folder whose latest.json names a missing or incomplete checkpoint: an older one is read, and said so
  const fallback = checkpointFallbackNote(abs);
  return { model: backend.fromState(ck.modelConfig, ck.model), source: ck.dir, step: ck.step, fallback };
}

/** Fine-tunes a pretrained checkpoint (`finetune.checkpoint`), discretised to `finetune.layers`, fully or with LoRA. */
export async function runFinetune(cfg: TrainConfig, opts: RunOptions = {}): Promise<RunResult> {
  const backend = opts.backend ?? qkvflowModels;
  const log = opts.log ?? ((m: string) => console.log(m));
  const runDir = runDirOf(cfg);
  const resumeFrom = prepareRunDir("finetune", cfg, runDir, opts, log);
  const ft = cfg.finetune;
  let model: TrainableModel;
  let extra: Record<string, unknown>;
  if (resumeFrom !== null) {
    const ck = loadCheckpoint(resumeFrom);
    model = backend.fromState(ck.modelConfig, ck.model);
    extra = { finetune: (ck.state.extra as Record<string, unknown> | undefined)?.finetune ?? null };
  } else {
    if (ft.checkpoint === null)
      throw new Error("finetune: finetune.checkpoint is null; expected the pretrained run folder or checkpoint (--from PATH)");
    const src = loadModelFrom(ft.checkpoint, backend);
    const base = src.model;
    const bc = base.config as ModelConfigLike;
    const M = ft.layers ?? bc.nLayer;
    if (bc.kind === "diffeqformer") {
      model = backend.discretize(base, M);
      log(`finetune: discretised the DiffEqFormer (L = ${bc.nLayer}) from ${src.source} to M = ${M} layers`);
    } else {
      if (M !== bc.nLayer)
        throw new Error(
          `finetune: finetune.layers = ${M}, but the pretrained model is a '${bc.kind}' with ${bc.nLayer} layers; only a DiffEqFormer can change depth`,
        );
      model = base;
    }
    if (ft.mode === "lora") {
      backend.applyLoRA(model, {
        rank: ft.loraRank,
        alpha: ft.loraAlpha,
        initStd: ft.loraInitStd,
        targets: ft.loraTargets,
        trainable: ft.loraTrainable,
        key: random.foldIn(random.key(cfg.seed), 2),
      });
    }
    extra = { finetune: { from: src.source, fromStep: src.step, pretrainedLayers: bc.nLayer, layers: M, mode: ft.mode } };
  }
  const data = await dataFor(cfg, opts, log);
  return trainModel("finetune", cfg, model, data, runDir, resumeFrom, opts, extra, true);
}

/** What `runEval` is about to do (for progress displays). */
export interface EvalPlan {
  split: string;
  /** Tokens in the split. */
  splitTokens: number;
  /** Batches that will be evaluated (train.evalBatches caps them). */
  batches: number;
  /** Batches of the whole split. */
  allBatches: number;
  batchSize: number;
  seqLen: number;
}

/** Perplexity of a saved model on a split of the configuration's data set, next to the unigram baseline. */
export async function runEval(
  cfg: TrainConfig,
  from: string,
  opts: RunOptions & { split?: string; onBatch?: (done: number, total: number) => void; onStart?: (plan: EvalPlan) => void } = {},
): Promise<{
  eval: EvalResult;
  split: string;
  splitTokens: number;
  unigram: number | null;
  source: string;
  note: string | null;
  fallback: string | null;
}> {
  const log = opts.log ?? ((m: string) => console.log(m));
  const { model, source, fallback } = loadModelFrom(from, opts.backend);
  const data = await dataFor(cfg, opts, log);
  let split = data.eval;
  if (opts.split !== undefined) {
    const t = data.splits[opts.split];
    if (t === undefined) throw new Error(`eval: split '${opts.split}' is not available; available: ${Object.keys(data.splits).join(", ")}`);
    split = { name: opts.split, tokens: t };
  }
  checkModelFitsData("eval", model.config as ModelConfigLike, cfg, { ...data, eval: split });
  const batchSize = cfg.train.evalBatchSize ?? cfg.train.batchSize / cfg.train.gradAccum;
  const all = Math.ceil(countEvalWindows(split.tokens.length, { seqLen: cfg.data.seqLen }) / batchSize);
  const batches = cfg.train.evalBatches === null ? all : Math.min(all, cfg.train.evalBatches);
  opts.onStart?.({ split: split.name, splitTokens: split.tokens.length, batches, allBatches: all, batchSize, seqLen: cfg.data.seqLen });
  const r = evaluatePerplexity(model, split.tokens, {
    seqLen: cfg.data.seqLen,
    batchSize,
    maxBatches: cfg.train.evalBatches,
    ...(opts.onBatch !== undefined ? { onBatch: opts.onBatch } : {}),
  });
  const uni = data.train.name !== split.name ? unigramPerplexity(data.train.tokens, split.tokens).perplexity : null;
  return { eval: r, split: split.name, splitTokens: split.tokens.length, unigram: uni, source, note: data.note, fallback };
}
