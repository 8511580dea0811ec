import { test } from "node:test";
import assert from "node:assert/strict";
import { random, setBackend, tensor } from "@qkvflow/autograd";
import { createGpuBackend } from "@qkvflow/autograd/gpu";
import { drawIndex, nextTokenProbs, sampleTokens } from "../src/index.js";
import { TinyLM, tinyConfig } from "../../../test/helpers/tiny-model.js";

test("nextTokenProbs: temperature softmax with top-k (hand values)", () => {
  const l = [1, 2, 3, 0];
  const p = nextTokenProbs(l, 1, null);
  const z = Math.E + Math.E ** 2 + Math.E ** 3 + 1;
  [Math.E / z, Math.E ** 2 / z, Math.E ** 3 / z, 1 / z].forEach((v, i) => assert.ok(Math.abs(p[i]! - v) < 1e-15));
  const k2 = nextTokenProbs(l, 1, 2);
  assert.deepEqual(
    Array.from(k2).map((v) => Math.round(v * 1e12) / 1e12),
    [0, Math.round((1 / (1 + Math.E)) * 1e12) / 1e12, Math.round((Math.E / (1 + Math.E)) * 1e12) / 1e12, 0],
  );
  const hot = nextTokenProbs(l, 0.5, null); // logits doubled
  assert.ok(Math.abs(hot[2]! - Math.E ** 6 / (Math.E ** 2 + Math.E ** 4 + Math.E ** 6 + 1)) < 1e-15);
  assert.throws(() => nextTokenProbs(l, 0, null), /nextTokenProbs: temperature must be a finite number > 0, got 0/);
});

test("drawIndex inverts the CDF and skips zero-probability entries", () => {
  const p = [0.2, 0, 0.5, 0.3];
  assert.equal(drawIndex(p, 0), 0);
  assert.equal(drawIndex(p, 0.1999), 0);
  assert.equal(drawIndex(p, 0.2), 2);
  assert.equal(drawIndex(p, 0.69), 2);
  assert.equal(drawIndex(p, 0.7), 3);
  assert.equal(drawIndex([0.5, 0.5, 0], 0.9999999999999999), 1);
});

test("sampleTokens: greedy follows the argmax chain; sampling is seeded and matches the distribution", () => {
  const m = new TinyLM(tinyConfig({ vocabSize: 12, dropout: 0 }), random.key(4));
  const next = (t: number): number[] => Array.from(m.logits(tensor(Int32Array.from([t]), { shape: [1, 1], dtype: "int32" })).data());
  const argmax = (xs: number[]): number => xs.indexOf(Math.max(...xs));
  const greedy = sampleTokens(m, [3], { maxNewTokens: 6, temperature: 0 });
  let t = 3;
  greedy.forEach((g) => {
    t = argmax(next(t));
    assert.equal(g, t);
  });
  const a = sampleTokens(m, [1, 2], { maxNewTokens: 8, temperature: 1, topK: 5, key: random.key(9) });
  const b = sampleTokens(m, [1, 2], { maxNewTokens: 8, temperature: 1, topK: 5, key: random.key(9) });
  assert.deepEqual(a, b);
  // Every sampled token is among the top 5 of its step's logits.
  let prev = 2;
  for (const s of a) {
    const l = next(prev);
    const top = [...l].sort((x, y) => y - x).slice(0, 5);
    assert.ok(l[s]! >= top[4]!, `token ${s} not in the top 5`);
    prev = s;
  }
  // Frequencies of one-step samples over many keys match the probabilities (loose 5-sigma bound).
  const probs = nextTokenProbs(next(7), 1.5, 4);
  const counts = new Array<number>(12).fill(0);
  const N = 2000;
  for (let i = 0; i < N; i++)
    counts[sampleTokens(m, [7], { maxNewTokens: 1, temperature: 1.5, topK: 4, key: random.key(1000 + i) })[0]!]!++;
  probs.forEach((p, i) =>
    assert.ok(Math.abs(counts[i]! / N - p) < 5 * Math.sqrt((p * (1 - p)) / N) + 1e-9, `token ${i}: ${counts[i]! / N} vs ${p}`),
  );
  assert.equal(sampleTokens(m, [7], { maxNewTokens: 5, temperature: 0, stopId: greedyFirst(m) }).length, 1);
  assert.throws(() => sampleTokens(m, [], { maxNewTokens: 1 }), /sampleTokens: the prompt is empty/);
});

function greedyFirst(m: TinyLM): number {
  return sampleTokens(m, [7], { maxNewTokens: 1, temperature: 0 })[0]!;
}

test("sampleTokens runs on the gpu backend (gpu.js cpu mode) and draws the same tokens as on the cpu backend", () => {
  const cfg = tinyConfig({ vocabSize: 12, dropout: 0 });
  const opts = { maxNewTokens: 6, temperature: 1, topK: 5, key: random.key(11) };
  const onCpu = sampleTokens(new TinyLM(cfg, random.key(4)), [1, 2], opts);
  // the draws themselves: random.uniformValues holds what random.uniform's tensor holds
  const k = random.foldIn(random.key(11), 3);
  assert.deepEqual(
    Array.from(random.uniformValues(k, 5, { dtype: "float64" })),
    Array.from(random.uniform(k, [5], { dtype: "float64" }).data()),
  );
  setBackend(createGpuBackend({ mode: "cpu", name: "generate-gpu-cpu-mode" }));
  try {
    const onGpu = sampleTokens(new TinyLM(cfg, random.key(4)), [1, 2], opts);
    assert.deepEqual(onGpu, onCpu);
  } finally {
    setBackend("cpu");
  }
});
