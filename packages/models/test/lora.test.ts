import { test } from "node:test";
import assert from "node:assert/strict";
import { random, sub, mul, tensor, valueAndGrad, type Tensor } from "@qkvflow/autograd";
import {
  applyLoRA,
  countParameters,
  createModel,
  discretize,
  linearLayers,
  mergeLoRA,
  preset,
  unmergeLoRA,
  type DiffEqFormer,
} from "@qkvflow/models";
import { maxAbsDiff, perturbed } from "./helpers.js";

const x = tensor(
  [
    [1, 5, 9, 13, 2],
    [3, 3, 8, 1, 0],
  ],
  { dtype: "int32" },
);
const y = tensor(
  [
    [5, 9, 13, 2, 4],
    [3, 8, 1, 0, 60],
  ],
  { dtype: "int32" },
);

function source(dtype: "float32" | "float64" = "float64"): DiffEqFormer {
  const m = createModel(preset("diffeqformer-micro", { dtype }), random.key(3)) as DiffEqFormer;
  m.setParameters(perturbed(m.parameters(), 9, 0.3));
  return m;
}

test("LoRA on the discretised model: B = 0 start, adapters only are trainable, counts include them", () => {
  const d = discretize(source(), 4);
  const before = d.logits(x).data();
  applyLoRA(d, { rank: 2, alpha: 8, targets: ["h.*.attn.c_attn", "h.*.mlp.c_fc"], trainable: ["wte.weight"], key: random.key(1) });
  assert.deepEqual(Array.from(d.logits(x).data()), Array.from(before), "zero-initialised B leaves the output unchanged");
  const names = d.trainableNames();
  assert.equal(names.length, 4 * 2 * 2 + 1);
  assert.ok(names.includes("h.3.mlp.c_fc.lora_B") && names.includes("wte.weight") && !names.includes("h.0.attn.c_attn.weight"));
  const p = d.parameters();
  assert.deepEqual(p["h.0.attn.c_attn.lora_A"].shape, [16, 2]);
  assert.deepEqual(p["h.0.attn.c_attn.lora_B"].shape, [2, 48]);
  assert.ok(Array.from(p["h.0.attn.c_attn.lora_B"].data()).every((v) => v === 0));
  assert.ok(Array.from(p["h.0.attn.c_attn.lora_A"].data()).some((v) => v !== 0));
  assert.equal(countParameters(d.config), d.numParameters());
  assert.deepEqual(d.config.lora, {
    rank: 2,
    alpha: 8,
    targets: ["h.*.attn.c_attn", "h.*.mlp.c_fc"],
    trainable: ["wte.weight"],
    initStd: 0.02,
    merged: false,
  });
});

test("an adapted layer computes x·(W + (alpha/r)·A·B) + b; merge gives the same output and unmerge restores W exactly", () => {
  const d = discretize(source(), 3);
  applyLoRA(d, { rank: 3, alpha: 6, key: random.key(2) });
  assert.equal(linearLayers(d).filter(([, l]) => l.hasAdapter).length, 12, "default targets: every Linear layer");
  d.setParameters(perturbed(Object.fromEntries(d.trainableNames().map((n) => [n, d.parameters()[n]])), 4, 0.2));
  const out = d.logits(x).data();
  // reference: a plain copy of the model whose weights are merged by hand
  const plain = discretize(source(), 3);
  const p = d.parameters();
  const merged: Record<string, Tensor> = {};
  for (const [n] of linearLayers(plain)) {
    const W = p[`${n}.weight`],
      A = p[`${n}.lora_A`].data(),
      B = p[`${n}.lora_B`].data();
    const [I, O] = W.shape;
    const w = Float64Array.from(W.data());
    for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) for (let k = 0; k < 3; k++) w[i * O + o] += 2 * A[i * 3 + k] * B[k * O + o];
    merged[`${n}.weight`] = tensor(w, { shape: [I, O], dtype: "float64" });
  }
  plain.setParameters(merged);
  assert.ok(maxAbsDiff(out, plain.logits(x).data()) < 1e-10);
  const baseW = d.parameters()["h.2.mlp.c_proj.weight"];
  mergeLoRA(d);
  assert.equal(d.config.lora?.merged, true);
  assert.ok(maxAbsDiff(d.parameters()["h.2.mlp.c_proj.weight"].data(), merged["h.2.mlp.c_proj.weight"].data()) < 1e-12);
  assert.ok(maxAbsDiff(d.logits(x).data(), out) < 1e-10);
  unmergeLoRA(d);
  assert.equal(d.parameters()["h.2.mlp.c_proj.weight"], baseW);
  assert.deepEqual(Array.from(d.logits(x).data()), Array.from(out));
});

test("training the adapters with the trainer's pattern leaves the frozen base untouched and lowers the loss", () => {
  const d = discretize(source("float32"), 2);
  applyLoRA(d, { rank: 4, alpha: 8, targets: ["h.*"], key: random.key(5) });
  const frozen = { ...d.parameters() };
  const lossOf = () => d.loss(x, y).item();
  const start = lossOf();
  for (let step = 0; step < 15; step++) {
    const all = d.parameters();
    const trainable = Object.fromEntries(d.trainableNames().map((n) => [n, all[n]]));
    const [, g] = valueAndGrad((q: Record<string, Tensor>) => {
      d.setParameters({ ...all, ...q });
      return d.loss(x, y, { training: true, key: random.key(step) });
    })(trainable) as [Tensor, Record<string, Tensor>];
    assert.deepEqual(Object.keys(g), d.trainableNames());
    d.setParameters(Object.fromEntries(Object.entries(trainable).map(([n, v]) => [n, sub(v, mul(g[n], 0.5))])));
  }
  const after = d.parameters();
  for (const n of Object.keys(frozen)) if (!n.includes("lora_")) assert.equal(after[n], frozen[n], `${n} is frozen`);
  const end = lossOf();
  assert.ok(end < start - 0.05, `loss ${start} → ${end}`);
});

test("LoRA errors: no matching layer (the Linear layers are listed), applied twice, merge without adapters", () => {
  const g = createModel(preset("gpt2-micro"), random.key(1));
  assert.throws(
    () => applyLoRA(g, { targets: ["h.*.attn.q_proj"], key: random.key(1) }),
    /match no Linear layer; the Linear layers are h\.0\.attn\.c_attn, h\.0\.attn\.c_proj/,
  );
  assert.throws(() => mergeLoRA(g), /mergeLoRA: the model has no LoRA adapters/);
  applyLoRA(g, { targets: ["h.0.*"], key: random.key(1) });
  assert.throws(() => applyLoRA(g, { key: random.key(1) }), /already has LoRA adapters/);
  assert.throws(
    () => applyLoRA(createModel(preset("gpt2-micro"), random.key(1)), { rank: 0, key: random.key(1) }),
    /lora\.rank is 0; expected a positive integer/,
  );
});
