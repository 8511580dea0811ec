import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { decodeSafetensors, encodeSafetensors, random, tensor, type Tensor } from "@qkvflow/autograd";
import {
  applyLoRA,
  createModel,
  discretize,
  loadModel,
  loadModelSync,
  mergeLoRA,
  modelFromSafetensors,
  modelToSafetensors,
  preset,
  saveModel,
  saveModelSync,
  CONFIG_METADATA_KEY,
  type AnyModel,
  type DiffEqFormer,
} from "@qkvflow/models";
import { perturbed } from "./helpers.js";

const ids = tensor(
  [
    [1, 5, 9, 13],
    [3, 3, 8, 1],
  ],
  { dtype: "int32" },
);

function bitsEqual(a: Record<string, Tensor>, b: Record<string, Tensor>): void {
  assert.deepEqual(Object.keys(b), Object.keys(a));
  for (const n of Object.keys(a)) {
    assert.equal(b[n].dtype, a[n].dtype, n);
    assert.deepEqual(b[n].shape, a[n].shape, n);
    const x = a[n].data(),
      y = b[n].data();
    const bx = new Uint8Array(x.buffer, x.byteOffset, x.byteLength),
      by = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
    assert.ok(bx.length === by.length && bx.every((v, i) => v === by[i]), `${n} is bit-identical`);
  }
}

function models(): [string, AnyModel][] {
  const g = createModel(preset("gpt2-micro"), random.key(1));
  g.setParameters(perturbed(g.parameters(), 1));
  const o = createModel(preset("diffeqformer-micro", { solver: { method: "rk4", steps: 2 } }), random.key(2)) as DiffEqFormer;
  o.setParameters(perturbed(o.parameters(), 2));
  const o64 = createModel(preset("diffeqformer-micro", { dtype: "float64" }), random.key(3));
  const d = discretize(o, 4);
  const lora = applyLoRA(discretize(o, 2), {
    rank: 2,
    alpha: 4,
    targets: ["h.*.attn.c_attn", "h.1.mlp.*"],
    trainable: ["wte.weight"],
    key: random.key(4),
  });
  lora.setParameters(perturbed(Object.fromEntries(lora.trainableNames().map((n) => [n, lora.parameters()[n]])), 5, 0.1));
  const merged = applyLoRA(createModel(preset("gpt2-micro"), random.key(6)), { rank: 3, key: random.key(7) });
  merged.setParameters(perturbed(Object.fromEntries(merged.trainableNames().map((n) => [n, merged.parameters()[n]])), 8, 0.1));
  mergeLoRA(merged);
  return [
    ["gpt2", g],
    ["diffeqformer", o],
    ["diffeqformer f64", o64],
    ["discretized", d],
    ["discretized + LoRA", lora],
    ["gpt2 + merged LoRA", merged],
  ];
}

test("save → load through safetensors is bit-exact for every model kind (config in __metadata__)", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qkvflow-models-"));
  try {
    for (const [label, m] of models()) {
      const file = path.join(dir, `${label.replace(/\W+/g, "_")}.safetensors`);
      await saveModel(file, m, { note: "test" });
      const back = await loadModel(file);
      assert.deepEqual(back.config, m.config, label);
      bitsEqual(m.parameters(), back.parameters());
      assert.deepEqual(Array.from(back.logits(ids).data()), Array.from(m.logits(ids).data()), `${label}: same logits`);
      assert.deepEqual(back.trainableNames(), m.trainableNames(), label);
      const meta = decodeSafetensors(new Uint8Array(fs.readFileSync(file))).metadata;
      assert.deepEqual(JSON.parse(meta[CONFIG_METADATA_KEY]), m.config);
      assert.equal(meta.note, "test");
      // sync variants and in-memory bytes agree
      saveModelSync(file, m);
      bitsEqual(m.parameters(), loadModelSync(file).parameters());
      bitsEqual(m.parameters(), modelFromSafetensors(modelToSafetensors(m)).parameters());
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("loadStateDict names missing, unexpected and mis-shaped keys", () => {
  const m = createModel(preset("gpt2-micro"), random.key(1));
  const sd = { ...m.stateDict() };
  const w = sd["h.0.attn.c_attn.weight"];
  delete sd["h.1.ln_2.bias"];
  sd["h.0.attn.c_attn.weight"] = tensor(new Float32Array(w.size), { shape: [w.shape[1], w.shape[0]] });
  sd["h.9.mlp.c_fc.weight"] = w;
  assert.throws(
    () => m.loadStateDict(sd),
    (e: Error) => {
      assert.match(e.message, /^loadStateDict: /);
      assert.match(e.message, /mis-shaped keys: 'h\.0\.attn\.c_attn\.weight' \[48, 16\] \(expected \[16, 48\]\)/);
      assert.match(e.message, /missing keys: 'h\.1\.ln_2\.bias'/);
      assert.match(e.message, /unexpected keys: 'h\.9\.mlp\.c_fc\.weight'/);
      return true;
    },
  );
  // non-strict: missing / unexpected are reported, shapes are still checked
  const ok = { ...m.stateDict() };
  delete ok["ln_f.bias"];
  ok["extra.weight"] = w;
  const before = m.parameters()["ln_f.bias"];
  const rep = m.loadStateDict(ok, { strict: false });
  assert.deepEqual(rep, { missing: ["ln_f.bias"], unexpected: ["extra.weight"] });
  assert.equal(m.parameters()["ln_f.bias"], before);
  assert.throws(
    () => m.loadStateDict({ "wte.weight": tensor([1, 2, 3]) }, { strict: false }),
    /mis-shaped keys: 'wte\.weight' \[3\] \(expected \[61, 16\]\)/,
  );
  // float64 tensors are converted into a float32 model
  const sd64: Record<string, Tensor> = {};
  for (const [n, p] of Object.entries(m.stateDict()))
    sd64[n] = tensor(Float64Array.from(p.data()), { shape: [...p.shape], dtype: "float64" });
  m.loadStateDict(sd64);
  assert.equal(m.parameters()["wte.weight"].dtype, "float32");
});

test("setParameters swaps references and validates names, shapes and dtypes", () => {
  const m = createModel(preset("diffeqformer-micro"), random.key(1));
  const t = tensor(new Float32Array(16).fill(0.5), { shape: [16] });
  m.setParameters({ "ln_f.weight": t });
  assert.equal(m.parameters()["ln_f.weight"], t);
  assert.throws(() => m.setParameters({ "block.ln_a.gamma.x": t }), /setParameters: unknown parameter 'block\.ln_a\.gamma\.x'/);
  assert.throws(() => m.setParameters({ "ln_f.bias": tensor([1, 2]) }), /'ln_f\.bias' is float32 \[2\]; expected float32 \[16\]/);
  assert.throws(
    () => m.setParameters({ "ln_f.bias": tensor(new Float64Array(16)) }),
    /'ln_f\.bias' is float64 \[16\]; expected float32 \[16\]/,
  );
});

test("loading a file without the configuration metadata explains what is expected", () => {
  const m = createModel(preset("gpt2-micro"), random.key(1));
  const dec = decodeSafetensors(modelToSafetensors(m));
  assert.equal(dec.metadata["qkvflow.format"], "qkvflow-model/1");
  const plain = encodeSafetensors(dec.tensors, { format: "pt" });
  assert.throws(() => modelFromSafetensors(plain), /no 'qkvflow\.config' metadata; expected a checkpoint written by saveModel/);
});
