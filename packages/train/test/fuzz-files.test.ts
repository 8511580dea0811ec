/**
 * Fuzzing of the file readers: the safetensors reader, the model-file reader (decode + model construction) and
 * the checkpoint loader. Each case mutates a valid file with a seeded mutator (byte flips, truncation, appended
 * bytes, header-length changes, header text edits: numbers, duplicated keys, `__proto__`, dtypes, shapes,
 * offsets, configuration values). Every mutated input must either load consistently (every tensor of the header
 * present with its declared shape; a model with all its parameters) or fail with a plain `Error` whose message
 * names the reader (and, for checkpoints, the folder and file); never a RangeError / TypeError, a hang or a
 * partial load. Case counts: 1,000 + 600 + 400 per run; QKVFLOW_FUZZ_SCALE=N multiplies them (nightly size).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { decodeSafetensors, encodeSafetensors, random, tensor, tensorsToRaw } from "@qkvflow/autograd";
import { createModel, encodeModelFile, validateConfig } from "@qkvflow/models";
import { checkTrainerCheckpoint, loadCheckpoint, loadModelFrom, qkvflowModels, saveCheckpoint } from "../src/index.js";
import { tmpDir } from "../../../test/helpers/tmp.js";
import { rng } from "../../../test/helpers/rng.js";

const SCALE = Math.max(1, Number(process.env.QKVFLOW_FUZZ_SCALE ?? 1) || 1);

const enc = new TextEncoder();
const dec = new TextDecoder();

function headerOf(b: Uint8Array): { len: number; text: string } {
  const len = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, true);
  return { len, text: dec.decode(b.subarray(8, 8 + len)) };
}

function withHeader(b: Uint8Array, text: string, keepLen = false): Uint8Array {
  const { len } = headerOf(b);
  const h = enc.encode(text);
  const out = new Uint8Array(8 + h.length + (b.length - 8 - len));
  new DataView(out.buffer).setUint32(0, keepLen ? len : h.length, true);
  out.set(h, 8);
  out.set(b.subarray(8 + len), 8 + h.length);
  return out;
}

const TEXT_EDITS: ((t: string, r: () => number) => string)[] = [
  (t, r) => t.replace(/\d+/g, (m) => (r() < 0.15 ? String(Number(m) + Math.floor(r() * 5) - 2) : m)),
  (t, r) =>
    t.replace(/\d+/g, (m) =>
      r() < 0.08 ? ["1e9", "-1", "1.5", "null", '"7"', "9007199254740993", "4294967296"][Math.floor(r() * 7)]! : m,
    ),
  (t) => t.replace(/^\{("[^"]+":\{[^}]*\})/, "{$1,$1"), // duplicate the first entry
  (t) => t.replace(/"([^"]+)":\{"dtype"/, '"__proto__":{"dtype"'),
  (t, r) => t.replace(/"(F32|F64|I64|U8)"/, ['"F16"', '"I32"', '"BOOL"', '"X"', "3"][Math.floor(r() * 5)]!),
  (t) => t.replace(/"shape":\[/, '"shape":[2,'),
  (t) => t.replace(/"data_offsets":\[\d+,\d+\]/, '"data_offsets":[0]'),
  (t) => t.replace('"__metadata__":{', '"__metadata__":{"a":1,'),
  (t) => t.replace('"__metadata__":{', '"__metadata__":{"x":"1","x":"2",'),
  (t, r) => t.slice(0, Math.floor(r() * t.length)),
  (t) => t.replace(/\\"(blockSize|vocabSize|nEmbd|nLayer|nHead)\\":\d+/, '\\"$1\\":1000000000'),
  (t) => t.replace(/\\"(blockSize|vocabSize|nEmbd|nLayer|nHead)\\":\d+/, '\\"$1\\":0'),
  (t) => t.replace(/\\"kind\\":\\"[a-z0-9]+\\"/, '\\"kind\\":\\"diffeqformer\\"'),
  (t) => t.replace(/qkvflow\.config/, "qkvflow.cfg"),
];

/** One mutation of a file's bytes. */
function mutate(b: Uint8Array, r: () => number): Uint8Array {
  const kind = Math.floor(r() * 6);
  if (kind === 0) {
    const out = b.slice();
    const n = 1 + Math.floor(r() * 4);
    for (let i = 0; i < n; i++) out[Math.floor(r() * out.length)] = Math.floor(r() * 256);
    return out;
  }
  if (kind === 1) return b.slice(0, Math.floor(r() * b.length));
  if (kind === 2) {
    const extra = new Uint8Array(1 + Math.floor(r() * 16)).map(() => Math.floor(r() * 256));
    const out = new Uint8Array(b.length + extra.length);
    out.set(b);
    out.set(extra, b.length);
    return out;
  }
  if (kind === 3) {
    const out = b.slice();
    const v = new DataView(out.buffer);
    const choices = [0, 1, 7, out.length, 2 ** 32 - 1, v.getUint32(0, true) + 8, v.getUint32(0, true) - 8];
    v.setUint32(0, choices[Math.floor(r() * choices.length)]! >>> 0, true);
    if (r() < 0.3) v.setUint32(4, 1, true);
    return out;
  }
  const { text } = headerOf(b);
  const edit = TEXT_EDITS[Math.floor(r() * TEXT_EDITS.length)]!;
  return withHeader(b, edit(text, r), kind === 5 && r() < 0.3);
}

