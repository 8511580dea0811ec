import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { decodeSafetensors, encodeSafetensors, random, tensor } from "@qkvflow/autograd";
import { createModel, gpt2FromHuggingFace, presets, type Gpt2Model } from "@qkvflow/models";
import { maxAbsDiff, perturbed, refGpt2Logits } from "./helpers.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, "..", "fixtures");

interface Fixture {
  config: { vocab_size: number; n_positions: number; n_embd: number; n_head: number; n_layer: number };
  input_ids: number[][];
  logits: number[][][];
}

function loadFixture(): { bytes: Uint8Array; fx: Fixture } {
  const bytes = new Uint8Array(fs.readFileSync(path.join(fixtures, "gpt2-tiny-hf.safetensors")));
  const fx = JSON.parse(fs.readFileSync(path.join(fixtures, "gpt2-tiny-hf.json"), "utf8")) as Fixture;
  return { bytes, fx };
}

test("a Hugging Face GPT-2 checkpoint loads and its logits match the NumPy reference", () => {
  const { bytes, fx } = loadFixture();
  const model = gpt2FromHuggingFace(bytes, { nHead: fx.config.n_head });
  const c = model.config;
  assert.deepEqual(
    [c.vocabSize, c.blockSize, c.nEmbd, c.nHead, c.nLayer],
    [fx.config.vocab_size, fx.config.n_positions, fx.config.n_embd, 2, fx.config.n_layer],
  );
  const ids = tensor(fx.input_ids, { dtype: "int32" });
  const got = model.logits(ids);
  assert.deepEqual(got.shape, [fx.input_ids.length, fx.input_ids[0].length, fx.config.vocab_size]);
  const want = fx.logits.flat(2);
  const err = maxAbsDiff(got.data(), want);
  assert.ok(err < 1e-5, `float32 max |Δlogit| = ${err}`);
  // float64 build of the same checkpoint agrees far more tightly (the weights are exactly the stored float32 values)
  const m64 = gpt2FromHuggingFace(bytes, { nHead: 2, dtype: "float64" });
  const err64 = maxAbsDiff(m64.logits(ids).data(), want);
  assert.ok(err64 < 1e-9, `float64 max |Δlogit| = ${err64}`);
});

test("HF names without the transformer. prefix load too; the head count can come from config.json", () => {
  const { bytes, fx } = loadFixture();
  const dec = decodeSafetensors(bytes);
  const plain: typeof dec.tensors = {};
  for (const [n, t] of Object.entries(dec.tensors)) if (n !== "lm_head.weight") plain[n.replace(/^transformer\./, "")] = t;
  const model = gpt2FromHuggingFace(encodeSafetensors(plain), { hfConfig: { n_head: 2, layer_norm_epsilon: 1e-5 } });
  const err = maxAbsDiff(model.logits(tensor(fx.input_ids, { dtype: "int32" })).data(), fx.logits.flat(2));
  assert.ok(err < 1e-5, `max |Δlogit| = ${err}`);
});

test("HF loading reports missing / unexpected tensors and an untied lm_head by name", () => {
  const { bytes } = loadFixture();
  const dec = decodeSafetensors(bytes);
  const missing = { ...dec.tensors };
  delete missing["transformer.h.1.mlp.c_fc.bias"];
  assert.throws(() => gpt2FromHuggingFace({ tensors: missing, metadata: {} }, { nHead: 2 }), /missing keys: 'h\.1\.mlp\.c_fc\.bias'/);
  const extra = { ...dec.tensors, "transformer.h.0.attn.rotary": dec.tensors["transformer.ln_f.bias"] };
  assert.throws(() => gpt2FromHuggingFace({ tensors: extra, metadata: {} }, { nHead: 2 }), /unexpected keys: 'h\.0\.attn\.rotary'/);
  const lm = dec.tensors["lm_head.weight"];
  const other = { ...dec.tensors, "lm_head.weight": { ...lm, data: (lm.data as Float32Array).map((v) => v + 1) } };
  assert.throws(() => gpt2FromHuggingFace({ tensors: other, metadata: {} }, { nHead: 2 }), /lm_head\.weight' differs from 'wte\.weight'/);
  assert.throws(() => gpt2FromHuggingFace(bytes), /cannot infer the number of heads for width 16/);
});

test("GPT-2 forward equals a naive reference on perturbed weights, and the loss is the mean cross-entropy", () => {
  const m = createModel({ ...presets["gpt2-micro"], dtype: "float64" }, random.key(3)) as Gpt2Model;
  m.setParameters(perturbed(m.parameters(), 11, 0.4));
  const ids = [
    [3, 14, 15, 9, 2, 6],
    [5, 35, 8, 9, 7, 9],
  ];
  const x = tensor(ids, { dtype: "int32" });
  const got = m.logits(x);
  const p = m.parameters();
  const want = ids.map((s) => refGpt2Logits(p, s, m.config.nLayer, m.config.nHead)).flat(2);
  assert.ok(maxAbsDiff(got.data(), want) < 1e-10);
  const targets = [
    [14, 15, 9, 2, 6, 5],
    [35, 8, 9, 7, 9, 3],
  ];
  const V = m.config.vocabSize;
  let nll = 0;
  for (let b = 0; b < 2; b++)
    for (let t = 0; t < 6; t++) {
      const row = want.slice((b * 6 + t) * V, (b * 6 + t + 1) * V);
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((s, v) => s + Math.exp(v - mx), 0));
      nll += lse - row[targets[b][t]];
    }
  const loss = m.loss(x, tensor(targets, { dtype: "int32" })).item();
  assert.ok(Math.abs(loss - nll / 12) < 1e-10, `loss ${loss} vs ${nll / 12}`);
});

