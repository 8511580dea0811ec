/**
 * The training loop. It knows a model only through `TrainableModel` (parameters, setParameters,
 * trainableNames, loss, state dict). A run is a sequence of small named steps, in the spirit of nanoGPT's
 * micro-step loop:
 *
 *   resumeOrInit                      fresh optimiser state, or model / optimiser / sampler / RNG / log from a checkpoint
 *   per update:  update               lr from the schedule →
 *                  gradients            microStep × gradAccum (value-and-gradient of one micro-batch, added to a
 *                                       GradientAccumulator on the model's backend) → mean loss and gradients
 *                  checkFinite          NaN / ∞ loss or gradient norm stops before anything is applied
 *                  clipAndStep          AdamW (clip → Adam → decay) on the backend; the new parameters go into the model
 *                logMetrics           metrics.jsonl + progress
 *                maybeEvaluate        every train.evalEvery updates and at the end
 *                maybeCheckpoint      every train.checkpointEvery updates, at the end and on an interrupt
 *   InterruptGuard (interrupt.ts)     SIGINT
 *
 * Gradients, their accumulation and the optimiser state stay on the model's backend; per update only the mean
 * loss and the global gradient norm come back to the host, as two numbers.
 *
 * Determinism and exact resume: the dropout key of micro-batch j of update s is
 * foldIn(foldIn(dropoutKey, s), j); the data order is the sampler's (seeded permutation per epoch); the
 * optimiser update is deterministic (float64 arithmetic on the CPU backend, see optim/adamw.ts). A checkpoint
 * stores the parameters, the AdamW moments and count, the dropout key, the sampler position and the length of
 * metrics.jsonl, so a resumed run truncates the log to that length and continues with bit-identical losses.
 *
 * Stops: a non-finite loss or gradient norm throws `NonFiniteLossError` before the update is applied and
 * without writing a checkpoint (the last good one stays the latest); SIGINT (Ctrl-C) finishes the current
 * update, writes a checkpoint and returns with `interrupted: true` (a second Ctrl-C exits at once).
 */
import * as path from "node:path";
import * as fs from "node:fs";
import { Key, random, tensor, tidy, valueAndGrad, type Tensor } from "@qkvflow/autograd";
import { upgradeModelConfig } from "@qkvflow/models";
import { METRICS_FILE, STATE_FILE, listCheckpoints, loadCheckpoint, saveCheckpoint, type LoadedCheckpoint } from "./checkpoint.js";
import type { TrainConfig } from "./config.js";
import { BatchSampler, type SamplerState, type TokenArray } from "./data/index.js";
import { evaluatePerplexity, type EvalResult } from "./evaluate.js";
import { InterruptGuard } from "./interrupt.js";
import { MetricsLog, Progress, type ProgressMode } from "./metrics.js";
import type { TrainableModel } from "./model-types.js";
import { GradientAccumulator } from "./optim/accumulate.js";
import { AdamW, globalNorm } from "./optim/adamw.js";
import { makeSchedule, type Schedule } from "./optim/schedule.js";

/** Thrown when the loss or the gradient norm is NaN or infinite. */
export class NonFiniteLossError extends Error {
  constructor(
    message: string,
    /** Update index (1-based) at which it happened. */
    readonly step: number,
    /** Last complete checkpoint folder, if any. */
    readonly checkpoint: string | null,
  ) {
    super(message);
    this.name = "NonFiniteLossError";
  }
}

/** What `afterStep` sees. */
export interface StepInfo {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  eval: EvalResult | null;
  checkpoint: string | null;
}

/** Options of `Trainer`. */
export interface TrainerOptions {
  model: TrainableModel;
  config: TrainConfig;
  /** Training tokens. */
  trainTokens: TokenArray;
  /** Evaluation split (none: no evaluation). */
  evalSplit?: { name: string; tokens: TokenArray } | null;
  /** Run folder (metrics.jsonl, checkpoints/). */
  runDir: string;
  /** Weight-decay patterns (resolved from the configuration and the model kind). */
  decayPatterns: readonly string[];
  /** Checkpoint (folder) to resume from; the model and optimiser are restored from it. */
  resumeFrom?: string | null;
  /** Plain log lines (default console.log). */
  log?: (msg: string) => void;
  /** Progress display (default: the configuration's train.progress). */
  progress?: ProgressMode;
  /** Install a SIGINT handler that checkpoints before exiting (default true). */
  handleSignals?: boolean;
  /** Called after every update (after evaluation and checkpointing). */
  afterStep?: (info: StepInfo) => void | Promise<void>;
  /** Evaluate once before the first update of a fresh run (recorded as step 0). */
  evalAtStart?: boolean;
  /** Extra JSON stored in each checkpoint's state.json under `extra`. */
  extraState?: Record<string, unknown>;
}

