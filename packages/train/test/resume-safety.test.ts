import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { makeSchedule, readMetrics, runTrain, validateTrainConfig, type RunData, type TrainConfig } from "../src/index.js";
import { ensureOutDir } from "../src/out-dir.js";
import { syntheticTokens, tinyBackend } from "../../../test/helpers/tiny-model.js";
import { tmpDir } from "../../../test/helpers/tmp.js";

const V = 32;
const DATA: RunData = {
  train: { name: "train", tokens: syntheticTokens(4000, V, 1) },
  eval: { name: "validation", tokens: syntheticTokens(700, V, 2) },
  splits: {},
  source: "synthetic",
  note: null,
};

function cfgAt(out: string, over: { steps?: number; evalEvery?: number; nEmbd?: number } = {}): TrainConfig {
  return validateTrainConfig({
    name: "tiny",
    seed: 3,
    model: { kind: "tiny", vocabSize: V, nEmbd: over.nEmbd ?? 8, blockSize: 64 },
    data: { seqLen: 16 },
    optimizer: { lr: 0.05, warmupRatio: 0.25, weightDecay: 0.01, decayPatterns: ["wte\\.weight"] },
    train: {
      steps: over.steps ?? 8,
      batchSize: 8,
      evalEvery: over.evalEvery ?? 4,
      evalBatchSize: 8,
      checkpointEvery: 4,
      keepCheckpoints: 3,
      progress: "none",
      outDir: out,
    },
  });
}

const quiet = { backend: tinyBackend, data: DATA, handleSignals: false } as const;

/** Every file under `dir` with the sha256 of its bytes. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = path.join(d, n);
      if (fs.statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = createHash("sha256").update(fs.readFileSync(p)).digest("hex");
    }
  };
  walk(dir);
  return out;
}

/** A finished 8-step run (checkpoints at steps 4 and 8), copied fresh for each case. */
let template: string | null = null;
async function finishedRun(): Promise<string> {
  if (template === null) {
    template = tmpDir();
    await runTrain(cfgAt(template), { ...quiet, log: () => undefined });
  }
  const out = tmpDir();
  fs.cpSync(template, out, { recursive: true });
  return out;
}

const ck = (out: string, step: number, f: string): string => path.join(out, "checkpoints", `step-0000000${step}`, f);

test("resume: a damaged latest checkpoint is refused naming the damaged file and the intact one, and the run folder is left as it was", async () => {
  const damage: [string, (out: string) => void, RegExp][] = [
    [
      "truncated model",
      (o) => fs.truncateSync(ck(o, 8, "model.safetensors"), 300),
      /step-00000008\/model\.safetensors: decodeSafetensors: .*(out of range|beyond the end)/,
    ],
    ["missing optimizer", (o) => fs.rmSync(ck(o, 8, "optimizer.safetensors")), /step-00000008 lacks optimizer\.safetensors/],
    [
      "state.json says step 9999",
      (o) => {
        const f = ck(o, 8, "state.json");
        fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, "utf8")), step: 9999 }));
      },
      /step-00000008\/state\.json says step 9999, but the folder is step-00000008 \(step 8\)/,
    ],
    [
      "optimizer moments of another step",
      (o) => fs.copyFileSync(ck(o, 4, "optimizer.safetensors"), ck(o, 8, "optimizer.safetensors")),
      /step-00000008\/optimizer\.safetensors holds the optimiser state after 4 updates, but .*state\.json says step 8/,
    ],
    ["corrupt state.json", (o) => fs.writeFileSync(ck(o, 8, "state.json"), "{not json"), /step-00000008\/state\.json: not valid JSON/],
  ];
  for (const [what, hurt, re] of damage) {
    const out = await finishedRun();
    hurt(out);
    const before = snapshot(out);
    const logs: string[] = [];
    await assert.rejects(
      runTrain(cfgAt(out, { steps: 8, evalEvery: 2 }), { ...quiet, resume: true, log: (m) => logs.push(m) }),
      (e: Error) => {
        assert.match(e.message, re, what);
        assert.match(e.message, /^train: cannot resume: the latest checkpoint .*step-00000008 is damaged/, what);
        assert.match(e.message, /The newest intact checkpoint is .*step-00000004 \(step 4\); .* run again with --resume-fallback/, what);
        return true;
      },
    );
    assert.deepEqual(snapshot(out), before, `${what}: the run folder changed`);
  }
});