/** The verdict on one case: "loaded" or "error"; throws (fails the test) on a raw error or a partial load. */
function judge(what: string, run: () => void, mustName: RegExp): "loaded" | "error" {
  try {
    run();
    return "loaded";
  } catch (e) {
    if (!(e instanceof Error) || e.constructor !== Error) {
      throw new Error(`${what}: raw ${(e as Error)?.constructor?.name ?? typeof e}: ${(e as Error)?.message ?? String(e)}`);
    }
    if (!mustName.test(e.message)) throw new Error(`${what}: message does not name what was wrong: ${e.message}`);
    return "error";
  }
}

/** Expected tensor entries of a header (null when the header is not a JSON object). */
function declared(b: Uint8Array): Record<string, number[]> | null {
  try {
    const h = JSON.parse(headerOf(b).text) as Record<string, { shape: number[] }>;
    const out: Record<string, number[]> = {};
    for (const [k, v] of Object.entries(h)) if (k !== "__metadata__") out[k] = v.shape;
    return out;
  } catch {
    return null;
  }
}

const counts: Record<string, { loaded: number; error: number }> = {};
function tally(name: string, v: "loaded" | "error"): void {
  counts[name] ??= { loaded: 0, error: 0 };
  counts[name]![v]++;
}

const cfg = validateConfig({ kind: "gpt2", vocabSize: 24, blockSize: 8, nEmbd: 8, nHead: 2, nLayer: 1 });
const model = createModel(cfg, random.key(3));

test(`fuzz: safetensors reader (${1000 * SCALE} mutated files)`, { timeout: 120_000 }, () => {
  const base = encodeSafetensors(
    tensorsToRaw({
      a: tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]),
      b: tensor([7, 8], { dtype: "int32" }),
      c: tensor([1, 0, 1], { dtype: "float64" }),
    }),
    { note: "x", k: "v" },
  );
  const r = rng(1601);
  for (let i = 0; i < 1000 * SCALE; i++) {
    const m = mutate(base, r);
    const v = judge(
      `safetensors case ${i}`,
      () => {
        const got = decodeSafetensors(m);
        const want = declared(m);
        assert.ok(want !== null, "decoded a file whose header is not JSON");
        assert.deepEqual(Object.keys(got.tensors).sort(), Object.keys(want).sort(), "partial load");
        for (const [n, t] of Object.entries(got.tensors)) {
          assert.deepEqual(t.shape, want[n]);
          assert.equal(
            t.data.length,
            t.shape.reduce((x, y) => x * y, 1),
          );
        }
      },
      /^decodeSafetensors: /,
    );
    tally("safetensors", v);
  }
  console.log(`safetensors fuzz: ${JSON.stringify(counts.safetensors)}`);
  assert.ok(counts.safetensors!.error > 500 && counts.safetensors!.loaded > 20);
});

