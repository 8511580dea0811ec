/**
 * The main job end to end: examples/train-wikitext.ts trains the tiny DiffEqFormer on the WikiText-2 files
 * under ../shared/data (QKVFLOW_SHARED_DATA overrides) for a reduced number of steps
 * (QKVFLOW_MAIN_JOB_STEPS, default 100) and its test perplexity must fall below the unigram model's on the
 * same tokens.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const shared = process.env.QKVFLOW_SHARED_DATA ?? path.resolve(root, "..", "shared", "data");
const wikitext = path.join(shared, "wikitext-2");
const steps = Number(process.env.QKVFLOW_MAIN_JOB_STEPS ?? "100");
const present = fs.existsSync(path.join(wikitext, "valid.txt")) && fs.existsSync(path.join(wikitext, "test.txt"));

test("main job: tiny DiffEqFormer on WikiText-2 beats the unigram perplexity", {
  timeout: 900_000,
  skip: present ? false : `no WikiText-2 files in ${wikitext}`,
}, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qkvflow-main-job-"));
  try {
    const out = path.join(tmp, "run");
    const args = [
      "--import",
      "tsx",
      path.join(root, "examples", "train-wikitext.ts"),
      "--data",
      wikitext,
      "--steps",
      String(steps),
      "--eval-tokens",
      "8192",
      "--out",
      out,
      "--progress",
      "plain",
    ];
    const child = spawn(process.execPath, args, {
      cwd: root,
      env: { ...process.env, QKVFLOW_CACHE: path.join(tmp, "cache") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    child.stdout.on("data", (d: Buffer) => (log += d.toString()));
    child.stderr.on("data", (d: Buffer) => (log += d.toString()));
    const code = await new Promise<number | null>((res) => child.on("exit", (c) => res(c)));
    assert.equal(code, 0, log);
    const result = JSON.parse(fs.readFileSync(path.join(out, "result.json"), "utf8")) as Record<string, number | string | null>;
    assert.equal(result.steps, steps);
    assert.equal(result.trainSplit, "validation");
    assert.equal(result.evalSplit, "test");
    assert.equal(result.evalTokens, 8192);
    assert.match(log, /no 'train' split found: training on 'validation' and evaluating on 'test' instead/);
    assert.match(log, /perplexity \d+\.\d\d\n {2}unigram model \(add-one, fitted on 'validation'\) +perplexity \d+\.\d\d/);
    const ppl = result.perplexity as number;
    const uni = result.unigramPerplexity as number;
    assert.ok(Number.isFinite(ppl) && ppl < uni, `model perplexity ${ppl} is not below the unigram perplexity ${uni}\n${log}`);
    const metrics = fs
      .readFileSync(path.join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; step: number });
    assert.equal(metrics.filter((m) => m.type === "train").length, steps);
    assert.ok(fs.existsSync(path.join(out, "checkpoints", "latest.json")));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
