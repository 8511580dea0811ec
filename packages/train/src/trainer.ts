/**
 * The training loop. It knows a model only through `TrainableModel` (parameters, setParameters,
 * trainableNames, loss, state dict): every update it draws `gradAccum` micro-batches from the sampler,
 * takes value-and-gradient of the mean loss with respect to the trainable parameters, averages the
 * gradients, and applies AdamW (clip → Adam → decay) at the scheduled learning rate.
 *
 * Determinism and exact resume: the dropout key of micro-batch j of update s is
 * foldIn(foldIn(dropoutKey, s), j); the data order is the sampler's (seeded permutation per epoch); the
 * optimiser update is deterministic host code. A checkpoint stores the parameters, the AdamW moments and
 * count, the dropout key, the sampler position and the length of metrics.jsonl, so a resumed run
 * truncates the log to that length and continues with bit-identical losses.
 *
 * Stops: a non-finite loss or gradient norm throws `NonFiniteLossError` before the update is applied and
 * without writing a checkpoint (the last good one stays the latest); SIGINT (Ctrl-C) finishes the current
 * update, writes a checkpoint and returns with `interrupted: true` (a second Ctrl-C exits at once).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Key, random, tensor, valueAndGrad, type Tensor } from '@qkvflow/autograd';
import { upgradeModelConfig } from '@qkvflow/models';
import { listCheckpoints, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { BatchSampler, type SamplerState, type TokenArray } from './data/index.js';
import { evaluatePerplexity, type EvalResult } from './evaluate.js';
import { MetricsLog, Progress, type ProgressMode } from './metrics.js';
import type { TrainableModel } from './model-types.js';
import { AdamW, globalNorm } from './optim/adamw.js';
import { makeSchedule } from './optim/schedule.js';

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
    this.name = 'NonFiniteLossError';
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

type Float = Float32Array | Float64Array;

function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Keys (dotted) whose values differ between two JSON objects. */
function diffKeys(a: unknown, b: unknown, prefix = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObj(a) || !isObj(b)) return sameJson(a, b) ? [] : [prefix || '(root)'];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of keys) out.push(...diffKeys(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  return out;
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
    const { model, config: cfg, runDir } = this.o;
    const T = cfg.data.seqLen;
    const A = cfg.train.gradAccum;
    const micro = cfg.train.batchSize / A;
    const total = cfg.train.steps;
    fs.mkdirSync(runDir, { recursive: true });

    const trainable = new Set(model.trainableNames());
    const allNames = Object.keys(model.parameters());
    for (const n of trainable) if (!allNames.includes(n)) throw new Error(`Trainer: trainable name '${n}' is not a model parameter`);
    if (trainable.size === 0) throw new Error('Trainer: the model has no trainable parameters');

    const sampler = new BatchSampler(this.o.trainTokens, {
      batchSize: micro,
      seqLen: T,
      ...(cfg.data.stride !== null ? { stride: cfg.data.stride } : {}),
      seed: cfg.seed,
    });
    const opt = new AdamW({
      beta1: cfg.optimizer.beta1,
      beta2: cfg.optimizer.beta2,
      eps: cfg.optimizer.eps,
      weightDecay: cfg.optimizer.weightDecay,
      decayPatterns: this.o.decayPatterns,
      maxGradNorm: cfg.optimizer.maxGradNorm,
    });
    const schedule = makeSchedule({
      lr: cfg.optimizer.lr,
      totalSteps: total,
      warmupRatio: cfg.optimizer.warmupRatio,
      minLrRatio: cfg.optimizer.minLrRatio,
      kind: cfg.optimizer.schedule,
    });

    const metrics = new MetricsLog(path.join(runDir, 'metrics.jsonl'));
    let step = 0;
    let dropoutKey = random.foldIn(random.key(cfg.seed), 1);
    let elapsed = 0;
    let tokensSeen = 0;
    let lastEval: EvalResult | null = null;
    let lastCheckpoint: string | null = null;

    if (this.o.resumeFrom) {
      let ck;
      try {
        ck = loadCheckpoint(this.o.resumeFrom);
        if (!sameJson(upgradeModelConfig(ck.modelConfig), model.config)) {
          throw new Error(`Trainer: checkpoint ${ck.dir} holds a model with configuration ${JSON.stringify(ck.modelConfig)}, but the model to train has ${JSON.stringify(model.config)}`);
        }
      } catch (err) {
        metrics.close();
        throw err;
      }
      const st = ck.state as {
        rng?: { dropout?: number[] };
        sampler?: SamplerState;
        metricsBytes?: number;
        elapsed?: number;
        tokens?: number;
        lastEval?: EvalResult | null;
      };
      const changed = diffKeys(ck.config, cfg).filter((k) => !k.startsWith('train.progress') && !k.startsWith('train.outDir') && !k.startsWith('data.dataDir') && !k.startsWith('data.cacheDir'));
      if (changed.length > 0) this.log(`resume: the configuration differs from the checkpoint's in ${changed.join(', ')}; continuing with the new values`);
      model.loadStateDict(ck.model, { strict: true });
      const params = model.parameters();
      const tp: Record<string, Tensor> = {};
      for (const n of trainable) tp[n] = params[n]!;
      opt.importState(ck.optimizer, tp);
      if (st.sampler === undefined || st.rng?.dropout === undefined || typeof st.metricsBytes !== 'number') {
        throw new Error(`Trainer: ${path.join(ck.dir, 'state.json')} lacks sampler, rng.dropout or metricsBytes; it was not written by this trainer`);
      }
      sampler.restore(st.sampler);
      dropoutKey = Key.fromJSON(st.rng.dropout);
      if (metrics.bytes >= st.metricsBytes) metrics.truncate(st.metricsBytes);
      else this.log(`resume: ${metrics.file} is shorter (${metrics.bytes} bytes) than when the checkpoint was written (${st.metricsBytes}); appending`);
      step = ck.step;
      elapsed = st.elapsed ?? 0;
      tokensSeen = st.tokens ?? 0;
      lastEval = st.lastEval ?? null;
      lastCheckpoint = ck.dir;
      metrics.write({ type: 'resume', step, from: ck.dir });
      this.log(`resumed from ${ck.dir} at step ${step}/${total}`);
    } else {
      metrics.truncate(0); // a fresh run starts a fresh log
      const params = model.parameters();
      opt.init(Object.fromEntries([...trainable].map((n) => [n, params[n]!])));
    }

    const save = (): string => {
      metrics.sync();
      const dir = saveCheckpoint(
        runDir,
        step,
        {
          model: model.stateDict(),
          modelConfig: model.config,
          optimizer: opt.exportState(),
          state: {
            version: 1,
            rng: { dropout: dropoutKey.toJSON() },
            sampler: sampler.state(),
            metricsBytes: metrics.bytes,
            elapsed,
            tokens: tokensSeen,
            lastEval,
            ...(this.o.extraState !== undefined ? { extra: this.o.extraState } : {}),
          },
          config: cfg,
        },
        cfg.train.keepCheckpoints,
      );
      lastCheckpoint = dir;
      return dir;
    };

    const evaluate = (): EvalResult | null => {
      const ev = this.o.evalSplit;
      if (!ev) return null;
      const t0 = performance.now();
      const r = evaluatePerplexity(model, ev.tokens, {
        seqLen: T,
        batchSize: cfg.train.evalBatchSize ?? micro,
        maxBatches: cfg.train.evalBatches,
      });
      metrics.write({ type: 'eval', step, split: ev.name, loss: r.loss, ppl: r.ppl, tokens: r.tokens, batches: r.batches, elapsed });
      progress.message(`eval step ${step}: ${ev.name} loss ${r.loss.toFixed(4)} ppl ${r.ppl.toFixed(2)} (${r.tokens} tokens, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      lastEval = r;
      return r;
    };

    let interrupted = false;
    let interrupts = 0;
    const onSigint = (): void => {
      interrupts++;
      if (interrupts > 1) {
        this.log('second interrupt: exiting without a checkpoint');
        process.exit(130);
      }
      interrupted = true;
      this.log('interrupt: finishing this update and writing a checkpoint (Ctrl-C again to exit at once)');
    };
    const handleSignals = this.o.handleSignals ?? true;
    if (handleSignals) process.on('SIGINT', onSigint);

    const progress = new Progress(this.o.progress ?? cfg.train.progress, total, this.log);
    let lastLoss = Number.NaN;
    try {
      if (step >= total) {
        this.log(`nothing to do: ${step} of ${total} updates are already done`);
        return { step, interrupted: false, lastLoss, lastEval, checkpoint: lastCheckpoint, metricsFile: metrics.file };
      }
      if (this.o.evalAtStart && step === 0 && this.o.evalSplit) evaluate();
      progress.start(step);
      const names = [...trainable];
      while (step < total) {
        const t0 = performance.now();
        const lr = schedule(step);
        const full = model.parameters();
        const params: Record<string, Tensor> = {};
        for (const n of names) params[n] = full[n]!;
        const sums = new Map<string, Float64Array>();
        let lossSum = 0;
        for (let j = 0; j < A; j++) {
          const b = sampler.next();
          const x = tensor(b.inputs, { shape: [b.batch, b.seqLen], dtype: 'int32' });
          const y = tensor(b.targets, { shape: [b.batch, b.seqLen], dtype: 'int32' });
          const key = random.foldIn(random.foldIn(dropoutKey, step), j);
          const f = (p: Record<string, Tensor>): Tensor => {
            model.setParameters({ ...full, ...p });
            return model.loss(x, y, { key, training: true });
          };
          const [lossT, g] = valueAndGrad(f)(params) as [Tensor, Record<string, Tensor>];
          lossSum += lossT.item();
          for (const n of names) {
            const gd = g[n]!.data() as Float;
            let acc = sums.get(n);
            if (acc === undefined) {
              acc = new Float64Array(gd.length);
              sums.set(n, acc);
            }
            for (let i = 0; i < gd.length; i++) acc[i] += gd[i]!;
          }
        }
        model.setParameters(full);
        const loss = lossSum / A;
        const grads: Record<string, Tensor> = {};
        for (const n of names) {
          const p = params[n]!;
          const acc = sums.get(n)!;
          const out: Float = p.dtype === 'float64' ? new Float64Array(acc.length) : new Float32Array(acc.length);
          for (let i = 0; i < acc.length; i++) out[i] = acc[i]! / A;
          grads[n] = tensor(out, { shape: [...p.shape], dtype: p.dtype });
        }
        const norm = globalNorm(grads);
        if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
          const what = !Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${norm}`;
          metrics.write({ type: 'error', step: step + 1, message: what });
          const where = lastCheckpoint ?? listCheckpoints(runDir).at(-1)?.dir ?? null;
          throw new NonFiniteLossError(
            `train: ${what} at update ${step + 1} (lr ${lr.toExponential(3)}); stopped without applying it. ` +
              (where !== null ? `The last good checkpoint is ${where}; ` : 'No checkpoint was written yet; ') +
              'lower optimizer.lr, raise optimizer.warmupRatio or set optimizer.maxGradNorm, then resume with --resume.',
            step + 1,
            where,
          );
        }
        const upd = opt.step(params, grads, lr);
        model.setParameters({ ...full, ...upd.params });
        step++;
        const dt = (performance.now() - t0) / 1000;
        elapsed += dt;
        const stepTokens = cfg.train.batchSize * T;
        tokensSeen += stepTokens;
        lastLoss = loss;
        metrics.write({
          type: 'train',
          step,
          loss,
          ppl: Math.exp(loss),
          lr,
          gradNorm: upd.gradNorm,
          clipScale: upd.clipScale,
          tokens: tokensSeen,
          tokensPerSec: stepTokens / dt,
          elapsed,
          epoch: sampler.state().epoch,
        });
        progress.update(step, { loss, lr, tokensPerSec: stepTokens / dt });

        let ev: EvalResult | null = null;
        const last = step === total;
        if (this.o.evalSplit && ((cfg.train.evalEvery > 0 && step % cfg.train.evalEvery === 0) || last)) ev = evaluate();
        let ck: string | null = null;
        if ((cfg.train.checkpointEvery > 0 && step % cfg.train.checkpointEvery === 0) || last || interrupted) {
          ck = save();
          if (!last) progress.message(`checkpoint step ${step}: ${ck}`);
        }
        if (this.o.afterStep) await this.o.afterStep({ step, loss, lr, gradNorm: upd.gradNorm, eval: ev, checkpoint: ck });
        if (interrupted) {
          if (ck === null) ck = save();
          progress.stop();
          this.log(`interrupted at step ${step}/${total}; checkpoint ${ck}; continue with --resume`);
          break;
        }
        await yieldToEventLoop();
      }
      progress.stop();
      return { step, interrupted, lastLoss, lastEval, checkpoint: lastCheckpoint, metricsFile: metrics.file };
    } finally {
      progress.stop();
      metrics.close();
      if (handleSignals) process.off('SIGINT', onSigint);
    }
  }
}