test(`fuzz: model-file reader (${600 * SCALE} mutated files)`, { timeout: 120_000 }, () => {
  const base = encodeModelFile(model.parameters(), cfg);
  const dir = tmpDir();
  const file = path.join(dir, "m.safetensors");
  const r = rng(1602);
  const names = Object.keys(model.parameters()).sort();
  for (let i = 0; i < 600 * SCALE; i++) {
    fs.writeFileSync(file, mutate(base, r));
    const v = judge(
      `model-file case ${i}`,
      () => {
        const got = loadModelFrom(file).model;
        assert.deepEqual(Object.keys(got.parameters()).sort(), names, "partial load");
      },
      /(decodeSafetensors|decodeModelFile|validateConfig|loadStateDict|rawToTensor|config|Hugging Face GPT-2)/,
    );
    tally("model-file", v);
  }
  console.log(`model-file fuzz: ${JSON.stringify(counts["model-file"])}`);
  assert.ok(counts["model-file"]!.error > 300);
});

test(`fuzz: checkpoint loader (${400 * SCALE} mutated checkpoints)`, { timeout: 120_000 }, () => {
  const run = tmpDir();
  const params = model.parameters();
  const optimizer = {
    tensors: Object.fromEntries(Object.entries(tensorsToRaw(params)).map(([n, t]) => [`m.${n}`, t])),
    metadata: { format: "qkvflow-adamw/1", count: "3", names: JSON.stringify(Object.keys(params)) },
  };
  const dir = saveCheckpoint(run, 3, { model: params, modelConfig: cfg, optimizer, state: { version: 1 }, config: { name: "f" } });
  const files = ["model.safetensors", "optimizer.safetensors", "state.json", "config.json"];
  const pristine = Object.fromEntries(files.map((f) => [f, new Uint8Array(fs.readFileSync(path.join(dir, f)))]));
  const r = rng(1603);
  for (let i = 0; i < 400 * SCALE; i++) {
    const f = files[Math.floor(r() * files.length)]!;
    const bytes = f.endsWith(".json") ? mutateJson(pristine[f]!, r) : mutate(pristine[f]!, r);
    fs.writeFileSync(path.join(dir, f), bytes);
    const v = judge(
      `checkpoint case ${i} (${f})`,
      () => {
        const ck = loadCheckpoint(dir);
        checkTrainerCheckpoint(ck);
        const m = qkvflowModels.fromState(ck.modelConfig, ck.model);
        assert.equal(Object.keys(m.parameters()).length, Object.keys(params).length);
      },
      new RegExp(`^loadCheckpoint: ${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}|^(validateConfig|loadStateDict)`),
    );
    tally("checkpoint", v);
    fs.writeFileSync(path.join(dir, f), pristine[f]!);
  }
  console.log(`checkpoint fuzz: ${JSON.stringify(counts.checkpoint)}`);
  assert.ok(counts.checkpoint!.error > 150);
});

function mutateJson(b: Uint8Array, r: () => number): Uint8Array {
  const t = dec.decode(b);
  const k = Math.floor(r() * 5);
  if (k === 0) return b.slice(0, Math.floor(r() * b.length));
  if (k === 1) return enc.encode(t.replace(/"step": \d+/, `"step": ${["9999", "-1", "1.5", '"3"', "null"][Math.floor(r() * 5)]}`));
  if (k === 2) return enc.encode(["[]", "null", "7", '"x"', ""][Math.floor(r() * 5)]!);
  if (k === 3) return Uint8Array.from([0xff, 0xfe, ...b]);
  const out = b.slice();
  out[Math.floor(r() * out.length)] = Math.floor(r() * 256);
  return out;
}