/** Outcome of `Trainer.run`. */
export interface TrainResult {
  /** Updates applied in total (including before a resume). */
  step: number;
  /** Stopped by SIGINT (a checkpoint was written). */
  interrupted: boolean;
  /** Loss of the last update of this invocation (NaN when none ran). */
  lastLoss: number;
  /** Last evaluation (null when none ran). */
  lastEval: EvalResult | null;
  /** Last checkpoint folder written or resumed from. */
  checkpoint: string | null;
  metricsFile: string;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Keys (dotted) whose values differ between two JSON objects. */
function diffKeys(a: unknown, b: unknown, prefix = ""): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
  if (!isObj(a) || !isObj(b)) return sameJson(a, b) ? [] : [prefix || "(root)"];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of keys) out.push(...diffKeys(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  return out;
}

/** Configuration keys whose change between a checkpoint and its resume is not worth a word (paths, display). */
const QUIET_KEYS = ["train.progress", "train.outDir", "data.dataDir", "data.cacheDir"];

/** The trainer's part of state.json. */
interface SavedTrainerState {
  rng?: { dropout?: number[] };
  sampler?: SamplerState;
  metricsBytes?: number;
  elapsed?: number;
  tokens?: number;
  lastEval?: EvalResult | null;
}

type Params = Record<string, Tensor>;

/** What one update did. */
interface UpdateResult {
  loss: number;
  lr: number;
  gradNorm: number;
  clipScale: number;
  /** Wall-clock seconds of the update. */
  seconds: number;
}

/** Runs training for a configuration (see the module comment). */
export class Trainer {
  private readonly o: TrainerOptions;
  private readonly log: (msg: string) => void;

  /** Prepares a run; nothing is read or written until `run`. */
  constructor(opts: TrainerOptions) {
    this.o = opts;
    this.log = opts.log ?? ((m) => console.log(m));
  }

  /** Trains until `train.steps` updates are done (or SIGINT); resumes first when `resumeFrom` is set. */
  async run(): Promise<TrainResult> {
    return new TrainingRun(this.o, this.log).run();
  }
}

/** One invocation of `Trainer.run`: the fixed pieces (sampler, optimiser, schedule, log) and the loop state. */
class TrainingRun {
  private readonly model: TrainableModel;
  private readonly cfg: TrainConfig;
  private readonly names: string[];
  private readonly micro: number;
  private readonly sampler: BatchSampler;
  private readonly opt: AdamW;
  private readonly schedule: Schedule;
  private readonly accumulator = new GradientAccumulator();
  private readonly metrics: MetricsLog;
  private readonly progress: Progress;
  private readonly guard: InterruptGuard;
  // loop state (saved in checkpoints)
  private step = 0;
  private dropoutKey: Key;
  private elapsed = 0;
  private tokensSeen = 0;
  private lastEval: EvalResult | null = null;
  private lastCheckpoint: string | null = null;
  private lastLoss = Number.NaN;

  constructor(
    private readonly o: TrainerOptions,
    private readonly log: (msg: string) => void,
  ) {
    const { model, config: cfg, runDir } = o;
    this.model = model;
    this.cfg = cfg;
    this.names = checkTrainable(model);
    this.micro = cfg.train.batchSize / cfg.train.gradAccum;
    fs.mkdirSync(runDir, { recursive: true });
    this.sampler = samplerFor(cfg, o.trainTokens, this.micro);
    this.opt = optimizerFor(cfg, o.decayPatterns);
    this.schedule = scheduleFor(cfg);
    this.dropoutKey = random.foldIn(random.key(cfg.seed), 1);
    this.metrics = new MetricsLog(path.join(runDir, METRICS_FILE));
    this.progress = new Progress(o.progress ?? cfg.train.progress, cfg.train.steps, log);
    this.guard = new InterruptGuard(log);
  }

  /** The whole run: resume or start, then updates until done or interrupted. */
  async run(): Promise<TrainResult> {
    try {
      this.resumeOrInit();
    } catch (err) {
      this.metrics.close();
      throw err;
    }
    const total = this.cfg.train.steps;
    if (this.o.handleSignals ?? true) this.guard.install();
    try {
      if (this.step >= total) {
        this.log(`nothing to do: ${this.step} of ${total} updates are already done`);
        return this.result();
      }
      if (this.o.evalAtStart && this.step === 0 && this.o.evalSplit) this.evaluate();
      this.progress.start(this.step);
      while (this.step < total) {
        const u = this.update();
        this.logMetrics(u);
        const ev = this.maybeEvaluate();
        let ck = this.maybeCheckpoint();
        const info: StepInfo = { step: this.step, loss: u.loss, lr: u.lr, gradNorm: u.gradNorm, eval: ev, checkpoint: ck };
        if (this.o.afterStep) await this.o.afterStep(info);
        if (this.guard.interrupted) {
          ck ??= this.save();
          this.progress.stop();
          this.log(`interrupted at step ${this.step}/${total}; checkpoint ${ck}; continue with --resume`);
          break;
        }
        await yieldToEventLoop();
      }
      this.progress.stop();
      return this.result();
    } finally {
      this.progress.stop();
      this.metrics.close();
      this.guard.remove();
    }
  }

  private result(): TrainResult {
    return {
      step: this.step,
      interrupted: this.guard.interrupted,
      lastLoss: this.lastLoss,
      lastEval: this.lastEval,
      checkpoint: this.lastCheckpoint,
      metricsFile: this.metrics.file,
    };
  }

  /** The trainable parameters, by name (references into the model's parameters `all`). */
  private trainableParams(all: Params = this.model.parameters()): Params {
    return Object.fromEntries(this.names.map((n) => [n, all[n]!]));
  }

  /** Fresh optimiser state and log, or everything restored from `resumeFrom`. */
  private resumeOrInit(): void {
    if (this.o.resumeFrom) {
      this.resume(loadCheckpoint(this.o.resumeFrom));
      return;
    }
    this.metrics.truncate(0); // a fresh run starts a fresh log
    this.opt.init(this.trainableParams());
  }

  /** Restores model, optimiser, sampler, RNG and log position from a checkpoint. */
  private resume(ck: LoadedCheckpoint): void {
    if (!sameJson(upgradeModelConfig(ck.modelConfig), this.model.config)) {
      throw new Error(
        `Trainer: checkpoint ${ck.dir} holds a model with configuration ${JSON.stringify(ck.modelConfig)}, but the model to train has ${JSON.stringify(this.model.config)}`,
      );
    }
    const changed = diffKeys(ck.config, this.cfg).filter((k) => !QUIET_KEYS.some((q) => k.startsWith(q)));
    if (changed.length > 0)
      this.log(`resume: the configuration differs from the checkpoint's in ${changed.join(", ")}; continuing with the new values`);
    this.model.loadStateDict(ck.model, { strict: true });
    this.opt.importState(ck.optimizer, this.trainableParams());
    const st = ck.state as SavedTrainerState;
    if (st.sampler === undefined || st.rng?.dropout === undefined || typeof st.metricsBytes !== "number") {
      throw new Error(
        `Trainer: ${path.join(ck.dir, STATE_FILE)} lacks sampler, rng.dropout or metricsBytes; it was not written by this trainer`,
      );
    }
    this.sampler.restore(st.sampler);
    this.dropoutKey = Key.fromJSON(st.rng.dropout);
    if (this.metrics.bytes >= st.metricsBytes) this.metrics.truncate(st.metricsBytes);
    else
      this.log(
        `resume: ${this.metrics.file} is shorter (${this.metrics.bytes} bytes) than when the checkpoint was written (${st.metricsBytes}); appending`,
      );
    this.step = ck.step;
    this.elapsed = st.elapsed ?? 0;
    this.tokensSeen = st.tokens ?? 0;
    this.lastEval = st.lastEval ?? null;
    this.lastCheckpoint = ck.dir;
    this.metrics.write({ type: "resume", step: this.step, from: ck.dir });
    this.log(`resumed from ${ck.dir} at step ${this.step}/${this.cfg.train.steps}`);
  }

  /** One optimiser update: gradients of `gradAccum` micro-batches, the finiteness check, then clip and step. */
  private update(): UpdateResult {
    const t0 = performance.now();
    const lr = this.schedule(this.step);
    const full = this.model.parameters();
    const params = this.trainableParams(full);
    const { loss, grads } = this.gradients(full, params);
    const gradNorm = globalNorm(grads);
    this.checkFinite(loss, gradNorm, lr);
    const { clipScale } = this.clipAndStep(full, params, grads, lr, gradNorm);
    this.step++;
    const seconds = (performance.now() - t0) / 1000;
    this.elapsed += seconds;
    this.tokensSeen += this.cfg.train.batchSize * this.cfg.data.seqLen;
    this.lastLoss = loss;
    return { loss, lr, gradNorm, clipScale, seconds };
  }

  /** Mean loss and gradients over the update's micro-batches; the model keeps its parameters `full` afterwards. */
  private gradients(full: Params, params: Params): { loss: number; grads: Params } {
    try {
      for (let j = 0; j < this.cfg.train.gradAccum; j++) {
        const { loss, grads } = this.microStep(j, full, params);
        this.accumulator.add(loss, grads);
      }
    } finally {
      this.model.setParameters(full);
    }
    return this.accumulator.mean();
  }

  /** Loss and gradients of micro-batch j of the current update (dropout key foldIn(foldIn(k, step), j)). */
  private microStep(j: number, full: Params, params: Params): { loss: Tensor; grads: Params } {
    const b = this.sampler.next();
    const x = tensor(b.inputs, { shape: [b.batch, b.seqLen], dtype: "int32" });
    const y = tensor(b.targets, { shape: [b.batch, b.seqLen], dtype: "int32" });
    const key = random.foldIn(random.foldIn(this.dropoutKey, this.step), j);
    const f = (p: Params): Tensor => {
      this.model.setParameters({ ...full, ...p });
      return this.model.loss(x, y, { key, training: true });
    };
    return tidy(() => {
      const [loss, grads] = valueAndGrad(f)(params) as [Tensor, Params];
      return { loss, grads };
    });
  }

  /** Throws `NonFiniteLossError` (and logs it) when the loss or the gradient norm is NaN or infinite. */
  private checkFinite(loss: number, norm: number, lr: number): void {
    if (Number.isFinite(loss) && Number.isFinite(norm)) return;
    const at = this.step + 1;
    const what = !Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${norm}`;
    this.metrics.write({ type: "error", step: at, message: what });
    const where = this.lastCheckpoint ?? listCheckpoints(this.o.runDir).at(-1)?.dir ?? null;
    throw new NonFiniteLossError(
      `train: ${what} at update ${at} (lr ${lr.toExponential(3)}); stopped without applying it. ` +
        (where !== null ? `The last good checkpoint is ${where}; ` : "No checkpoint was written yet; ") +
        "lower optimizer.lr, raise optimizer.warmupRatio or set optimizer.maxGradNorm, then resume with --resume.",
      at,
      where,
    );
  }

  /** AdamW on the trainable parameters; the model takes the new values. */
  private clipAndStep(full: Params, params: Params, grads: Params, lr: number, gradNorm: number): { clipScale: number } {
    const upd = this.opt.step(params, grads, lr, { gradNorm });
    this.model.setParameters({ ...full, ...upd.params });
    return { clipScale: upd.clipScale };
  }

  /** A train record in metrics.jsonl and the progress display. */
  private logMetrics(u: UpdateResult): void {
    const stepTokens = this.cfg.train.batchSize * this.cfg.data.seqLen;
    this.metrics.write({
      type: "train",
      step: this.step,
      loss: u.loss,
      ppl: Math.exp(u.loss),
      lr: u.lr,
      gradNorm: u.gradNorm,
      clipScale: u.clipScale,
      tokens: this.tokensSeen,
      tokensPerSec: stepTokens / u.seconds,
      elapsed: this.elapsed,
      epoch: this.sampler.state().epoch,
    });
    this.progress.update(this.step, { loss: u.loss, lr: u.lr, tokensPerSec: stepTokens / u.seconds });
  }

  /** Evaluates every `train.evalEvery` updates and after the last one (when there is an evaluation split). */
  private maybeEvaluate(): EvalResult | null {
    const every = this.cfg.train.evalEvery;
    const due = (every > 0 && this.step % every === 0) || this.step === this.cfg.train.steps;
    return this.o.evalSplit && due ? this.evaluate() : null;
  }

  /** Perplexity on the evaluation split, logged and remembered. */
  private evaluate(): EvalResult | null {
    const ev = this.o.evalSplit;
    if (!ev) return null;
    const t0 = performance.now();
    const r = evaluatePerplexity(this.model, ev.tokens, {
      seqLen: this.cfg.data.seqLen,
      batchSize: this.cfg.train.evalBatchSize ?? this.micro,
      maxBatches: this.cfg.train.evalBatches,
    });
    this.metrics.write({
      type: "eval",
      step: this.step,
      split: ev.name,
      loss: r.loss,
      ppl: r.ppl,
      tokens: r.tokens,
      batches: r.batches,
      elapsed: this.elapsed,
    });
    this.progress.message(
      `eval step ${this.step}: ${ev.name} loss ${r.loss.toFixed(4)} ppl ${r.ppl.toFixed(2)} (${r.tokens} tokens, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
    this.lastEval = r;
    return r;
  }

  /** Checkpoints every `train.checkpointEvery` updates, after the last one and when interrupted; returns the folder written. */
  private maybeCheckpoint(): string | null {
    const every = this.cfg.train.checkpointEvery;
    const last = this.step === this.cfg.train.steps;
    if (!((every > 0 && this.step % every === 0) || last || this.guard.interrupted)) return null;
    const dir = this.save();
    if (!last) this.progress.message(`checkpoint step ${this.step}: ${dir}`);
    return dir;
  }

  /** Writes a checkpoint of the current step (after flushing the metrics log, whose length it records). */
  private save(): string {
    this.metrics.sync();
    const dir = saveCheckpoint(
      this.o.runDir,
      this.step,
      {
        model: this.model.stateDict(),
        modelConfig: this.model.config,
        optimizer: this.opt.exportState(),
        state: {
          version: 1,
          rng: { dropout: this.dropoutKey.toJSON() },
          sampler: this.sampler.state(),
          metricsBytes: this.metrics.bytes,
          elapsed: this.elapsed,
          tokens: this.tokensSeen,
          lastEval: this.lastEval,
          ...(this.o.extraState !== undefined ? { extra: this.o.extraState } : {}),
        },
        config: this.cfg,
      },
      this.cfg.train.keepCheckpoints,
    );
    this.lastCheckpoint = dir;
    return dir;
  }
}

/** The training batch sampler of a configuration (micro-batches of `micro` sequences). */
function samplerFor(cfg: TrainConfig, tokens: TokenArray, micro: number): BatchSampler {
  return new BatchSampler(tokens, {
    batchSize: micro,
    seqLen: cfg.data.seqLen,
    ...(cfg.data.stride !== null ? { stride: cfg.data.stride } : {}),
    seed: cfg.seed,
  });
}

/** AdamW with the configuration's hyper-parameters and the resolved decay patterns. */
function optimizerFor(cfg: TrainConfig, decayPatterns: readonly string[]): AdamW {
  const o = cfg.optimizer;
  return new AdamW({ beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, decayPatterns, maxGradNorm: o.maxGradNorm });
}

/** The learning-rate schedule of a configuration. */
function scheduleFor(cfg: TrainConfig): Schedule {
  const o = cfg.optimizer;
  return makeSchedule({ lr: o.lr, totalSteps: cfg.train.steps, warmupRatio: o.warmupRatio, minLrRatio: o.minLrRatio, kind: o.schedule });
}

/** The model's trainable names, checked against its parameters. */
function checkTrainable(model: TrainableModel): string[] {
  const names = [...new Set(model.trainableNames())];
  const all = new Set(Object.keys(model.parameters()));
  for (const n of names) if (!all.has(n)) throw new Error(`Trainer: trainable name '${n}' is not a model parameter`);
  if (names.length === 0) throw new Error("Trainer: the model has no trainable parameters");
  return names;
}
