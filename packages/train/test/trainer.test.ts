import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { random } from "@qkvflow/autograd";
import {
  NonFiniteLossError,
  Trainer,
  evaluatePerplexity,
  listCheckpoints,
  loadCheckpoint,
  makeSchedule,
  readMetrics,
  runEval,
  runTrain,
  unigramPerplexity,
  validateTrainConfig,
  type MetricRecord,
  type RunData,
  type TrainConfig,
} from "../src/index.js";
import { TinyLM, syntheticTokens, tinyBackend, tinyConfig } from "../../../test/helpers/tiny-model.js";
import { tmpDir } from "../../../test/helpers/tmp.js";

const V = 32;
const TOKENS = syntheticTokens(4000, V, 1);
const EVAL = syntheticTokens(700, V, 2);

function cfgWith(
  over: { train?: Record<string, unknown>; optimizer?: Record<string, unknown>; data?: Record<string, unknown>; seed?: number } = {},
): TrainConfig {
  return validateTrainConfig({
    name: "tiny",
    seed: over.seed ?? 3,
    model: { kind: "tiny" },
    data: { seqLen: 16, ...over.data },
    optimizer: { lr: 0.05, warmupRatio: 0.1, weightDecay: 0.01, decayPatterns: ["wte\\.weight"], ...over.optimizer },
    train: {
      steps: 12,
      batchSize: 8,
      evalEvery: 6,
      evalBatchSize: 8,
      checkpointEvery: 4,
      keepCheckpoints: 3,
      progress: "none",
      ...over.train,
    },
  });
}

function trainer(cfg: TrainConfig, runDir: string, model: TinyLM, extra: Partial<ConstructorParameters<typeof Trainer>[0]> = {}): Trainer {
  return new Trainer({
    model,
    config: cfg,
    trainTokens: TOKENS,
    evalSplit: { name: "validation", tokens: EVAL },
    runDir,
    decayPatterns: cfg.optimizer.decayPatterns!,
    log: () => undefined,
    handleSignals: false,
    ...extra,
  });
}

const newModel = (seed = 3, dropout = 0.1): TinyLM => new TinyLM(tinyConfig({ vocabSize: V, dropout }), random.foldIn(random.key(seed), 0));
const trainRecs = (file: string): MetricRecord[] => readMetrics(file).filter((r) => r.type === "train");

test("evaluatePerplexity equals a direct bigram NLL over every position of the split (padding ignored)", () => {
  const m = newModel();
  const p = m.parameters();
  const E = 8;
  const wte = p["wte.weight"]!.data(),
    W = p["head.weight"]!.data(),
    b = p["head.bias"]!.data();
  const tokens = EVAL.subarray(0, 237); // 236 targets: 7 full windows of 32 + a padded one
  let nll = 0;
  for (let i = 0; i + 1 < tokens.length; i++) {
    const h = Array.from({ length: E }, (_, e) => Math.tanh(wte[tokens[i]! * E + e]!));
    const logits = Array.from({ length: V }, (_, v) => h.reduce((s, he, e) => s + he * W[e * V + v]!, b[v]!));
    const mx = Math.max(...logits);
    const lse = mx + Math.log(logits.reduce((s, l) => s + Math.exp(l - mx), 0));
    nll += lse - logits[tokens[i + 1]!]!;
  }
  const want = nll / (tokens.length - 1);
  const r = evaluatePerplexity(m, tokens, { seqLen: 32, batchSize: 3 });
  assert.equal(r.tokens, 236);
  assert.equal(r.batches, 3);
  assert.ok(Math.abs(r.loss - want) < 1e-5, `${r.loss} vs ${want}`);
  assert.ok(Math.abs(r.ppl - Math.exp(want)) < 1e-4 * Math.exp(want));
  const capped = evaluatePerplexity(m, tokens, { seqLen: 32, batchSize: 3, maxBatches: 1 });
  assert.equal(capped.tokens, 96);
  assert.equal(capped.batches, 1);
});

