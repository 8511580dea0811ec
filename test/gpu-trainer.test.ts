/**
 * The trainer on the gpu backend (gpu.js cpu mode, which runs everywhere): gradients, their accumulation and
 * AdamW run as tensors on that backend (single precision there, float64 on the cpu backend), so the per-update
 * losses and the trained weights follow the cpu backend's within float32 tolerance, and the parameters and the
 * optimiser state stay gpu tensors.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { random, setBackend, type Tensor } from "@qkvflow/autograd";
import { createGpuBackend } from "@qkvflow/autograd/gpu";
import { Trainer, readMetrics, runTrain, validateTrainConfig, type RunData } from "@qkvflow/train";
import { TinyLM, syntheticTokens, tinyConfig } from "./helpers/tiny-model.js";

const V = 32;
const TOKENS = syntheticTokens(3000, V, 7);

/** Trains the tiny model for 6 updates (2 micro-batches each, clipping and decay on) on the current backend. */
async function train(): Promise<{ losses: number[]; norms: number[]; params: Record<string, Tensor>; backend: string }> {
  const model = new TinyLM(tinyConfig({ vocabSize: V, dropout: 0 }), random.key(3));
  const cfg = validateTrainConfig({
    name: "gpu",
    seed: 5,
    model: { kind: "tiny" },
    data: { seqLen: 16 },
    optimizer: { lr: 0.05, warmupRatio: 0.2, weightDecay: 0.05, decayPatterns: ["wte\\.weight"], maxGradNorm: 0.5 },
    train: { steps: 6, batchSize: 8, gradAccum: 2, evalEvery: 0, checkpointEvery: 3, progress: "none" },
  });
  const dir = mkdtempSync(join(tmpdir(), "qkvflow-gpu-trainer-"));
  try {
    const r = await new Trainer({
      model,
      config: cfg,
      trainTokens: TOKENS,
      runDir: dir,
      decayPatterns: ["wte\\.weight"],
      log: () => undefined,
      handleSignals: false,
    }).run();
    const recs = readMetrics(r.metricsFile).filter((x) => x.type === "train");
    const params = model.parameters();
    return {
      losses: recs.map((x) => x.loss as number),
      norms: recs.map((x) => x.gradNorm as number),
      params,
      backend: params["wte.weight"]!._backend.name,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("Trainer on the gpu backend (gpu.js cpu mode) follows the cpu backend within float32 tolerance", async () => {
  const ref = await train();
  const gpu = createGpuBackend({ mode: "cpu", name: "gpu-trainer-cpu-mode" });
  setBackend(gpu);
  let got: Awaited<ReturnType<typeof train>>;
  try {
    got = await train();
  } finally {
    setBackend("cpu");
  }
  try {
    assert.equal(ref.backend, "cpu");
    assert.equal(got.backend, "gpu-trainer-cpu-mode");
    assert.equal(got.losses.length, 6);
    got.losses.forEach((l, i) =>
      assert.ok(Math.abs(l - ref.losses[i]!) <= 1e-4 * ref.losses[i]!, `update ${i + 1}: loss ${l}, expected ${ref.losses[i]}`),
    );
    got.norms.forEach((n, i) =>
      assert.ok(Math.abs(n - ref.norms[i]!) <= 1e-3 * ref.norms[i]!, `update ${i + 1}: gradient norm ${n}, expected ${ref.norms[i]}`),
    );
    assert.ok(ref.losses[5]! < ref.losses[0]!, `the loss did not fall: ${ref.losses.join(", ")}`);
    for (const [n, p] of Object.entries(ref.params)) {
      const a = p.data(),
        b = got.params[n]!.data();
      const scale = Math.max(...Array.from(a, Math.abs));
      for (let i = 0; i < a.length; i++)
        assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-4 * scale + 1e-6, `${n}[${i}] = ${b[i]} on the gpu backend, expected ${a[i]}`);
    }
  } finally {
    gpu.destroy();
  }
});

test("runTrain of the micro DiffEqFormer on the gpu backend (cpu mode): same losses and evaluation as on the cpu backend", async () => {
  const tokens = syntheticTokens(2000, 61, 3);
  const data: RunData = {
    train: { name: "train", tokens },
    eval: { name: "validation", tokens: tokens.subarray(0, 200) },
    splits: {},
    source: "synthetic",
    note: null,
  };
  const run = async () => {
    const out = mkdtempSync(join(tmpdir(), "qkvflow-gpu-dfm-"));
    try {
      const cfg = validateTrainConfig({
        name: "gpu-dfm",
        model: { preset: "diffeqformer-micro" },
        data: { seqLen: 16 },
        train: { steps: 3, batchSize: 4, gradAccum: 2, outDir: out, progress: "none", evalEvery: 0, checkpointEvery: 2 },
      });
      const r = await runTrain(cfg, { data, log: () => undefined, handleSignals: false });
      return {
        losses: readMetrics(r.metricsFile)
          .filter((x) => x.type === "train")
          .map((x) => x.loss as number),
        eval: r.lastEval!.loss,
      };
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  };
  const ref = await run();
  const gpu = createGpuBackend({ mode: "cpu", name: "gpu-trainer-dfm" });
  setBackend(gpu);
  try {
    const got = await run();
    assert.equal(got.losses.length, 3);
    got.losses.forEach((l, i) =>
      assert.ok(Math.abs(l - ref.losses[i]!) <= 1e-5 * ref.losses[i]!, `update ${i + 1}: loss ${l}, expected ${ref.losses[i]}`),
    );
    assert.ok(Math.abs(got.eval - ref.eval) <= 1e-5 * ref.eval, `evaluation loss ${got.eval}, expected ${ref.eval}`);
  } finally {
    setBackend("cpu");
    gpu.destroy();
  }
});
