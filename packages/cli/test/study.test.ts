/**
 * `qkvflow study`: the smoke size of every experiment, run as the user runs it (a child process of the CLI),
 * checked for structure and sanity, and a second study killed in the middle of a training run and finished with
 * --resume, whose results must equal the uninterrupted study's (timings aside). Needs the WikiText-2 and
 * OpenWebText-sample files under ../shared/data (QKVFLOW_SHARED_DATA overrides); skipped without them.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { countParameters } from "@qkvflow/models";
import { flopsPerToken, mainModelSections, modelConfigOf, type MainResult } from "../src/study/main-comparison.js";
import { jitteredGrid, type BeyondResult } from "../src/study/beyond.js";
import type { DepthResult } from "../src/study/depth.js";
import { parseStudyArgs, EXPERIMENTS, type StudyResults } from "../src/study/command.js";
import { studySpec } from "../src/study/spec.js";
import { tmpDir } from "../../../test/helpers/tmp.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..", "..");
const cliFile = path.join(root, "packages", "cli", "src", "cli.ts");
const shared = process.env.QKVFLOW_SHARED_DATA ?? path.resolve(root, "..", "shared", "data");
const present =
  fs.existsSync(path.join(shared, "wikitext-2-raw-v1", "wiki.train.raw")) &&
  fs.existsSync(path.join(shared, "openwebtext-sample", "openwebtext_sample.txt"));
const skip = present ? false : `no wikitext-2-raw-v1 / openwebtext-sample under ${shared}`;

// node --import tsx runs the CLI in this one process (the tsx launcher would start a second one, which a kill of
// the launcher leaves running).
function studyArgs(out: string, resume = false): string[] {
  return ["--import", "tsx", cliFile, "study", "all", "--size", "smoke", "--out", out, "--data", shared, ...(resume ? ["--resume"] : [])];
}

/** Results without what depends on the machine's speed (timings, tokens/s, memory). */
function withoutTimings(v: unknown): unknown {
  const drop = new Set(["timing", "elapsed", "seconds", "tokensPerSec", "peakRssMiB"]);
  if (Array.isArray(v)) return v.map(withoutTimings);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => !drop.has(k))
        .map(([k, x]) => [k, withoutTimings(x)]),
    );
  }
  return v;
}

/**
 * Every number in a JSON tree. Throws on null, which is what NaN / ±Infinity become in JSON, except for `before`
 * (a run's perplexity before fine-tuning), which is null by definition for runs that are not fine-tuned.
 */
function numbers(v: unknown, at = "$", out: { at: string; v: number }[] = []): { at: string; v: number }[] {
  if (v === null && at.endsWith(".before")) return out;
  if (v === null) throw new Error(`null (a non-finite number) at ${at}`);
  if (typeof v === "number") out.push({ at, v });
  else if (Array.isArray(v)) v.forEach((x, i) => numbers(x, `${at}[${i}]`, out));
  else if (typeof v === "object") for (const [k, x] of Object.entries(v)) numbers(x, `${at}.${k}`, out);
  return out;
}

/** Checks that an SVG document is well-formed: one root <svg>, balanced tags, quoted attributes, escaped text. */
function assertWellFormedSvg(name: string, text: string): void {
  const body = text.trim();
  assert.ok(body.startsWith("<svg") && body.endsWith("</svg>"), `${name}: not one <svg> element`);
  assert.match(body, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, `${name}: <svg> without the SVG namespace`);
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(body); m !== null; m = tag.exec(body)) {
    const between = body.slice(last, m.index);
    assert.ok(!/[<>]/.test(between), `${name}: stray '<' or '>' in text near offset ${last}: ${between.slice(0, 60)}`);
    assert.ok(!/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(between), `${name}: unescaped '&' near offset ${last}`);
    last = m.index + m[0].length;
    const [, close, el, , selfClose] = m;
    if (close) assert.equal(stack.pop(), el, `${name}: </${el}> closes the wrong element`);
    else if (!selfClose) stack.push(el!);
    if (stack.length === 0) assert.equal(last, body.length, `${name}: content after the root element`);
  }
  assert.equal(last, body.length, `${name}: unparsed tail`);
  assert.deepEqual(stack, [], `${name}: unclosed elements ${stack.join(", ")}`);
}