test("training lowers the perplexity below the unigram baseline; metrics.jsonl records every step", async () => {
  const run = tmpDir();
  const cfg = cfgWith({ train: { steps: 60, evalEvery: 30, checkpointEvery: 0 } });
  const m = newModel();
  const before = evaluatePerplexity(m, EVAL, { seqLen: 16, batchSize: 8 }).ppl;
  const r = await trainer(cfg, run, m).run();
  assert.equal(r.step, 60);
  assert.equal(r.interrupted, false);
  const uni = unigramPerplexity(TOKENS, EVAL, { vocabSize: V }).perplexity;
  assert.ok(r.lastEval!.ppl < 0.6 * uni, `ppl ${r.lastEval!.ppl} vs unigram ${uni}`);
  assert.ok(r.lastEval!.ppl < before / 2, `ppl ${r.lastEval!.ppl} vs before ${before}`);
  const recs = readMetrics(r.metricsFile);
  const train = recs.filter((x) => x.type === "train");
  assert.deepEqual(
    train.map((x) => x.step),
    Array.from({ length: 60 }, (_, i) => i + 1),
  );
  const sched = makeSchedule({ lr: 0.05, totalSteps: 60, warmupRatio: 0.1, minLrRatio: 0.1 });
  train.forEach((x) => assert.equal(x.lr, sched(x.step - 1)));
  for (const x of train) {
    for (const k of ["loss", "ppl", "lr", "gradNorm", "tokens", "tokensPerSec", "elapsed"])
      assert.equal(typeof x[k], "number", `${k} in ${JSON.stringify(x)}`);
    assert.equal(x.ppl, Math.exp(x.loss as number));
    assert.equal(x.tokens, x.step * 8 * 16);
  }
  assert.deepEqual(
    recs.filter((x) => x.type === "eval").map((x) => [x.step, x.split]),
    [
      [30, "validation"],
      [60, "validation"],
    ],
  );
  // Only the final checkpoint (checkpointEvery 0).
  assert.deepEqual(
    listCheckpoints(run).map((c) => c.step),
    [60],
  );
});

test("gradient accumulation: 2 micro-batches of 4 equal one batch of 8 (same windows, no dropout)", async () => {
  const runs = await Promise.all(
    [1, 2].map(async (accum) => {
      const run = tmpDir();
      const m = newModel(3, 0);
      const r = await trainer(cfgWith({ train: { steps: 5, gradAccum: accum, evalEvery: 0, checkpointEvery: 0 } }), run, m, {
        evalSplit: null,
      }).run();
      return { losses: trainRecs(r.metricsFile).map((x) => x.loss as number), w: Array.from(m.parameters()["head.weight"]!.data()) };
    }),
  );
  const [a, b] = runs as [{ losses: number[]; w: number[] }, { losses: number[]; w: number[] }];
  a.losses.forEach((l, i) => assert.ok(Math.abs(l - b.losses[i]!) < 1e-5, `step ${i + 1}: ${l} vs ${b.losses[i]}`));
  a.w.forEach((x, i) => assert.ok(Math.abs(x - b.w[i]!) < 1e-4, `w[${i}]`));
});

test("resume after a crash reproduces the uninterrupted losses bit for bit (in-process)", async () => {
  const full = tmpDir();
  await trainer(cfgWith(), full, newModel()).run();
  const crashed = tmpDir();
  await assert.rejects(
    trainer(cfgWith(), crashed, newModel(), {
      afterStep: (i) => {
        if (i.step === 7) throw new Error("simulated crash");
      },
    }).run(),
    /simulated crash/,
  );
  assert.equal(loadCheckpoint(crashed).step, 4);
  // The killed run logged steps 5..7 after its last checkpoint; resuming must drop them.
  assert.equal(trainRecs(path.join(crashed, "metrics.jsonl")).length, 7);
  const m = newModel(99); // different init: everything must come from the checkpoint
  const r = await trainer(cfgWith(), crashed, m, { resumeFrom: crashed }).run();
  assert.equal(r.step, 12);
  const a = trainRecs(path.join(full, "metrics.jsonl"));
  const b = trainRecs(path.join(crashed, "metrics.jsonl"));
  assert.deepEqual(
    b.map((x) => [x.step, x.loss, x.lr, x.gradNorm]),
    a.map((x) => [x.step, x.loss, x.lr, x.gradNorm]),
  );
  const evA = readMetrics(path.join(full, "metrics.jsonl"))
    .filter((x) => x.type === "eval")
    .map((x) => x.loss);
  const evB = readMetrics(path.join(crashed, "metrics.jsonl"))
    .filter((x) => x.type === "eval")
    .map((x) => x.loss);
  assert.deepEqual(evB, evA);
  assert.equal(readMetrics(path.join(crashed, "metrics.jsonl")).filter((x) => x.type === "resume").length, 1);
});

