import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeSafetensors, random, type RawTensor } from "@qkvflow/autograd";
import { createModel, saveModelSync, tensorToRaw } from "@qkvflow/models";
import { analyzeCommand, loadAnalyzableModel, parseAnalyzeArgs, resolveModelFile } from "../src/index.js";
import { charCodec, maxAbsDiff } from "./helpers.js";

const codec = charCodec(" abcdefghijklmnopqrstuvwxyz.,");

test("parseAnalyzeArgs: values, = syntax, and errors that name the flag", () => {
  const a = parseAnalyzeArgs([
    "--checkpoint",
    "a.safetensors",
    "--checkpoint=b",
    "--label",
    "A",
    "--out",
    "o",
    "--text",
    "hi there",
    "--ids",
    "1,2,3",
    "--times",
    "0.1,0.5",
    "--ffn-units=8",
    "--steps",
    "6",
    "--seed",
    "2",
  ]);
  assert.deepEqual(a.checkpoints, ["a.safetensors", "b"]);
  assert.deepEqual(a.labels, ["A"]);
  assert.deepEqual(a.ids, [[1, 2, 3]]);
  assert.deepEqual(a.times, [0.1, 0.5]);
  assert.equal(a.ffnUnits, 8);
  assert.equal(a.steps, 6);
  assert.equal(a.seed, 2);
  assert.throws(() => parseAnalyzeArgs(["--out", "o", "--text", "x"]), /analyze: no --checkpoint given/);
  assert.throws(() => parseAnalyzeArgs(["--checkpoint", "c", "--text", "x"]), /no --out folder/);
  assert.throws(() => parseAnalyzeArgs(["--checkpoint", "c", "--out", "o"]), /no inputs/);
  assert.throws(() => parseAnalyzeArgs(["--checkpoint", "c", "--out", "o", "--ids", "1,x"]), /--ids '1,x'/);
  assert.throws(() => parseAnalyzeArgs(["--checkpoint", "c", "--out", "o", "--ids", "1", "--bogus"]), /unknown option '--bogus'/);
  assert.throws(() => parseAnalyzeArgs(["--checkpoint", "c", "--out", "o", "--ids", "1", "--max-tokens", "0"]), /--max-tokens is '0'/);
});

test("loadAnalyzableModel reads model files of @qkvflow/models and of trainer checkpoints; resolveModelFile finds the latest", () => {
  const dir = mkdtempSync(join(tmpdir(), "qkvflow-cli-"));
  try {
    const m = createModel(
      { kind: "diffeqformer", vocabSize: codec.vocabSize, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 2, timeEmbedDim: 3, sinusoidalDim: 2 },
      random.key(1),
    );
    saveModelSync(join(dir, "m.safetensors"), m);
    const a = loadAnalyzableModel(join(dir, "m.safetensors"));
    assert.deepEqual(a.config, m.config);
    // trainer layout: run/checkpoints/step-*/model.safetensors with metadata 'config', and latest.json
    const raw: Record<string, RawTensor> = {};
    for (const [n, p] of Object.entries(m.parameters())) raw[n] = tensorToRaw(p);
    for (const step of ["step-00000001", "step-00000002"]) {
      mkdirSync(join(dir, "run", "checkpoints", step), { recursive: true });
      writeFileSync(
        join(dir, "run", "checkpoints", step, "model.safetensors"),
        encodeSafetensors(raw, { format: "qkvflow-model-v1", config: JSON.stringify(m.config) }),
      );
    }
    writeFileSync(join(dir, "run", "checkpoints", "latest.json"), JSON.stringify({ step: 1, dir: "step-00000001" }));
    assert.equal(resolveModelFile(join(dir, "run")), join(dir, "run", "checkpoints", "step-00000001", "model.safetensors"));
    rmSync(join(dir, "run", "checkpoints", "latest.json"));
    assert.equal(resolveModelFile(join(dir, "run")), join(dir, "run", "checkpoints", "step-00000002", "model.safetensors"));
    const b = loadAnalyzableModel(join(dir, "run"));
    const pa = m.parameters(),
      pb = b.parameters();
    for (const n of Object.keys(pa)) assert.ok(maxAbsDiff(pa[n].data(), pb[n].data()) === 0, n);
    assert.throws(() => resolveModelFile(join(dir, "missing")), /resolveModelFile: '.*missing' does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("analyzeCommand end to end: two checkpoints, text and id inputs → JSON, SVGs and report", async () => {
  const dir = mkdtempSync(join(tmpdir(), "qkvflow-cli-"));
  try {
    const g = createModel({ kind: "gpt2", vocabSize: codec.vocabSize, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 2 }, random.key(2));
    const o = createModel(
      { kind: "diffeqformer", vocabSize: codec.vocabSize, blockSize: 16, nEmbd: 8, nHead: 2, nLayer: 3, timeEmbedDim: 3, sinusoidalDim: 2 },
      random.key(3),
    );
    saveModelSync(join(dir, "g.safetensors"), g);
    saveModelSync(join(dir, "o.safetensors"), o);
    writeFileSync(join(dir, "corpus.txt"), "the dog ran. a cat sat!\nbirds fly high.\n");
    const lines: string[] = [];
    const code = await analyzeCommand(
      [
        "--checkpoint",
        join(dir, "g.safetensors"),
        "--checkpoint",
        join(dir, "o.safetensors"),
        "--label",
        "baseline",
        "--label",
        "ode",
        "--out",
        join(dir, "out"),
        "--text",
        "hello world",
        "--corpus",
        join(dir, "corpus.txt"),
        "--max-sentences",
        "2",
        "--ids",
        "1,2,3,4",
        "--times",
        "0.2,0.6,1",
        "--ffn-units",
        "8",
      ],
      { tokenizer: codec, log: (l) => lines.push(l) },
    );
    assert.equal(code, 0);
    const json = JSON.parse(readFileSync(join(dir, "out", "analysis.json"), "utf8"));
    assert.deepEqual(
      json.analyses.map((a: { label: string }) => a.label),
      ["baseline", "ode"],
    );
    // 1 text + 2 corpus sentences + 1 id sequence
    assert.equal(json.analyses[1].sentences.length, 4);
    assert.deepEqual(json.analyses[1].sentences[0].ids, codec.encode("hello world"));
    assert.deepEqual(json.analyses[1].sentences[3].ids, [1, 2, 3, 4]);
    assert.deepEqual(
      json.analyses[1].spectra.points.map((p: { t: number }) => p.t),
      [0.2, 0.6, 1],
    );
    assert.equal(json.analyses[1].spectra.ffnSubset.length, 8);
    assert.ok(existsSync(join(dir, "out", "report.html")) && existsSync(join(dir, "out", "compare-qk-maxabs.svg")));
    assert.ok(lines.some((l) => l.includes("wrote")));
    // times apply to the DiffEqFormer only: the GPT-2 keeps its layers
    assert.deepEqual(
      json.analyses[0].spectra.points.map((p: { t: number }) => p.t),
      [0.5, 1],
    );
    assert.ok(lines.some((l) => l.includes("apply to DiffEqFormer models only")));
    await assert.rejects(
      analyzeCommand(["--checkpoint", join(dir, "g.safetensors"), "--out", join(dir, "o3"), "--text", "abc"], { log: () => {} }),
      /need a tokenizer/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