describe("qkvflow study (smoke size)", { skip }, () => {
  let outA = "";
  let outB = "";
  let killedAt = "";
  before(async () => {
    const dir = tmpDir("qkvflow-study-");
    outA = path.join(dir, "a");
    outB = path.join(dir, "b");
    // Study A runs uninterrupted; study B starts at the same time and is killed (SIGKILL: no checkpoint on the way
    // out) once a main-comparison run has written its mid-run checkpoint but not finished, then resumed.
    const target = path.join(outB, "runs", "main-diffeqformer-s1");
    const a = spawn(process.execPath, studyArgs(outA), { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    let errA = "";
    a.stderr.on("data", (d) => (errA += d));
    const doneA = new Promise<number | null>((res) => a.on("close", res));
    const b = spawn(process.execPath, studyArgs(outB), { cwd: root, stdio: "ignore" });
    const doneB = new Promise<number | null>((res) => b.on("close", res));
    await new Promise<void>((res, rej) => {
      const timer = setInterval(() => {
        const ck = path.join(target, "checkpoints");
        if (
          fs.existsSync(ck) &&
          fs.readdirSync(ck).some((d) => d.startsWith("step")) &&
          !fs.existsSync(path.join(target, "summary.json"))
        ) {
          killedAt = fs.readdirSync(ck).join(",");
          b.kill("SIGKILL");
          clearInterval(timer);
          res();
        }
        if (b.exitCode !== null) {
          clearInterval(timer);
          rej(new Error("study B finished before it could be killed mid-run"));
        }
      }, 5);
    });
    await doneB;
    assert.equal(await doneA, 0, `study A failed: ${errA}`);
    const r = spawnSync(process.execPath, studyArgs(outB, true), { cwd: root, encoding: "utf8" });
    assert.equal(r.status, 0, `resumed study B failed: ${r.stderr}`);
  });

  const results = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, "results.json"), "utf8")) as StudyResults;

  test("results.json holds every experiment, and every number in it is finite", () => {
    const r = results(outA);
    assert.deepEqual(Object.keys(r.experiments).sort(), [...EXPERIMENTS].sort());
    const ns = numbers(r.experiments);
    assert.ok(ns.length > 100, `only ${ns.length} numbers`);
    for (const { at, v } of ns) assert.ok(Number.isFinite(v), `${at} = ${v}`);
  });

  test("runs log increasing evaluation steps ending at the run's step count, and sane perplexities", () => {
    const runs = path.join(outA, "runs");
    const names = fs.readdirSync(runs);
    assert.ok(names.length >= 20, `${names.length} runs`);
    for (const n of names) {
      const s = JSON.parse(fs.readFileSync(path.join(runs, n, "summary.json"), "utf8"));
      const steps = s.curve.map((c: { step: number }) => c.step);
      for (let i = 1; i < steps.length; i++) assert.ok(steps[i] > steps[i - 1], `${n}: evaluation steps ${steps.join(",")}`);
      assert.equal(steps.at(-1), s.steps, `${n}: last evaluation at ${steps.at(-1)}, run has ${s.steps} steps`);
      // a model over 50,257 tokens starts near perplexity 50,257 and cannot be worse than twice that in a few steps
      assert.ok(s.test.ppl > 1 && s.test.ppl < 2 * 50257, `${n}: test perplexity ${s.test.ppl}`);
      assert.ok(s.parameters >= s.trainable && s.trainable > 0, `${n}: ${s.trainable} of ${s.parameters} trainable`);
    }
  });

  test("independent paths agree: discretising at M = L and the Euler solver at L steps reproduce the trained model", () => {
    const r = results(outA).experiments as { depth: DepthResult; beyond: BeyondResult; main: MainResult };
    const depth = r.depth;
    const atL = depth.zeroShot.find((z) => z.layers === depth.pretrainLayers)!;
    assert.ok(Math.abs(atL.wikitextTest / depth.pretrain.diffeqformer.test.ppl - 1) < 1e-5, "discretised M = L differs from the ODE model");
    const beyond = r.beyond;
    const fixedAtL = beyond.grids.find((g) => g.layers === beyond.trainLayers)!;
    const main = r.main.runs.diffeqformer[0]!.test.ppl;
    assert.ok(Math.abs(fixedAtL.fixed.mean / main - 1) < 1e-5, "Euler at L steps differs from the trained model's test perplexity");
    // the fine-tuning runs start from the discretised model: their step-0 evaluation is the zero-shot OWT number
    for (const z of depth.zeroShot) {
      const full = depth.rows.find((x) => x.model === "DiffEqFormer" && x.mode === "full" && x.layers === z.layers)!;
      assert.ok(Math.abs(full.before! / z.owtTest - 1) < 1e-5, `M = ${z.layers}: before ${full.before}, zero-shot ${z.owtTest}`);
    }
  });

  test("every figure is a well-formed SVG and the page links every figure", () => {
    const r = results(outA);
    const figs = fs.readdirSync(path.join(outA, "figures")).sort();
    assert.deepEqual([...r.figures].sort(), figs);
    assert.ok(figs.length >= 15, `${figs.length} figures`);
    const page = fs.readFileSync(path.join(outA, "results.md"), "utf8");
    for (const f of figs) {
      assertWellFormedSvg(f, fs.readFileSync(path.join(outA, "figures", f), "utf8"));
      assert.ok(page.includes(`](figures/${f})`), `results.md does not link ${f}`);
    }
    for (const m of page.matchAll(/\]\((figures\/[^)]+)\)/g)) assert.ok(fs.existsSync(path.join(outA, m[1]!)), `dangling link ${m[1]}`);
  });

  test("a study killed mid-run and resumed ends with the uninterrupted study's results", () => {
    assert.ok(killedAt !== "", "study B was not killed");
    const metrics = fs.readFileSync(path.join(outB, "runs", "main-diffeqformer-s1", "metrics.jsonl"), "utf8");
    assert.match(metrics, /"type":"resume"/, "the killed run did not resume from its checkpoint");
    assert.deepEqual(withoutTimings(results(outB).experiments), withoutTimings(results(outA).experiments));
    for (const f of results(outA).figures) {
      if (f === "main-valid-seconds.svg") continue; // plotted against measured time
      assert.equal(fs.readFileSync(path.join(outB, "figures", f), "utf8"), fs.readFileSync(path.join(outA, "figures", f), "utf8"), f);
    }
  });
});