test("a non-finite loss stops the run with a clear error and the last good checkpoint intact", async () => {
  const run = tmpDir();
  const m = newModel();
  m.nanAfterCalls = 6; // the 7th loss evaluation (update 7) is NaN
  const cfg = cfgWith({ train: { checkpointEvery: 5, evalEvery: 0 } });
  await assert.rejects(trainer(cfg, run, m).run(), (e: Error) => {
    assert.ok(e instanceof NonFiniteLossError);
    assert.equal(e.step, 7);
    assert.match(
      e.message,
      /train: loss is NaN at update 7 .*stopped without applying it\. The last good checkpoint is .*step-00000005; lower optimizer.lr/,
    );
    return true;
  });
  assert.deepEqual(
    listCheckpoints(run).map((c) => c.step),
    [5],
  );
  const ck = loadCheckpoint(run);
  for (const v of ck.model["head.weight"]!.data()) assert.ok(Number.isFinite(v));
  const recs = readMetrics(path.join(run, "metrics.jsonl"));
  assert.deepEqual(recs.at(-1), { type: "error", step: 7, message: "loss is NaN" });
  // The run resumes from the good checkpoint once the cause is gone.
  const r = await trainer(cfg, run, newModel(), { resumeFrom: run }).run();
  assert.equal(r.step, 12);
});

test("SIGINT finishes the update, writes a checkpoint and returns interrupted", async () => {
  const run = tmpDir();
  const cfg = cfgWith({ train: { checkpointEvery: 100, evalEvery: 0 } });
  const r = await trainer(cfg, run, newModel(), {
    handleSignals: true,
    afterStep: (i) => {
      if (i.step === 3) process.emit("SIGINT");
    },
  }).run();
  assert.equal(r.interrupted, true);
  assert.equal(r.step, 3);
  assert.equal(loadCheckpoint(run).step, 3);
  assert.equal(process.listenerCount("SIGINT"), 0, "handler removed");
});

test("runTrain refuses a run folder with checkpoints unless resuming; resuming a finished run is a no-op", async () => {
  const out = tmpDir();
  const data: RunData = {
    train: { name: "train", tokens: TOKENS },
    eval: { name: "validation", tokens: EVAL },
    splits: {},
    source: "synthetic",
    note: null,
  };
  const cfg = validateTrainConfig({
    ...cfgWith(),
    train: { ...cfgWith().train, outDir: out, steps: 4 },
    model: { kind: "tiny", vocabSize: V, nEmbd: 8, blockSize: 64 },
  });
  const opts = { backend: tinyBackend, data, log: () => undefined, handleSignals: false } as const;
  const r = await runTrain(cfg, opts);
  assert.equal(r.step, 4);
  assert.ok(fs.existsSync(path.join(out, "config.json")));
  await assert.rejects(
    runTrain(cfg, opts),
    /train: .* already holds checkpoints \(latest .*step-00000004\); pass --resume to continue that run/,
  );
  const again = await runTrain(cfg, { ...opts, resume: true });
  assert.equal(again.step, 4);
  const tooLong = validateTrainConfig({ ...cfg, data: { ...cfg.data, seqLen: 65 } });
  await assert.rejects(runTrain(tooLong, { ...opts, resume: true }), /train: data.seqLen 65 exceeds the model's blockSize 64/);
  const ev = await runEval(cfg, out, { ...opts, data: { ...data, splits: { validation: EVAL, test: EVAL.subarray(0, 300) } } });
  const direct = evaluatePerplexity(tinyBackend.fromState(loadCheckpoint(out).modelConfig, loadCheckpoint(out).model), EVAL, {
    seqLen: 16,
    batchSize: 8,
  });
  assert.equal(ev.split, "validation");
  assert.equal(ev.eval.loss, direct.loss);
  assert.equal(ev.unigram, unigramPerplexity(TOKENS, EVAL).perplexity);
  const onTest = await runEval(cfg, out, {
    ...opts,
    split: "test",
    data: { ...data, splits: { validation: EVAL, test: EVAL.subarray(0, 300) } },
  });
  assert.equal(onTest.eval.tokens, 299);
  await assert.rejects(runEval(cfg, out, { ...opts, split: "dev" }), /eval: split 'dev' is not available; available: /);
  const small = validateTrainConfig({ ...cfg, model: { kind: "tiny", vocabSize: 16 }, train: { ...cfg.train, outDir: tmpDir() } });
  await assert.rejects(runTrain(small, opts), /train: the data has token id 31, outside the model's vocabulary of 16/);
});
