import { test } from "node:test";
import assert from "node:assert/strict";
import { random, tensor } from "@qkvflow/autograd";
import {
  createModel,
  decodeModelFile,
  discretize,
  encodeModelFile,
  modelFromSafetensors,
  validateConfig,
  type DiffEqFormer,
} from "../src/index.js";

const gptCfg = validateConfig({ kind: "gpt2", vocabSize: 64, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 2 });
const gpt = createModel(gptCfg, random.key(0));

test("model files: an embedded configuration that disagrees with the tensors names the field before any allocation", () => {
  const cases: [string, number, RegExp][] = [
    ["blockSize", 1e9, /has blockSize 1000000000, but tensor 'wpe\.weight' has shape \[16, 8\]; expected blockSize 16/],
    ["vocabSize", 1e9, /has vocabSize 1000000000, but tensor 'wte\.weight' has shape \[64, 8\]; expected vocabSize 64/],
    ["nEmbd", 4096, /has nEmbd 4096, but tensor 'wte\.weight' has shape \[64, 8\]; expected nEmbd 8/],
    ["nLayer", 1e7, /has nLayer 10000000, but the file holds layers h\.0 … h\.1; expected nLayer 2/],
  ];
  for (const [k, v, re] of cases) {
    const bytes = encodeModelFile(gpt.parameters(), { ...gptCfg, [k]: v });
    assert.throws(
      () => decodeModelFile(bytes, "m.safetensors"),
      (e: Error) =>
        e.constructor === Error && /^decodeModelFile: m\.safetensors: the stored model configuration/.test(e.message) && re.test(e.message),
    );
    assert.throws(
      () => modelFromSafetensors(bytes),
      (e: Error) => e.constructor === Error && re.test(e.message),
    );
  }
  // the consistent file still loads and round-trips the weights
  const back = modelFromSafetensors(encodeModelFile(gpt.parameters(), gptCfg));
  assert.deepEqual(Array.from(back.parameters()["wte.weight"]!.data()), Array.from(gpt.parameters()["wte.weight"]!.data()));
});

test("loadStateDict: a non-object or non-tensor entries are errors naming them, not TypeErrors", () => {
  const m = createModel(gptCfg, random.key(1));
  const bad: [unknown, RegExp][] = [
    [null, /loadStateDict: the state dict is null; expected an object of parameter name → Tensor/],
    [undefined, /the state dict is undefined/],
    [[1, 2], /the state dict is an array/],
    [tensor([1]), /the state dict is Tensor/],
    [{ ...m.parameters(), "wte.weight": [1, 2] }, /state dict entry 'wte\.weight' is an array; expected a Tensor/],
    [{ ...m.parameters(), "wpe.weight": null }, /state dict entry 'wpe\.weight' is null; expected a Tensor/],
  ];
  for (const [sd, re] of bad) {
    assert.throws(
      () => m.loadStateDict(sd as never),
      (e: Error) => e.constructor === Error && re.test(e.message),
    );
  }
});

test("discretize: a model without a time dimension is refused with a clear message", () => {
  for (const [model, re] of [
    [gpt, /discretize: the model is a 'gpt2' model; only a DiffEqFormer \(kind 'diffeqformer'\)/],
    [null, /discretize: the model is null/],
    [{}, /discretize: the model is Object/],
  ] as const) {
    assert.throws(
      () => discretize(model as unknown as DiffEqFormer, 4),
      (e: Error) => e.constructor === Error && re.test(e.message),
    );
  }
  const ode = createModel(
    validateConfig({ kind: "diffeqformer", vocabSize: 64, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 2 }),
    random.key(2),
  ) as DiffEqFormer;
  assert.equal(discretize(ode, 3).config.nLayer, 3);
});