test("study arguments: sizes, seeds and experiment names are checked", () => {
  assert.throws(() => parseStudyArgs(["all", "--size", "huge"]), /--size is 'huge'; expected one of smoke, cpu, full/);
  assert.throws(() => parseStudyArgs(["all", "--seeds", "0"]), /--seeds is '0'; expected an integer >= 1/);
  assert.throws(() => parseStudyArgs(["sepctra"]), /unknown experiment 'sepctra'/);
  assert.throws(() => parseStudyArgs([]), /no experiment given/);
  const a = parseStudyArgs(["spectra", "--size", "cpu", "--seeds", "5", "--out", "x"]);
  assert.ok(a !== "help", "parsed as --help");
  assert.deepEqual(a.experiments, ["spectra"]);
  assert.equal(a.spec.seeds, 5);
  assert.equal(a.out, path.resolve("x"));
});

test("a fresh study refuses a non-empty output folder", () => {
  const dir = tmpDir("qkvflow-study-");
  fs.writeFileSync(path.join(dir, "x"), "");
  const r = spawnSync(process.execPath, ["--import", "tsx", cliFile, "study", "main", "--out", dir, "--data", dir], {
    cwd: root,
    encoding: "utf8",
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /not empty; pass --resume|data not found/);
});

test("jittered grid: nodes end at 1, steps sum to 1, u = 1 is the paper's fixed grid", () => {
  for (const n of [1, 2, 5]) {
    for (const u of [0, 0.3, 0.999]) {
      const g = jitteredGrid(n, u);
      assert.equal(g.t.at(-1), 1);
      const sum = g.dt.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-12, `n = ${n}, u = ${u}: steps sum to ${sum}`);
      // the first step is dt0 = u/n (the paper's generate_t draws dt0 ~ U(0, dt)); the others are 1/n, the last takes the rest
      const want = n === 1 ? [1] : [u / n, ...Array.from({ length: n - 2 }, () => 1 / n), 1 - (u + n - 2) / n];
      g.dt.forEach((d, k) => assert.ok(Math.abs(d - want[k]!) < 1e-12, `n = ${n}, u = ${u}: dt[${k}] = ${d}, expected ${want[k]}`));
    }
    const fixed = jitteredGrid(n, 1);
    fixed.t.forEach((t, k) => assert.ok(Math.abs(t - (k + 1) / n) < 1e-12, `u = 1: t[${k}] = ${t}, expected ${(k + 1) / n}`));
  }
});

test("FLOPs per token: GPT-2 by the closed form; DiffEqFormer adds 2 FLOPs per generator weight per time per batch token", () => {
  const spec = studySpec("cpu");
  const s = mainModelSections(spec);
  const E = spec.width.nEmbd,
    L = spec.layers,
    T = spec.seqLen,
    V = 50257;
  const gpt = 3 * (L * (24 * E * E + 2 * T * E) + 2 * E * V);
  assert.equal(flopsPerToken(s.gpt, spec, 512), gpt);
  const gen = countParameters(modelConfigOf(s.diffeqformer, spec)) - V * E - T * E - 2 * E;
  const def = flopsPerToken(s.diffeqformer, spec, 512);
  assert.ok(Math.abs(def - (gpt + (3 * 2 * gen * L) / 512)) < 1e-6, `DiffEqFormer: ${def} FLOPs per token`);
  // the parameter-matched GPT-2 is the depth closest to the DiffEqFormer's parameter count
  const target = countParameters(modelConfigOf(s.diffeqformer, spec));
  const l = (s["gpt-matched"] as { nLayer: number }).nLayer;
  const diff = (k: number) => Math.abs(countParameters(modelConfigOf({ ...s.gpt, nLayer: k }, spec)) - target);
  assert.ok(diff(l) <= diff(l - 1) && diff(l) <= diff(l + 1), `GPT-2 with ${l} layers is not the closest in parameters`);
});
