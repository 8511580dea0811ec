import { test } from "node:test";
import assert from "node:assert/strict";
import { DiffEqFormer, discretize } from "@qkvflow/models";
import {
  evaluatePerplexity,
  loadCheckpoint,
  loadModelFrom,
  readMetrics,
  runFinetune,
  runTrain,
  validateTrainConfig,
  type RunData,
  type TrainConfig,
} from "../src/index.js";
import { syntheticTokens } from "../../../test/helpers/tiny-model.js";
import { tmpDir } from "../../../test/helpers/tmp.js";

const V = 61; // the diffeqformer-micro vocabulary
const data: RunData = {
  train: { name: "train", tokens: syntheticTokens(3000, V, 5) },
  eval: { name: "validation", tokens: syntheticTokens(300, V, 6) },
  splits: {},
  source: "synthetic",
  note: null,
};
const target: RunData = {
  ...data,
  train: { name: "train", tokens: syntheticTokens(3000, V, 7) },
  eval: { name: "test", tokens: syntheticTokens(300, V, 8) },
};
const quiet = { log: () => undefined, progress: "none", handleSignals: false } as const;

function cfg(over: Record<string, Record<string, unknown>>, outDir: string): TrainConfig {
  return validateTrainConfig({
    name: "ft",
    seed: 1,
    model: { preset: "diffeqformer-micro" },
    data: { seqLen: 16 },
    optimizer: { lr: 0.01, warmupRatio: 0 },
    train: { steps: 4, batchSize: 4, evalEvery: 0, checkpointEvery: 2, outDir, progress: "none" },
    ...over,
    ...(over.train ? { train: { steps: 4, batchSize: 4, evalEvery: 0, checkpointEvery: 2, outDir, progress: "none", ...over.train } } : {}),
  });
}

test("finetune: M = L reproduces the pretrained perplexity before training; other depths, full and LoRA", {
  timeout: 120_000,
}, async () => {
  const pre = tmpDir();
  const p = await runTrain(cfg({}, pre), { ...quiet, data });
  assert.equal(p.step, 4);
  const src = loadModelFrom(pre).model;
  const srcPpl = evaluatePerplexity(src, target.eval.tokens, { seqLen: 16, batchSize: 4 }).ppl;

  const run = async (
    layers: number,
    mode: "full" | "lora",
  ): Promise<{ dir: string; before: number; r: Awaited<ReturnType<typeof runFinetune>> }> => {
    const dir = tmpDir();
    const c = cfg({ finetune: { checkpoint: pre, layers, mode, loraRank: 2, loraAlpha: 4 } }, dir);
    const r = await runFinetune(c, { ...quiet, data: target });
    const before = readMetrics(r.metricsFile).find((x) => x.type === "eval" && x.step === 0)!.ppl as number;
    return { dir, before, r };
  };
  const same = await run(3, "full");
  assert.ok(Math.abs(same.before - srcPpl) < 1e-4 * srcPpl, `M = L: ${same.before} vs ${srcPpl}`);
  assert.equal((same.r.modelConfig as { kind: string }).kind, "discretized");
  assert.ok(same.r.lastEval!.ppl < same.before, "fine-tuning lowers the target perplexity");

  const deeper = await run(5, "full");
  assert.equal((deeper.r.modelConfig as { nLayer: number }).nLayer, 5);
  assert.equal(deeper.r.trainableParameters, deeper.r.totalParameters);

  const lora = await run(5, "lora");
  assert.ok(
    lora.r.trainableParameters < lora.r.totalParameters / 2,
    `LoRA trains ${lora.r.trainableParameters} of ${lora.r.totalParameters}`,
  );
  const ck = loadCheckpoint(lora.dir);
  const names = Object.keys(ck.model);
  assert.ok(names.some((n) => n.endsWith(".lora_A")) && names.some((n) => n.endsWith(".lora_B")));
  // Frozen base weights are exactly those of the discretised model before fine-tuning.
  const frozen = "h.0.attn.c_attn.weight";
  const source = loadModelFrom(pre).model;
  assert.ok(source instanceof DiffEqFormer);
  const reference = discretize(source, 5).parameters()[frozen]!;
  assert.deepEqual(Array.from(ck.model[frozen]!.data()), Array.from(reference.data()));
  assert.notDeepEqual(
    Array.from(loadCheckpoint(deeper.dir).model[frozen]!.data()),
    Array.from(reference.data()),
    "full fine-tuning changes it",
  );
  assert.equal(ck.optimizer.metadata.names!.includes(frozen), false, "no optimiser state for frozen weights");
  assert.ok(ck.optimizer.metadata.names!.includes("wte.weight"), "embeddings stay trainable");
});

test("finetune: errors for missing source and impossible depth changes", async () => {
  await assert.rejects(
    runFinetune(cfg({}, tmpDir()), { ...quiet, data: target }),
    /finetune: finetune.checkpoint is null; expected the pretrained run folder or checkpoint \(--from PATH\)/,
  );
  const pre = tmpDir();
  await runTrain(cfg({ model: { preset: "gpt2-micro" } }, pre), { ...quiet, data });
  await assert.rejects(
    runFinetune(cfg({ finetune: { checkpoint: pre, layers: 5 } }, tmpDir()), { ...quiet, data: target }),
    /finetune: finetune.layers = 5, but the pretrained model is a 'gpt2' with 2 layers; only a DiffEqFormer can change depth/,
  );
});
