import { test } from "node:test";
import assert from "node:assert/strict";
import { random, tensor } from "@qkvflow/autograd";
import { createModel, preset, presets } from "@qkvflow/models";
import { maxAbsDiff } from "./helpers.js";

const ids = tensor(
  [
    [1, 5, 9, 13],
    [3, 3, 8, 1],
  ],
  { dtype: "int32" },
);

test("init is deterministic from the key and depends only on (key, parameter name)", () => {
  for (const name of ["gpt2-micro", "diffeqformer-micro"]) {
    const a = createModel(presets[name], random.key(42)).parameters();
    const b = createModel(presets[name], random.key(42)).parameters();
    const c = createModel(presets[name], random.key(43)).parameters();
    for (const n of Object.keys(a)) assert.deepEqual(Array.from(a[n].data()), Array.from(b[n].data()), n);
    assert.ok(maxAbsDiff(a["wte.weight"].data(), c["wte.weight"].data()) > 0);
  }
  // adding a layer leaves the other layers' initial values unchanged
  const two = createModel(preset("gpt2-micro", { nLayer: 2 }), random.key(7)).parameters();
  const three = createModel(preset("gpt2-micro", { nLayer: 3 }), random.key(7)).parameters();
  assert.deepEqual(Array.from(two["h.1.mlp.c_fc.weight"].data()), Array.from(three["h.1.mlp.c_fc.weight"].data()));
});

test("parameters() lists dotted names in a deterministic order", () => {
  const names = Object.keys(createModel(presets["gpt2-micro"], random.key(1)).parameters());
  assert.deepEqual(names.slice(0, 8), [
    "wte.weight",
    "wpe.weight",
    "h.0.ln_1.weight",
    "h.0.ln_1.bias",
    "h.0.attn.c_attn.weight",
    "h.0.attn.c_attn.bias",
    "h.0.attn.c_proj.weight",
    "h.0.attn.c_proj.bias",
  ]);
  assert.deepEqual(names.slice(-2), ["ln_f.weight", "ln_f.bias"]);
  const ode = Object.keys(createModel(presets["diffeqformer-micro"], random.key(1)).parameters());
  assert.deepEqual(ode.slice(2, 8), [
    "block.ln_a.gamma",
    "block.ln_a.beta",
    "block.ln_a.lin1.weight",
    "block.ln_a.lin1.bias",
    "block.ln_a.lin2.weight",
    "block.ln_a.lin2.bias",
  ]);
});

test("train / eval mode switches dropout; training needs a key and is reproducible from it", () => {
  for (const name of ["gpt2-micro", "diffeqformer-micro"]) {
    const m = createModel(preset(name, { embdPdrop: 0.2, residPdrop: 0.2 }), random.key(3));
    const evalOut = m.logits(ids).data();
    assert.deepEqual(Array.from(m.logits(ids).data()), Array.from(evalOut), "eval mode (the default) is deterministic");
    assert.throws(() => m.logits(ids, { training: true }), /needs an RNG key/);
    const k1 = m.logits(ids, { training: true, key: random.key(1) }).data();
    const k1b = m.logits(ids, { training: true, key: random.key(1) }).data();
    const k2 = m.logits(ids, { training: true, key: random.key(2) }).data();
    assert.deepEqual(Array.from(k1), Array.from(k1b));
    assert.ok(maxAbsDiff(k1, k2) > 0 && maxAbsDiff(k1, evalOut) > 0);
    m.train();
    assert.ok(m.namedModules().every(([, s]) => s.training));
    assert.deepEqual(Array.from(m.logits(ids, { key: random.key(1) }).data()), Array.from(k1));
    assert.deepEqual(Array.from(m.logits(ids, { training: false }).data()), Array.from(evalOut));
    m.eval();
    assert.deepEqual(Array.from(m.logits(ids).data()), Array.from(evalOut));
  }
});
