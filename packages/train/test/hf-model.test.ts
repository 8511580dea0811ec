import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { encodeSafetensors, random, tensor, tensorsToRaw } from "@qkvflow/autograd";
import { createModel, validateConfig } from "@qkvflow/models";
import { loadModelFrom } from "../src/index.js";
import { tmpDir } from "../../../test/helpers/tmp.js";

test("loadModelFrom reads a Hugging Face GPT-2 file (transformer.* names, attn.bias buffers, config.json beside) with the same logits", () => {
  const cfg = validateConfig({ kind: "gpt2", vocabSize: 50, blockSize: 12, nEmbd: 16, nHead: 4, nLayer: 2, embdPdrop: 0, residPdrop: 0 });
  const ref = createModel(cfg, random.key(5));
  const hf: Record<string, ReturnType<typeof tensor>> = {};
  for (const [n, t] of Object.entries(ref.parameters())) hf[`transformer.${n}`] = t;
  for (let l = 0; l < 2; l++) hf[`transformer.h.${l}.attn.bias`] = tensor(new Float32Array(144).fill(1), { shape: [1, 1, 12, 12] });
  const dir = tmpDir();
  const file = path.join(dir, "model.safetensors");
  fs.writeFileSync(file, encodeSafetensors(tensorsToRaw(hf), { format: "pt" }));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ n_head: 4, embd_pdrop: 0, resid_pdrop: 0, layer_norm_epsilon: 1e-5 }));
  const { model, source } = loadModelFrom(file);
  assert.match(source, /model\.safetensors \(Hugging Face GPT-2\)$/);
  const ids = tensor([[1, 7, 3, 49, 0]], { dtype: "int32" });
  const a = (ref as unknown as { logits: (x: unknown) => { data(): Float32Array } }).logits(ids).data();
  const b = (model as unknown as { logits: (x: unknown) => { data(): Float32Array } }).logits(ids).data();
  assert.deepEqual(Array.from(b), Array.from(a));
  // a safetensors file that is neither: the error says what is expected and where GPT-2 files go
  const other = path.join(dir, "other.safetensors");
  fs.writeFileSync(other, encodeSafetensors(tensorsToRaw({ w: tensor([1, 2]) })));
  assert.throws(
    () => loadModelFrom(other),
    /other\.safetensors has no 'qkvflow\.config' metadata entry; expected a model file written by qkvflow .*Hugging Face GPT-2/,
  );
});
