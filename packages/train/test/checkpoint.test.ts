import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { tensor, random } from "@qkvflow/autograd";
import { loadModel, createModel, preset } from "@qkvflow/models";
import {
  AdamW,
  checkpointDirName,
  listCheckpoints,
  loadCheckpoint,
  resolveCheckpointDir,
  saveCheckpoint,
  type CheckpointContents,
} from "../src/index.js";

import { tmpDir } from "../../../test/helpers/tmp.js";

const tmp = (): string => tmpDir("qkvflow-ckpt-");

function contents(v: number): CheckpointContents {
  const w = tensor(Float32Array.from([v, v + 0.5, -v]), { shape: [3] });
  const opt = new AdamW();
  opt.step({ w }, { w: tensor(Float32Array.from([0.1, 0.2, 0.3]), { shape: [3] }) }, 0.01);
  return {
    model: { w },
    modelConfig: { kind: "test", v },
    optimizer: opt.exportState(),
    state: { rng: { dropout: [1, 2] }, note: `v${v}` },
    config: { name: "x" },
  };
}

test("save → load round trip: tensors, optimiser state, state.json, config", () => {
  const run = tmp();
  const dir = saveCheckpoint(run, 7, contents(1.25));
  assert.equal(path.basename(dir), checkpointDirName(7));
  assert.deepEqual(fs.readdirSync(dir).sort(), ["config.json", "model.safetensors", "optimizer.safetensors", "state.json"]);
  const ck = loadCheckpoint(run);
  assert.equal(ck.step, 7);
  assert.deepEqual(Array.from(ck.model.w!.data()), [1.25, 1.75, -1.25]);
  assert.deepEqual(ck.modelConfig, { kind: "test", v: 1.25 });
  assert.deepEqual(ck.state, { rng: { dropout: [1, 2] }, note: "v1.25", step: 7 });
  assert.deepEqual(ck.config, { name: "x" });
  const opt = new AdamW();
  opt.importState(ck.optimizer);
  assert.equal(opt.count, 1);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(run, "checkpoints", "latest.json"), "utf8")), { step: 7, dir: "step-00000007" });
});

test("keeps only the newest `keep` checkpoints; latest.json follows; overwriting a step is atomic", () => {
  const run = tmp();
  for (const s of [10, 20, 30, 40]) saveCheckpoint(run, s, contents(s), 2);
  assert.deepEqual(
    listCheckpoints(run).map((c) => c.step),
    [30, 40],
  );
  assert.equal(loadCheckpoint(run).step, 40);
  saveCheckpoint(run, 40, contents(99), 2);
  assert.deepEqual(Array.from(loadCheckpoint(run).model.w!.data()), [99, 99.5, -99]);
  assert.deepEqual(fs.readdirSync(path.join(run, "checkpoints")).sort(), ["latest.json", "step-00000030", "step-00000040"]);
});

test("a crash while writing leaves the previous checkpoint as the latest", () => {
  const run = tmp();
  saveCheckpoint(run, 5, contents(5));
  // Simulate a writer killed half-way: a hidden temporary folder with a partial file.
  const partial = path.join(run, "checkpoints", ".tmp-step-00000010-1234-abcd");
  fs.mkdirSync(partial);
  fs.writeFileSync(path.join(partial, "model.safetensors"), "trunc");
  assert.equal(loadCheckpoint(run).step, 5);
  // A step folder missing files (not produced by saveCheckpoint, but e.g. a manual copy) is ignored as well.
  fs.mkdirSync(path.join(run, "checkpoints", "step-00000011"));
  fs.writeFileSync(path.join(run, "checkpoints", "step-00000011", "state.json"), '{"step":11}');
  assert.deepEqual(
    listCheckpoints(run).map((c) => c.step),
    [5],
  );
  // A corrupt latest.json falls back to scanning.
  fs.writeFileSync(path.join(run, "checkpoints", "latest.json"), "{not json");
  assert.equal(path.basename(resolveCheckpointDir(run)!), "step-00000005");
  // The next save removes the debris.
  saveCheckpoint(run, 12, contents(12));
  assert.ok(!fs.existsSync(partial));
  assert.equal(loadCheckpoint(path.join(run, "checkpoints")).step, 12);
  assert.equal(loadCheckpoint(path.join(run, "checkpoints", "step-00000005")).step, 5);
});

test("errors: missing paths and runs without checkpoints", () => {
  const run = tmp();
  assert.throws(() => loadCheckpoint(path.join(run, "nope")), /resolveCheckpointDir: '.*nope' does not exist; expected a run folder/);
  assert.throws(() => loadCheckpoint(run), /loadCheckpoint: '.*' has no complete checkpoint/);
  assert.throws(() => saveCheckpoint(run, -1, contents(1)), /saveCheckpoint: step must be a non-negative integer, got -1/);
});

test("the model file is readable by @qkvflow/models loadModel", async () => {
  const run = tmp();
  const cfg = preset("diffeqformer-micro");
  const m = createModel(cfg, random.key(3));
  saveCheckpoint(run, 1, { model: m.stateDict(), modelConfig: m.config, optimizer: new AdamW().exportState(), state: {}, config: {} });
  const back = await loadModel(path.join(resolveCheckpointDir(run)!, "model.safetensors"));
  assert.deepEqual(back.config, m.config);
  for (const [n, t] of Object.entries(m.parameters())) assert.deepEqual(Array.from(back.parameters()[n]!.data()), Array.from(t.data()), n);
});