test("GPT-2 init follows the documented scheme (N(0, 0.02²), residual projections 0.02/√(2L), positions 0.01)", () => {
  const c = { ...presets["gpt2-micro"], nEmbd: 64, nHead: 4, nLayer: 8, vocabSize: 500, blockSize: 256 };
  const p = createModel(c, random.key(5)).parameters();
  const std = (n: string) => {
    const d = p[n].data();
    let s = 0;
    for (const v of d) s += v * v;
    return Math.sqrt(s / d.length);
  };
  const near = (got: number, want: number) => assert.ok(Math.abs(got / want - 1) < 0.05, `std ${got} vs ${want}`);
  near(std("wte.weight"), 0.02);
  near(std("wpe.weight"), 0.01);
  near(std("h.0.attn.c_attn.weight"), 0.02);
  near(std("h.3.mlp.c_fc.weight"), 0.02);
  near(std("h.2.attn.c_proj.weight"), 0.02 / 4);
  near(std("h.7.mlp.c_proj.weight"), 0.02 / 4);
  assert.equal(std("h.0.attn.c_attn.bias"), 0);
  assert.ok(Array.from(p["h.1.ln_2.weight"].data()).every((v) => v === 1));
});

test("inputs are checked: dtype, rank, length and token range", () => {
  const m = createModel(presets["gpt2-micro"], random.key(0));
  assert.throws(() => m.logits(tensor([[1, 2]])), /inputs are float32 \[1, 2\]; expected int32 token ids \[B, T\]/);
  assert.throws(() => m.logits(tensor([[1, 99]], { dtype: "int32" })), /token id 99 at flat position 1 is outside \[0, 61\)/);
  const long = tensor([Array.from({ length: 17 }, () => 1)], { dtype: "int32" });
  assert.throws(() => m.logits(long), /sequence length 17 is outside 1\.\.16/);
  assert.throws(
    () => m.loss(tensor([[1, 2]], { dtype: "int32" }), tensor([[1]], { dtype: "int32" })),
    /targets are int32 \[1, 1\]; expected int32 \[1, 2\]/,
  );
});

test("loss (fused projection + cross-entropy) equals crossEntropy of logits in float32, with ignored targets, value and gradients", async () => {
  const { crossEntropy, valueAndGrad } = await import("@qkvflow/autograd");
  const m = createModel({ ...presets["gpt2-micro"], vocabSize: 211 }, random.key(9));
  const x = tensor(
    [
      [5, 17, 3, 99, 0, 42],
      [7, 7, 150, 2, 9, 1],
    ],
    { dtype: "int32" },
  );
  const y = tensor(
    [
      [17, 3, 99, -100, 42, 8],
      [7, 150, 2, 9, 1, -100],
    ],
    { dtype: "int32" },
  );
  const params = m.parameters();
  const f = (fused: boolean) => (p: typeof params) => {
    m.setParameters(p);
    return fused ? m.loss(x, y) : crossEntropy(m.logits(x), y);
  };
  const [l1, g1] = valueAndGrad(f(true))(params);
  const [l2, g2] = valueAndGrad(f(false))(params);
  assert.ok(Math.abs(l1.item() - l2.item()) < 1e-5 * Math.abs(l2.item()), `loss ${l1.item()} vs ${l2.item()}`);
  for (const k of Object.keys(params)) {
    const a = (g1 as Record<string, typeof l1>)[k].data(),
      b = (g2 as Record<string, typeof l1>)[k].data();
    let scale = 0;
    for (const v of b) scale = Math.max(scale, Math.abs(v));
    assert.ok(maxAbsDiff(a, b) <= 1e-5 * Math.max(scale, 1e-3), `gradient of ${k}: max difference ${maxAbsDiff(a, b)} (scale ${scale})`);
  }
});
