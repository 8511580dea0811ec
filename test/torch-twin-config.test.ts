/**
 * The PyTorch twin builds its models from the same configuration files: its preset table, its section defaults
 * and its resolution of every configs/*.json (model section → model configuration, whole file → training
 * configuration) must equal qkvflow's. The model configuration must even serialise identically (key order
 * included), since the trainer compares a checkpoint's configuration with the model's as JSON text on resume.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { presets } from "@qkvflow/models";
import { CONFIG_SCHEMA, loadConfig, resolveModelSection } from "@qkvflow/train";
import { repoRoot, runTwin, skipWithoutTorch } from "./helpers/torch-twin.js";

test("torch twin: presets, defaults and every configs/*.json resolve as in qkvflow", {
  skip: skipWithoutTorch(),
  timeout: 120_000,
}, async () => {
  const dir = path.join(repoRoot, "configs");
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort();
  assert.ok(files.length > 0);
  const out = JSON.parse(
    await runTwin(
      "qkvflow_torch.show_config",
      files.map((f) => path.join(dir, f)),
    ),
  ) as {
    presets: Record<string, unknown>;
    defaults: Record<string, Record<string, unknown>>;
    files: Record<string, { model: unknown; config: Record<string, unknown> }>;
  };
  assert.deepEqual(Object.keys(out.presets), Object.keys(presets), "preset names");
  for (const [name, p] of Object.entries(presets)) assert.equal(JSON.stringify(out.presets[name]), JSON.stringify(p), `preset ${name}`);
  for (const [section, spec] of Object.entries(CONFIG_SCHEMA)) {
    const want = Object.fromEntries(Object.entries(spec).map(([k, s]) => [k, s.default]));
    assert.deepEqual(out.defaults[section], want, `defaults of section ${section}`);
  }
  for (const f of files) {
    const cfg = loadConfig(path.join(dir, f));
    const model = resolveModelSection(cfg.model);
    assert.equal(JSON.stringify(out.files[f]!.model), JSON.stringify(model), `model configuration of ${f}`);
    assert.deepEqual(out.files[f]!.config, JSON.parse(JSON.stringify(cfg)), `training configuration of ${f}`);
  }
});
