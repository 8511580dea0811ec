import { test } from "node:test";
import assert from "node:assert/strict";
import { random, tensor, type Tensor } from "@qkvflow/autograd";
import { applyLoRA, createModel, discretize, eulerGrid, mergeLoRA, type AnyModel, type DiffEqFormer } from "@qkvflow/models";
import { dynamicsOf, logitsOf, trajectory } from "../src/index.js";
import { maxAbsDiff } from "./helpers.js";

const ids = [5, 3, 9, 1, 0, 7, 2];

function modelLogits(m: AnyModel): Float32Array | Float64Array {
  return m.logits(tensor(new Int32Array(ids), { shape: [1, ids.length], dtype: "int32" }), { training: false }).data() as Float32Array;
}

/** Perturbs every parameter a little so nothing sits at its (often zero) init value. */
function jiggle(m: AnyModel, seed: number, std = 0.05): void {
  const p = m.parameters();
  const next: Record<string, Tensor> = {};
  Object.entries(p).forEach(([n, t], i) => {
    const noise = random.normal(random.foldIn(random.key(seed), i), [...t.shape], { dtype: t.dtype as "float32" | "float64", std }).data();
    const d = t.data();
    const out = t.dtype === "float64" ? new Float64Array(t.size) : new Float32Array(t.size);
    for (let k = 0; k < t.size; k++) out[k] = d[k] + noise[k];
    next[n] = tensor(out, { shape: [...t.shape], dtype: t.dtype });
  });
  m.setParameters(next);
}

const base = { vocabSize: 12, blockSize: 8, nEmbd: 8, nHead: 2 };

test("the dynamics view reproduces each model's own logits (GPT-2, DiffEqFormer, discretised)", () => {
  const g = createModel({ kind: "gpt2", ...base, nLayer: 3 }, random.key(1));
  const o = createModel({ kind: "diffeqformer", ...base, nLayer: 4, timeEmbedDim: 3, sinusoidalDim: 2 }, random.key(2));
  jiggle(g, 10);
  jiggle(o, 11);
  const d = discretize(o as DiffEqFormer, 6);
  for (const m of [g, o, d]) {
    const dm = dynamicsOf(m);
    const got = logitsOf(dm, ids).data();
    const want = modelLogits(m);
    // the model runs in float32, the view in float64
    assert.ok(maxAbsDiff(got, want) < 2e-4, `${m.config.kind}: ${maxAbsDiff(got, want)}`);
    assert.equal(trajectory(dm, ids).length, dm.steps.length + 1);
  }
  assert.equal(dynamicsOf(g).arch, "sequential");
  assert.deepEqual(
    dynamicsOf(g).steps.map((s) => [s.t, s.dt]),
    [
      [1 / 3, 1],
      [2 / 3, 1],
      [1, 1],
    ],
  );
  assert.deepEqual(
    dynamicsOf(o).steps,
    eulerGrid(4).map((t, index) => ({ index, t, dt: 1 / 4 })),
  );
  assert.deepEqual(
    dynamicsOf(d).steps.map((s) => s.dt),
    new Array(6).fill(1 / 6),
  );
  // A DiffEqFormer analysed on another grid equals its discretisation at that depth (zero-shot depth change).
  const o6 = logitsOf(dynamicsOf(o, { steps: 6 }), ids).data();
  assert.ok(maxAbsDiff(o6, modelLogits(d)) < 2e-4);
  assert.ok(maxAbsDiff(o6, modelLogits(o)) > 1e-6, "the grid must matter for this check to mean anything");
});

test("unmerged LoRA adapters are included in the analysed weights", () => {
  const g = createModel({ kind: "gpt2", ...base, nLayer: 2 }, random.key(3));
  applyLoRA(g, { rank: 2, alpha: 4, key: random.key(4) });
  jiggle(g, 12, 0.2); // makes B ≠ 0 so the adapters change the output
  const before = dynamicsOf(g);
  assert.ok(maxAbsDiff(logitsOf(before, ids).data(), modelLogits(g)) < 2e-4);
  mergeLoRA(g);
  assert.ok(maxAbsDiff(logitsOf(dynamicsOf(g), ids).data(), logitsOf(before, ids).data()) < 2e-4);
});

test("dynamics view errors name the function and the expected input", () => {
  const g = createModel({ kind: "gpt2", ...base, nLayer: 1 }, random.key(5));
  const dm = dynamicsOf(g);
  assert.throws(() => dm.embed([1, 12]), /embed: token id 12 at position 1 is outside \[0, 12\)/);
  assert.throws(() => dm.embed(new Array(9).fill(0)), /embed: sequence length 9 is outside 1\.\.8/);
  assert.throws(
    () => dynamicsOf(g, { steps: 4 }),
    /option steps = 4 applies only to a DiffEqFormer; this model is 'gpt2' with fixed layers/,
  );
  const o = createModel({ kind: "diffeqformer", ...base, nLayer: 2, timeEmbedDim: 3, sinusoidalDim: 2 }, random.key(6));
  assert.throws(() => dynamicsOf(o, { steps: 0 }), /eulerGrid: n = 0/);
});
