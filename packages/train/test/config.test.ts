import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { validateConfig, countParameters } from "@qkvflow/models";
import {
  CONFIG_SCHEMA,
  applyOverrides,
  defaultConfig,
  loadConfig,
  parseOverride,
  resolveModelSection,
  validateTrainConfig,
} from "../src/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const configsDir = path.resolve(here, "..", "..", "..", "configs");

test("defaults fill every key; given keys override", () => {
  const d = defaultConfig();
  for (const [section, keys] of Object.entries(CONFIG_SCHEMA)) {
    for (const [k, spec] of Object.entries(keys))
      assert.deepEqual((d as unknown as Record<string, Record<string, unknown>>)[section]![k], spec.default, `${section}.${k}`);
  }
  const c = validateTrainConfig({ name: "x", optimizer: { lr: 1e-3 }, train: { steps: 5 } });
  assert.equal(c.optimizer.lr, 1e-3);
  assert.equal(c.optimizer.beta2, 0.999);
  assert.equal(c.train.steps, 5);
  assert.equal(c.optimizer.warmupRatio, 0.01);
  assert.equal(c.optimizer.minLrRatio, 0.1);
  assert.equal(c.optimizer.maxGradNorm, 1);
});

test("unknown keys are rejected with the valid ones listed", () => {
  assert.throws(
    () => validateTrainConfig({ train: { stepz: 3 } }),
    (e: Error) => {
      assert.match(e.message, /config: unknown key 'stepz' in section 'train'; valid keys are steps, batchSize, gradAccum, evalEvery/);
      return true;
    },
  );
  assert.throws(
    () => validateTrainConfig({ trainer: {} }),
    /unknown key 'trainer' in the configuration; valid keys are name, description, seed, model, data, optimizer, train, finetune/,
  );
  assert.throws(
    () => applyOverrides({}, ["optimizer.learningRate=1"]),
    /unknown key 'learningRate' in section 'optimizer'; valid keys are lr, beta1, beta2, eps/,
  );
  assert.throws(() => applyOverrides({}, ["foo.bar=1"]), /unknown key 'foo' in the configuration/);
});

test("bad values are rejected with the expected type or options", () => {
  assert.throws(() => validateTrainConfig({ train: { steps: 0 } }), /config: train.steps is 0; expected an integer >= 1/);
  assert.throws(() => validateTrainConfig({ train: { steps: "many" } }), /config: train.steps is "many"; expected an integer >= 1/);
  assert.throws(
    () => validateTrainConfig({ optimizer: { schedule: "exp" } }),
    /config: optimizer.schedule is "exp"; expected one of 'cosine', 'linear', 'constant'/,
  );
  assert.throws(() => validateTrainConfig({ optimizer: { beta2: 1 } }), /optimizer.beta2 is 1; expected a finite number >= 0 and < 1/);
  assert.throws(
    () => validateTrainConfig({ train: { batchSize: 10, gradAccum: 3 } }),
    /train.batchSize 10 is not divisible by train.gradAccum 3/,
  );
  assert.throws(
    () => validateTrainConfig({ optimizer: { decayPatterns: ["[a"] } }),
    /optimizer.decayPatterns entry '\[a' is not a valid regular expression/,
  );
  assert.throws(() => validateTrainConfig({ model: { nLayer: 2 } }), /model needs either "preset"/);
  assert.throws(() => validateTrainConfig({ name: "a b" }), /config: name is "a b"/);
  assert.throws(() => resolveModelSection({ preset: "gpt5" }), /model.preset is "gpt5"; expected one of gpt2-small, /);
  assert.throws(() => resolveModelSection({ preset: "diffeqformer-tiny", nLayers: 3 }), /unknown key 'nLayers'/);
});