test("resume: with --resume-fallback the run continues from the intact checkpoint, keeps the damaged folder and reproduces the losses", async () => {
  const out = await finishedRun();
  const want = readMetrics(path.join(out, "metrics.jsonl")).filter((r) => r.type === "train");
  fs.truncateSync(ck(out, 8, "model.safetensors"), 100);
  const logs: string[] = [];
  const r = await runTrain(cfgAt(out), { ...quiet, resume: true, resumeFallback: true, log: (m) => logs.push(m) });
  assert.equal(r.step, 8);
  assert.ok(
    logs.some((l) => /WARNING: continuing from the newest intact checkpoint .*step-00000004 \(step 4\)/.test(l)),
    logs.join("\n"),
  );
  assert.ok(fs.existsSync(path.join(out, "checkpoints", "damaged-step-00000008", "model.safetensors")));
  const got = readMetrics(path.join(out, "metrics.jsonl")).filter((r) => r.type === "train");
  assert.deepEqual(
    got.map((x) => x.loss),
    want.map((x) => x.loss),
  );
});

test("resume: a failed resume does not rewrite config.json (model mismatch found by the trainer)", async () => {
  const out = await finishedRun();
  const before = snapshot(out);
  await assert.rejects(
    runTrain(cfgAt(out, { nEmbd: 16 }), { ...quiet, resume: true, log: () => undefined }),
    /holds a model with configuration/,
  );
  assert.deepEqual(snapshot(out), before);
});

test("resume: a different --steps (learning-rate schedule) is refused with the lr change, or applied with allowScheduleChange", async () => {
  const out = await finishedRun();
  const before = snapshot(out);
  const cfg12 = cfgAt(out, { steps: 12 });
  const lr = (steps: number) => makeSchedule({ lr: 0.05, totalSteps: steps, warmupRatio: 0.25, minLrRatio: cfg12.optimizer.minLrRatio })(8);
  await assert.rejects(runTrain(cfg12, { ...quiet, resume: true, log: () => undefined }), (e: Error) => {
    assert.match(e.message, /train: resuming with a different learning-rate schedule \(train\.steps 8 → 12\)/);
    assert.ok(e.message.includes(`from ${lr(8).toExponential(3)} to ${lr(12).toExponential(3)}`), e.message);
    assert.match(e.message, /pass --change-schedule/);
    return true;
  });
  assert.deepEqual(snapshot(out), before);
  const logs: string[] = [];
  const r = await runTrain(cfg12, { ...quiet, resume: true, allowScheduleChange: true, log: (m) => logs.push(m) });
  assert.equal(r.step, 12);
  assert.ok(logs.some((l) => l.startsWith("resume: schedule changed on request (train.steps 8 → 12)")));
  const recs = readMetrics(path.join(out, "metrics.jsonl")).filter((x) => x.type === "train" && x.step > 8);
  assert.deepEqual(
    recs.map((x) => x.lr),
    [8, 9, 10, 11].map((s) => makeSchedule({ lr: 0.05, totalSteps: 12, warmupRatio: 0.25, minLrRatio: cfg12.optimizer.minLrRatio })(s)),
  );
});

test("output folders: a special or read-only location, or a file in the way, is an error naming it (no hang)", () => {
  const t0 = Date.now();
  assert.throws(
    () => ensureOutDir("/proc/qkvflow-test/run", "train.outDir (--out)"),
    /train\.outDir \(--out\): cannot use '\/proc\/qkvflow-test\/run' as the output folder: creating '\/proc\/qkvflow-test' failed \(ENOENT\)/,
  );
  assert.ok(Date.now() - t0 < 5000);
  const d = tmpDir();
  fs.writeFileSync(path.join(d, "file"), "x");
  assert.throws(() => ensureOutDir(path.join(d, "file", "run"), "--out"), /'.*file' exists and is not a folder/);
  const made = ensureOutDir(path.join(d, "a", "b", "c"), "--out");
  assert.ok(fs.statSync(made).isDirectory());
  assert.deepEqual(fs.readdirSync(made), []);
});
