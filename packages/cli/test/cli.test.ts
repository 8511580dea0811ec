import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { decode, loadModelFrom, runTrain, sampleTokens, validateTrainConfig } from "@qkvflow/train";
import { loadConfig, main, parseArgs, UsageError } from "../src/cli.js";
import { syntheticTokens } from "../../../test/helpers/tiny-model.js";
import { tmpDir } from "../../../test/helpers/tmp.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..", "..");
const cliFile = path.join(root, "packages", "cli", "src", "cli.ts");

/** Runs main() capturing console output. */
async function run(argv: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; out: string; err: string }> {
  const saved = { log: console.log, error: console.error };
  const savedEnv: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    savedEnv[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  let out = "";
  let err = "";
  console.log = (...a: unknown[]) => void (out += `${a.join(" ")}\n`);
  console.error = (...a: unknown[]) => void (err += `${a.join(" ")}\n`);
  try {
    const code = await main(argv);
    return { code, out, err };
  } finally {
    console.log = saved.log;
    console.error = saved.error;
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

test("help and configs list", async () => {
  const h = await run(["help"]);
  assert.equal(h.code, 0);
  assert.match(h.out, /qkvflow train +--config NAME\|FILE/);
  const c = await run(["configs"]);
  assert.equal(c.code, 0);
  for (const n of ["diffeqformer-small-owt", "gpt2-large-wikitext103", "finetune-pretrain-owt", "tiny-diffeqformer-wikitext2"])
    assert.match(c.out, new RegExp(`^${n} `, "m"));
});

test("bad configurations exit 2 naming the key and the valid options", async () => {
  const a = await run(["train", "--config", "tiny-diffeqformer-wikitext2", "--set", "train.stepz=3"]);
  assert.equal(a.code, 2);
  assert.match(
    a.err,
    /qkvflow: config: unknown key 'stepz' in section 'train'; valid keys are steps, batchSize, gradAccum, evalEvery, evalBatches, evalBatchSize, checkpointEvery, keepCheckpoints, outDir, progress/,
  );
  const b = await run(["train", "--config", "tiny-diffeqformer-wikitext2", "--set", "optimizer.schedule=exp"]);
  assert.equal(b.code, 2);
  assert.match(b.err, /optimizer.schedule is "exp"; expected one of 'cosine', 'linear', 'constant'/);
  const c = await run(["train", "--config", "tiny-diffeqformer-wikitext2", "--set", "model.nLayers=3"]);
  assert.equal(c.code, 2);
  assert.match(
    c.err,
    /unknown key 'nLayers' in a 'diffeqformer' configuration; valid keys are kind, vocabSize, blockSize, nEmbd, nHead, nLayer/,
  );
  const d = await run(["train", "--config", "tiny-diffeqformer-wikitext2", "--set", "data.dataset=wikitext-7", "--out", tmpDir()]);
  assert.equal(d.code, 2);
  assert.match(
    d.err,
    /config: data.dataset is 'wikitext-7'; expected one of wikitext-2, wikitext-103, wikitext-103-detokenized, openwebtext, text/,
  );
  const e = await run(["train", "--steps", "ten", "--config", "tiny-diffeqformer-wikitext2"]);
  assert.equal(e.code, 2);
  assert.match(e.err, /--steps is 'ten'; expected an integer >= 1/);
  const f = await run(["train"]);
  assert.equal(f.code, 2);
  assert.match(f.err, /train needs --config NAME\|FILE/);
  const g = await run(["finetune", "--config", "tiny-finetune-owt-sample-full", "--mode", "half"]);
  assert.equal(g.code, 2);
  assert.match(g.err, /finetune.mode is "half"; expected one of 'full', 'lora'/);
});

test("missing data exits 1 and says how to provide it", async () => {
  const empty = tmpDir();
  const a = await run(["train", "--config", "tiny-diffeqformer-wikitext2", "--data", empty, "--out", tmpDir()]);
  assert.equal(a.code, 1);
  assert.match(a.err, /loadDataset: no data for 'wikitext-2'/);
  assert.match(a.err, /--data DIR \(or set QKVFLOW_DATA=DIR\)/);
  // No local folder, an empty cache and downloads off: the message lists the cache and the download option.
  const b = await run(["train", "--config", "tiny-diffeqformer-wikitext2", "--out", tmpDir()], {
    QKVFLOW_DATA: undefined,
    QKVFLOW_CACHE: tmpDir(),
  });
  assert.equal(b.code, 1);
  assert.match(b.err, /allow downloading \(download: true\)/);
  const c = await run([
    "finetune",
    "--config",
    "tiny-finetune-owt-sample-full",
    "--from",
    path.join(empty, "nope"),
    "--data",
    path.join(empty, "x.txt"),
    "--out",
    tmpDir(),
  ]);
  assert.equal(c.code, 1);
  assert.match(c.err, /resolveCheckpointDir: '.*nope' does not exist/);
  const d = await run(["eval", "--checkpoint", empty, "--config", "tiny-diffeqformer-wikitext2"]);
  assert.equal(d.code, 1);
  assert.match(d.err, /has no complete checkpoint/);
});

test("the CLI entry runs as a program: exit status 2 for an unknown command", () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", cliFile, "trian"], { cwd: root, encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /qkvflow: unknown command 'trian'; expected one of train, finetune, eval, generate, configs, help/);
  assert.ok(fs.existsSync(cliFile));
});

/** A run folder holding a micro DiffEqFormer trained for `steps` updates on synthetic tokens. */
async function trainedMicroRun(name: string, steps: number): Promise<string> {
  const out = tmpDir();
  const tokens = syntheticTokens(2000, 61, 3);
  const cfg = validateTrainConfig({
    name,
    model: { preset: "diffeqformer-micro" },
    data: { seqLen: 16 },
    train: { steps, batchSize: 4, outDir: out, progress: "none", evalEvery: 0 },
  });
  await runTrain(cfg, {
    data: {
      train: { name: "train", tokens },
      eval: { name: "validation", tokens: tokens.subarray(0, 200) },
      splits: {},
      source: "synthetic",
      note: null,
    },
    log: () => undefined,
    handleSignals: false,
  });
  return out;
}

test("generate decodes a greedy continuation from a checkpoint", async () => {
  const out = await trainedMicroRun("g", 3);
  const r = await run(["generate", "--checkpoint", out, "--prompt", "A", "--max-tokens", "6", "--temperature", "0"]);
  assert.equal(r.code, 0, r.err);
  const { model } = loadModelFrom(out);
  const ids = sampleTokens(model, [32], { maxNewTokens: 6, temperature: 0, stopId: 50256 }); // 'A' is GPT-2 id 32
  assert.equal(r.out, `A${decode(ids)}\n`);
  const bad = await run(["generate", "--checkpoint", out]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /generate needs --checkpoint PATH and --prompt TEXT/);
});

test("CLI argument parsing and usage errors", () => {
  const p = parseArgs(["train", "--config", "x", "--set", "a.b=1", "--set=c.d=2", "--resume", "--steps", "5"]);
  assert.deepEqual(p, { command: "train", flags: { config: "x", set: ["a.b=1", "c.d=2"], resume: true, steps: "5" } });
  assert.deepEqual(parseArgs(["train", "--resume", "runs/a"]).flags, { resume: "runs/a" });
  assert.throws(
    () => parseArgs(["trian"]),
    (e: Error) =>
      e instanceof UsageError && /unknown command 'trian'; expected one of train, finetune, eval, generate, configs, help/.test(e.message),
  );
  assert.throws(
    () => parseArgs(["train", "--stpes", "3"]),
    /unknown option '--stpes' for train; valid options: --config, --set, --data, --help, --resume, --out, --steps, --progress/,
  );
  assert.throws(() => parseArgs(["train", "--config"]), /option --config needs a value/);
  assert.throws(
    () => loadConfig("no-such-config"),
    /configuration 'no-such-config' is neither a file nor a known name; known names: .*tiny-diffeqformer-wikitext2/,
  );
});

test("analyze runs @qkvflow/analysis on a run folder: report files, and exit 1 naming a missing checkpoint", async () => {
  const out = await trainedMicroRun("a", 2);
  const report = path.join(tmpDir(), "report");
  const saved = process.stderr.write.bind(process.stderr);
  let log = "";
  process.stderr.write = ((chunk: string | Uint8Array) => {
    log += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  let r: Awaited<ReturnType<typeof run>>;
  try {
    r = await run(["analyze", "--checkpoint", out, "--out", report, "--ids", "1,2,3,4,5", "--ffn-units", "4", "--label", "micro"]);
  } finally {
    process.stderr.write = saved;
  }
  assert.equal(r.code, 0, r.err + log);
  assert.match(log, /analyze: micro \(diffeqformer, .*\) from /);
  const json = JSON.parse(fs.readFileSync(path.join(report, "analysis.json"), "utf8")) as {
    analyses: { label: string; sentences: { ids: number[] }[] }[];
  };
  assert.deepEqual(
    json.analyses.map((a) => a.label),
    ["micro"],
  );
  assert.deepEqual(json.analyses[0]!.sentences[0]!.ids, [1, 2, 3, 4, 5]);
  assert.ok(fs.existsSync(path.join(report, "report.html")));
  const missing = await run(["analyze", "--checkpoint", path.join(out, "nope"), "--out", report, "--ids", "1,2"]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /qkvflow analyze: resolveModelFile: '.*nope' does not exist/);
});