test("--set overrides: JSON values, strings, nested model keys", () => {
  assert.deepEqual(parseOverride("optimizer.lr=3e-4"), { path: ["optimizer", "lr"], value: 3e-4 });
  assert.deepEqual(parseOverride("data.dataset=wikitext-2"), { path: ["data", "dataset"], value: "wikitext-2" });
  assert.deepEqual(parseOverride('optimizer.decayPatterns=["a","b"]'), { path: ["optimizer", "decayPatterns"], value: ["a", "b"] });
  assert.deepEqual(parseOverride("train.evalBatches=null"), { path: ["train", "evalBatches"], value: null });
  const raw = { model: { preset: "diffeqformer-tiny" }, train: { steps: 10 } };
  const o = applyOverrides(raw, ["train.steps=20", "model.nLayer=2", "model.solver.method=rk4", "seed=7"]);
  assert.deepEqual(o, { model: { preset: "diffeqformer-tiny", nLayer: 2, solver: { method: "rk4" } }, train: { steps: 20 }, seed: 7 });
  assert.deepEqual(raw.train, { steps: 10 }, "input untouched");
  assert.throws(() => parseOverride("train.steps"), /override 'train.steps' is malformed; expected key=value/);
  assert.throws(() => applyOverrides({}, ["train={}"]), /replaces the whole 'train' section/);
});

test("every file in configs/ validates, including its model section", () => {
  const files = fs.readdirSync(configsDir).filter((f) => f.endsWith(".json"));
  assert.ok(files.length >= 12, `expected the paper's configurations plus tiny ones, found ${files.length}`);
  for (const f of files) {
    const cfg = loadConfig(path.join(configsDir, f));
    assert.equal(cfg.name, f.slice(0, -5), `${f}: name matches the file name`);
    assert.ok(cfg.description.length > 0, `${f}: has a description`);
    const mc = resolveModelSection(cfg.model);
    assert.ok(mc.blockSize >= cfg.data.seqLen, `${f}: seqLen fits the model`);
    assert.deepEqual(validateConfig(mc), mc);
  }
});

test("paper configurations carry the paper hyper-parameters (§5)", () => {
  const c = loadConfig(path.join(configsDir, "diffeqformer-small-owt.json"));
  const mc = resolveModelSection(c.model);
  assert.equal(mc.kind, "diffeqformer");
  assert.deepEqual(
    [mc.nEmbd, mc.nHead, mc.nLayer, c.data.seqLen, c.train.batchSize, c.train.steps, c.optimizer.lr, c.optimizer.weightDecay],
    [768, 12, 12, 1024, 512, 20000, 6e-4, 0.1],
  );
  assert.deepEqual(
    [c.optimizer.beta1, c.optimizer.beta2, c.optimizer.eps, c.optimizer.maxGradNorm, c.optimizer.warmupRatio, c.optimizer.minLrRatio],
    [0.9, 0.999, 1e-8, 1, 0.01, 0.1],
  );
  assert.deepEqual(c.optimizer.decayPatterns, ["wte\\.weight", "wpe\\.weight"]);
  const large = loadConfig(path.join(configsDir, "diffeqformer-large-owt.json"));
  assert.equal(large.optimizer.eps, 1e-6);
  const g = loadConfig(path.join(configsDir, "gpt2-medium-wikitext103.json"));
  assert.equal(resolveModelSection(g.model).kind, "gpt2");
  assert.deepEqual([g.train.steps, g.train.batchSize, g.optimizer.lr, g.train.evalEvery], [10001, 256, 3e-4, 500]);
  // Parameter counts of the paper's small models (§1.2: ≈188 M DiffEqFormer, 124.4 M GPT-2).
  const small = resolveModelSection(c.model);
  assert.ok(Math.abs(countParameters(small) / 1e6 - 188) < 1.5, `DiffEqFormer small has ${countParameters(small)} parameters`);
  const gs = resolveModelSection(loadConfig(path.join(configsDir, "gpt2-small-owt.json")).model);
  assert.ok(Math.abs(countParameters(gs) / 1e6 - 124.4) < 0.2, `GPT-2 small has ${countParameters(gs)} parameters`);
});
