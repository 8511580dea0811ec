/**
 * Pieces of the training loop: the SIGINT guard, and what an update reads back from a backend other than the CPU
 * one (the gradients, their accumulation and the optimiser state stay on it; only the mean loss and the gradient
 * norm come back).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { CpuBackend, random, setBackend, type Backend, type TensorInfo, type TypedArray } from "@qkvflow/autograd";
import { InterruptGuard } from "../src/interrupt.js";
import { Trainer, validateTrainConfig } from "../src/index.js";
import { TinyLM, syntheticTokens, tinyConfig } from "../../../test/helpers/tiny-model.js";
import { tmpDir } from "../../../test/helpers/tmp.js";

test("InterruptGuard: the first SIGINT raises the flag, the second exits with 130; remove stops listening", () => {
  const lines: string[] = [];
  const exits: number[] = [];
  const before = process.listenerCount("SIGINT");
  const g = new InterruptGuard(
    (l) => lines.push(l),
    (c) => exits.push(c),
  )
    .install()
    .install();
  assert.equal(process.listenerCount("SIGINT"), before + 1, "installed once");
  process.emit("SIGINT");
  assert.equal(g.interrupted, true);
  assert.deepEqual(exits, []);
  assert.match(lines[0]!, /interrupt: finishing this update and writing a checkpoint/);
  process.emit("SIGINT");
  assert.deepEqual(exits, [130]);
  assert.match(lines[1]!, /second interrupt: exiting without a checkpoint/);
  g.remove();
  g.remove();
  assert.equal(process.listenerCount("SIGINT"), before);
});

/**
 * A backend other than the CPU one (not a CpuBackend, so the optimiser takes its tensor-op path) that computes
 * with the CPU kernels and records every read-back (dtype and number of elements).
 */
function readCountingBackend(): { backend: Backend; reads: { dtype: string; size: number }[] } {
  const cpu = new CpuBackend();
  const reads: { dtype: string; size: number }[] = [];
  const backend = new Proxy({} as Backend, {
    get(_, key) {
      if (key === "name") return "cpu-read-counting";
      if (key === "read") {
        return (x: TensorInfo): TypedArray => {
          reads.push({ dtype: x.dtype, size: x.shape.reduce((a, b) => a * b, 1) });
          return cpu.read(x);
        };
      }
      const v = Reflect.get(cpu, key) as unknown;
      return typeof v === "function" ? v.bind(cpu) : v;
    },
    has: (_, key) => key in cpu,
  });
  return { backend, reads };
}

test("on a non-CPU backend an update reads back two float scalars (mean loss, gradient norm) and nothing else of float type", async () => {
  const be = readCountingBackend();
  setBackend(be.backend);
  try {
    const V = 32;
    const model = new TinyLM(tinyConfig({ vocabSize: V, dropout: 0.1 }), random.key(4));
    const cfg = validateTrainConfig({
      name: "reads",
      seed: 2,
      model: { kind: "tiny" },
      data: { seqLen: 16 },
      optimizer: { lr: 0.05, weightDecay: 0.01, decayPatterns: ["wte\\.weight"], maxGradNorm: 0.5 },
      train: { steps: 5, batchSize: 8, gradAccum: 2, evalEvery: 0, checkpointEvery: 0, progress: "none" },
    });
    const perUpdate: { dtype: string; size: number }[][] = [];
    await new Trainer({
      model,
      config: cfg,
      trainTokens: syntheticTokens(3000, V, 5),
      runDir: tmpDir(),
      decayPatterns: ["wte\\.weight"],
      log: () => undefined,
      handleSignals: false,
      afterStep: (i) => {
        // updates before the last one (the last one also evaluates and checkpoints)
        if (i.step < 5) perUpdate.push(be.reads.filter((r) => r.dtype === "float32" || r.dtype === "float64"));
        be.reads.length = 0;
      },
    }).run();
    assert.equal(perUpdate.length, 4);
    for (const [i, reads] of perUpdate.entries()) {
      assert.deepEqual(
        reads,
        [
          { dtype: "float64", size: 1 },
          { dtype: "float64", size: 1 },
        ],
        `update ${i + 1} read ${JSON.stringify(reads)}`,
      );
    }
  } finally {
    setBackend("cpu");
  }
});
