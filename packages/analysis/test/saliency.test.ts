import { test } from "node:test";
import assert from "node:assert/strict";
import { random, tensor } from "@qkvflow/autograd";
import { createModel } from "@qkvflow/models";
import {
  attentionRollout,
  dynamicsOf,
  gradTimesInput,
  headAveragedAttention,
  rolloutAlpha,
  rolloutSaliency,
  type DynamicsModel,
} from "../src/index.js";
import { maxAbsDiff, naiveMatmul } from "./helpers.js";

test("attention rollout of hand-made maps equals the explicit product of (1−α)I + αA", () => {
  const T = 3;
  const A1 = [1, 0, 0, 0.25, 0.75, 0, 0.2, 0.3, 0.5];
  const A2 = [1, 0, 0, 0.6, 0.4, 0, 0.1, 0.1, 0.8];
  const alphas = [0.5, 0.25];
  const hat = (A: number[], a: number) => A.map((v, i) => (i % (T + 1) === 0 ? 1 - a : 0) + a * v);
  const want = naiveMatmul(hat(A2, alphas[1]), hat(A1, alphas[0]), T, T, T);
  const R = attentionRollout([Float64Array.from(A1), Float64Array.from(A2)], alphas, T);
  assert.ok(maxAbsDiff(R, want) < 1e-15);
  for (let i = 0; i < T; i++) assert.ok(Math.abs(R.slice(i * T, (i + 1) * T).reduce((s, v) => s + v, 0) - 1) < 1e-15);
  assert.equal(rolloutAlpha("sequential", 1), 0.5);
  assert.equal(rolloutAlpha("parallel", 0.25), 0.25);
  assert.throws(() => rolloutAlpha("parallel", 2), /rolloutAlpha: dt = 2/);
  assert.throws(() => attentionRollout([Float64Array.from(A1)], [0.5, 0.5], T), /1 maps but 2 mixing weights/);
});

/** Naive attention probabilities averaged over heads at X [T, E] with LN γ, β and fused qkv weights. */
function naiveAttention(
  x: number[][],
  g: ArrayLike<number>,
  b: ArrayLike<number>,
  W: ArrayLike<number>,
  bias: ArrayLike<number>,
  H: number,
  eps: number,
): number[][] {
  const T = x.length,
    E = x[0].length,
    D = E / H;
  const u = x.map((row) => {
    const mu = row.reduce((s, v) => s + v, 0) / E;
    const va = row.reduce((s, v) => s + (v - mu) ** 2, 0) / E;
    return row.map((v, e) => ((v - mu) / Math.sqrt(va + eps)) * g[e] + b[e]);
  });
  const proj = u.map((row) => Array.from({ length: 3 * E }, (_, c) => row.reduce((s, v, e) => s + v * W[e * 3 * E + c], bias[c])));
  const avg = Array.from({ length: T }, () => new Array<number>(T).fill(0));
  for (let h = 0; h < H; h++) {
    for (let q = 0; q < T; q++) {
      const scores = Array.from({ length: q + 1 }, (_, k) => {
        let s = 0;
        for (let d = 0; d < D; d++) s += proj[q][h * D + d] * proj[k][E + h * D + d];
        return s / Math.sqrt(D);
      });
      const m = Math.max(...scores);
      const ex = scores.map((s) => Math.exp(s - m));
      const z = ex.reduce((s, v) => s + v, 0);
      ex.forEach((v, k) => (avg[q][k] += v / z / H));
    }
  }
  return avg;
}

test("head-averaged attention maps match a naive implementation at the first step's state", () => {
  const dm = dynamicsOf(
    createModel({ kind: "gpt2", vocabSize: 12, blockSize: 8, nEmbd: 8, nHead: 2, nLayer: 2, initStd: 0.4 }, random.key(1)),
  );
  const ids = [4, 1, 7, 7, 2];
  const T = ids.length,
    E = 8;
  const maps = headAveragedAttention(dm, ids);
  assert.equal(maps.length, 2);
  const x0 = dm.embed(ids).data();
  const x = Array.from({ length: T }, (_, i) => Array.from(x0.slice(i * E, (i + 1) * E)));
  const w = dm.stepWeights()[0];
  const want = naiveAttention(x, w.lnAttn.weight.data(), w.lnAttn.bias.data(), w.qkvW.data(), w.qkvB!.data(), 2, dm.layerNormEps);
  assert.ok(maxAbsDiff(maps[0], want.flat()) < 1e-12);
  for (const m of maps) {
    for (let q = 0; q < T; q++) {
      assert.ok(Math.abs(m.slice(q * T, (q + 1) * T).reduce((s, v) => s + v, 0) - 1) < 1e-12);
      for (let k = q + 1; k < T; k++) assert.equal(m[q * T + k], 0);
    }
  }
  const s = rolloutSaliency(dm, ids);
  assert.equal(s.length, T);
  assert.ok(Math.abs(s.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  const R = attentionRollout(maps, [0.5, 0.5], T);
  assert.ok(maxAbsDiff(s, R.slice((T - 1) * T)) < 1e-15);
});

test("gradient × input: per-token values equal finite differences of log p(target) under scaling that token's embedding", () => {
  const dm = dynamicsOf(
    createModel(
      { kind: "diffeqformer", vocabSize: 12, blockSize: 8, nEmbd: 8, nHead: 2, nLayer: 3, timeEmbedDim: 3, sinusoidalDim: 2, initStd: 0.4 },
      random.key(2),
    ),
  );
  const ids = [3, 9, 0, 5];
  const T = ids.length,
    E = 8;
  const gi = gradTimesInput(dm, ids);
  const x0 = dm.embed(ids);
  // log p(target) at the query as a function of a scale on token k's embedding: d/dε at ε = 0 is Σ_e x·∂/∂x.
  const logp = (k: number, eps: number): number => {
    const d = Float64Array.from(x0.data());
    for (let e = 0; e < E; e++) d[k * E + e] *= 1 + eps;
    const scaled: DynamicsModel = { ...dm, embed: () => tensor(d, { shape: [1, T, E], dtype: "float64" }) };
    return gradTimesInput(scaled, ids, { target: gi.target }).logProb;
  };
  const h = 1e-5;
  for (let k = 0; k < T; k++) {
    const fd = (logp(k, h) - logp(k, -h)) / (2 * h);
    assert.ok(Math.abs(fd - gi.signed[k]) < 1e-7, `token ${k}: fd ${fd} vs ${gi.signed[k]}`);
  }
  assert.deepEqual(gi.abs, gi.signed.map(Math.abs));
  // the default target is the top prediction at the query
  const lp = Array.from({ length: 12 }, (_, v) => gradTimesInput(dm, ids, { target: v }).logProb);
  assert.equal(gi.target, lp.indexOf(Math.max(...lp)));
  assert.throws(() => gradTimesInput(dm, ids, { target: 12 }), /gradTimesInput: target 12 is outside \[0, 12\)/);
});
