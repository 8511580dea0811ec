/**
 * End to end in a browser: the playground (examples/playground) built by the project and served with COOP/COEP by
 * its own server, driven through its controls in headless Chromium, on the CPU backend (WebAssembly SIMD) and on
 * the gpu backend (gpu.js on WebGL2, software GL: SwiftShader through ANGLE). Every number the page shows is
 * checked against Node's CPU backend computing the same thing from the files the page and the CLI exchange:
 *  - the first update's loss equals the loss of the same initial model on the same batch; the trained model the
 *    page downloads has a lower loss on that batch (training went downhill) and the loss chart grew with the updates;
 *  - pause stops the updates and resume continues them;
 *  - the downloaded model.safetensors loads in the CLI's loader (`loadModelFrom`) with the page's logits, and
 *    `qkvflow generate` runs on it;
 *  - generation streams (text visible while tokens are still coming) and gives `sampleTokens`' tokens;
 *  - for each depth M / solver / tolerance, perplexity equals the CLI's `evaluatePerplexity` on the same held-out
 *    tokens, and the evaluation count is M × stages (Euler 1, midpoint 2, RK4 4) or Node's count (dopri5);
 *  - a checkpoint written by `qkvflow train` opens in the page with Node's logits;
 *  - the Lyapunov map and spectra (CPU page) equal `analyzeModel`'s.
 * Screenshots of each panel go to $QKVFLOW_PLAYGROUND_SCREENSHOTS when set (docs/images is where the README's come
 * from). QKVFLOW_PLAYGROUND_BACKENDS=cpu (or webgl2) runs one backend only. Needs Chromium (QKVFLOW_CHROMIUM, else /usr/bin/chromium …) and playwright-core; skips without them unless
 * QKVFLOW_REQUIRE_BROWSER=1.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { random, setBackend, tensor } from "@qkvflow/autograd";
import { analyzeModel } from "@qkvflow/analysis";
import { main as cli } from "@qkvflow/cli";
import { createEmptyModel, createModel, resolveModelFile, validateConfig, type AnyModel, type ModelConfig } from "@qkvflow/models";
import { evaluatePerplexity, gpt2Tokenizer, loadModelFrom, sampleTokens } from "@qkvflow/train";
import type { Browser, Page } from "playwright-core";
import { buildPlayground } from "../examples/playground/build.js";
import { PLAYGROUND_MODEL, PLAYGROUND_TRAIN, batchStarts, windows } from "../examples/playground/engine.js";
import { serveStatic } from "../examples/playground/serve.js";
import { tmpDir } from "./helpers/tmp.js";
import { browserOrSkip, CHROMIUM_ARGS } from "./helpers/chromium.js";

/** The part of window.__playground.state the test reads. */
interface PageState {
  ready: boolean;
  busy: string | null;
  errors: string[];
  backend: {
    choice: string;
    name: string;
    mode: string;
    renderer: string | null;
    simd: boolean | null;
    threads: number | null;
    isolated: boolean;
  };
  model: { config: ModelConfig; origin: string };
  training: boolean;
  steps: { step: number; loss: number; tokens: number; ms: number }[];
  tokensPerSec: number | null;
  chartUpdates: number;
  generation: { running: boolean; ids: number[]; promptIds: number[]; text: string; firstTokenMs: number | null; runs: number };
  depth: { setting: { solver: string; steps: number; tol: number }; ppl: number | null; evaluations: number | null; runs: number };
  analysis: { runs: number; tokens: string[]; maxExponent: number[]; plots: string[] };
  longestTaskMs: number;
  longestTrainingTaskMs: number;
}

const pgState = (page: Page): Promise<PageState> =>
  page.evaluate(() => JSON.parse(JSON.stringify((window as unknown as { __playground: { state: unknown } }).__playground.state)));
const until = (page: Page, fn: string, timeout = 300_000) =>
  page.waitForFunction(
    `(() => { const s = window.__playground && window.__playground.state; if (!s) return false; if (s.errors.length) throw new Error(s.errors.join("; ")); return ${fn}; })()`,
    null,
    {
      timeout,
      polling: 50,
    },
  );

/** Worst |a − b| against the scale of b, with the index where it is largest. */
function worstDiff(a: ArrayLike<number>, b: ArrayLike<number>): { worst: number; at: number; scale: number } {
  assert.equal(a.length, b.length, "same number of values");
  let worst = 0,
    at = 0,
    scale = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  return { worst, at, scale };
}

function assertLogits(page: number[], node: ArrayLike<number>, what: string): void {
  const { worst, at, scale } = worstDiff(page, node);
  assert.ok(worst <= 1e-4 * scale + 1e-5, `${what}: logit ${at} is ${page[at]} in the page, ${node[at]} in Node (scale ${scale})`);
}

function nodeLogits(model: AnyModel, ids: number[]): Float32Array {
  setBackend("cpu");
  const x = tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: "int32" });
  return Float32Array.from(model.logits(x, { training: false }).data());
}

function nodeLoss(model: AnyModel, b: { inputs: Int32Array; targets: Int32Array }, shape: number[]): number {
  setBackend("cpu");
  const x = tensor(b.inputs, { shape, dtype: "int32" });
  const y = tensor(b.targets, { shape, dtype: "int32" });
  return model.loss(x, y, { training: false }).item();
}

/** The solver section the depth panel's setting stands for (written out here, not taken from the page's code). */
function solverSection(s: { solver: string; steps: number; tol: number }): Record<string, unknown> {
  if (s.solver === "euler") return { method: "euler-right-time", steps: s.steps };
  if (s.solver === "dopri5") return { method: "dopri5", rtol: s.tol, atol: s.tol, maxSteps: 200 };
  return { method: s.solver, steps: s.steps };
}

/** The CLI's perplexity of `model` with another solver on `ids`, and the evaluations of its last forward pass. */
function nodePerplexity(
  model: AnyModel,
  ids: number[],
  s: { solver: string; steps: number; tol: number },
): { ppl: number; evaluations: number } {
  setBackend("cpu");
  const m = createEmptyModel(validateConfig({ ...model.config, solver: solverSection(s) }));
  m.loadStateDict(model.parameters(), { strict: true });
  const r = evaluatePerplexity(m, Int32Array.from(ids), { seqLen: Math.min(32, m.config.blockSize), batchSize: 8 });
  return { ppl: r.ppl, evaluations: (m as { lastEvaluations?: number }).lastEvaluations ?? -1 };
}

const STAGES: Record<string, number> = { euler: 1, midpoint: 2, rk4: 4 };
const DESIGN_MD = join(dirname(fileURLToPath(import.meta.url)), "..", "docs", "design.md");

interface Scenario {
  backend: "cpu" | "webgl2";
  mode: string;
  batch: number;
  seq: number;
  steps: number;
  genTokens: number;
  evalTokens: number;
  depth: { solver: string; steps: number; tol: number }[];
  /** dopri5 evaluation counts may differ from Node's by this much (float32 GPU arithmetic moves step sizes). */
  dopriSlack: number;
  analyse: boolean;
  /** Bound on the longest main-thread task while training (ms), where training runs off the main thread; null: not asserted. */
  maxTrainingTaskMs: number | null;
}

const SCENARIOS: Scenario[] = [
  {
    backend: "cpu",
    mode: "wasm-simd",
    batch: 4,
    seq: 32,
    steps: 4,
    genTokens: 12,
    evalTokens: 256,
    depth: [
      { solver: "euler", steps: 2, tol: 1e-3 },
      { solver: "euler", steps: 8, tol: 1e-3 },
      { solver: "midpoint", steps: 3, tol: 1e-3 },
      { solver: "rk4", steps: 2, tol: 1e-3 },
      { solver: "dopri5", steps: 2, tol: 1e-2 },
    ],
    dopriSlack: 0,
    analyse: true,
    // CPU training runs in a worker: the page's main thread only draws the chart
    maxTrainingTaskMs: 200,
  },
  {
    backend: "webgl2",
    mode: "webgl2",
    batch: 1,
    seq: 8,
    steps: 2,
    genTokens: 3,
    evalTokens: 16,
    depth: [
      { solver: "euler", steps: 2, tol: 1e-3 },
      { solver: "rk4", steps: 1, tol: 1e-3 },
    ],
    dopriSlack: 12,
    analyse: false,
    // gpu.js needs the page's WebGL context: training runs on the main thread, one update per task
    maxTrainingTaskMs: null,
  },
];

/** A checkpoint written by `qkvflow train` (a small DiffEqFormer, two updates on the project's design notes). */
async function cliCheckpoint(dir: string): Promise<string> {
  const argv = [
    "train",
    "--config",
    "tiny-diffeqformer-wikitext2",
    "--set",
    "data.dataset=text",
    "--data",
    DESIGN_MD,
    ...["model.nEmbd=16", "model.nHead=2", "model.nLayer=2", "model.blockSize=16", "data.seqLen=16"].flatMap((s) => ["--set", s]),
    ...["train.batchSize=2", "train.evalEvery=0", "train.checkpointEvery=0", "train.progress=none"].flatMap((s) => ["--set", s]),
    "--steps",
    "2",
    "--out",
    dir,
  ];
  const log = console.log;
  console.log = () => undefined;
  try {
    assert.equal(await cli(argv), 0, "qkvflow train wrote a checkpoint");
  } finally {
    console.log = log;
  }
  return resolveModelFile(dir);
}

/** Clicks a button from inside the page (one round trip: no waiting for actionability while updates hold the main thread). */
const press = (page: Page, id: string) => page.evaluate((i) => document.getElementById(i)!.click(), id);

async function setValue(page: Page, id: string, value: string, events: string[] = ["input", "change"]): Promise<void> {
  await page.$eval(
    `#${id}`,
    (el, [v, evs]) => {
      (el as HTMLInputElement).value = v as string;
      for (const e of evs as string[]) el.dispatchEvent(new Event(e, { bubbles: true }));
    },
    [value, events] as const,
  );
}

async function runScenario(
  browser: Browser,
  url: string,
  sc: Scenario,
  cliModel: string,
  work: string,
  paste: boolean,
  diag: (m: string) => void,
  shot: (page: Page, panel: string) => Promise<void>,
): Promise<Page> {
  const t0 = Date.now();
  const lap = (what: string) => diag(`${sc.backend}: ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(`${url}?backend=${sc.backend}`, { waitUntil: "commit" });
  await until(page, "s.ready");
  let s = await pgState(page);
  assert.equal(s.backend.mode, sc.mode, `the page runs on ${sc.mode}: ${JSON.stringify(s.backend)}`);
  assert.equal(s.backend.isolated, true, "the server's COOP/COEP headers make the page cross-origin isolated");
  if (sc.backend === "cpu") assert.equal(s.backend.simd, true, "the CPU backend runs its WebAssembly SIMD kernels");
  else assert.match(s.backend.renderer ?? "", /SwiftShader/i, "the WebGL renderer is reported (software GL in this test)");
  const info = await page.textContent("#backend-info");
  assert.match(info!, sc.backend === "cpu" ? /WebAssembly SIMD kernels, 1 thread/ : /gpu\.js mode webgl2/);
  lap("ready");

  // ---- train, pause, resume (on the bundled excerpt, or on pasted text where the build had no data)
  if (paste) {
    await page.check("#source-paste");
    await page.fill("#text", readFileSync(DESIGN_MD, "utf8"));
  }
  await setValue(page, "batch", String(sc.batch));
  await setValue(page, "seq", String(sc.seq));
  await press(page, "train");
  // Pause is pressed by the check that sees the updates done, in the same task (a round trip from here would let
  // more updates run first)
  await until(page, `s.steps.length >= ${sc.steps} && (s.training && document.getElementById("train").click(), true)`);
  await until(page, "!s.training");
  const paused = (await pgState(page)).steps.length;
  await page.waitForTimeout(400);
  assert.equal((await pgState(page)).steps.length, paused, "no update while paused");
  await press(page, "train"); // resume
  await until(page, `s.steps.length >= ${paused + 1} && (s.training && document.getElementById("train").click(), true)`);
  await until(page, "!s.training");
  s = await pgState(page);
  lap(`${s.steps.length} updates`);
  assert.deepEqual(
    s.steps.map((r) => r.step),
    s.steps.map((_, i) => i + 1),
    "updates are numbered 1, 2, … across pause and resume",
  );
  assert.ok(s.chartUpdates >= s.steps.length, "the loss chart was redrawn after every update");
  const markers = await page.$$eval("#loss-chart svg circle.marker", (els) => els.length);
  assert.equal(markers, s.steps.length, "the loss chart has one point per update");
  assert.ok(s.tokensPerSec !== null && s.tokensPerSec > 0, `tokens/s shown: ${s.tokensPerSec}`);
  assert.equal(await page.textContent("#step"), String(s.steps.length));
  await shot(page, "train");

  // the first update's loss: the seed-0 model on the first batch, computed by Node
  const trainIds: number[] = await page.evaluate(() =>
    (window as unknown as { __playground: { trainIds(): number[] } }).__playground.trainIds(),
  );
  const shape = [sc.batch, sc.seq];
  const batch0 = windows(trainIds, batchStarts(0, sc.batch, trainIds.length, sc.seq, PLAYGROUND_TRAIN.seed), sc.seq);
  setBackend("cpu");
  const initial = createModel(PLAYGROUND_MODEL, random.key(PLAYGROUND_TRAIN.seed));
  const loss0 = nodeLoss(initial, batch0, shape);
  assert.ok(Math.abs(s.steps[0]!.loss - loss0) <= 1e-4 * loss0, `first loss ${s.steps[0]!.loss} in the page, ${loss0} in Node`);

  // ---- download: the CLI's loader reads it, with the page's logits, and the loss on batch 0 went down
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  const file = join(work, `${sc.backend}-model.safetensors`);
  await download.saveAs(file);
  const trained = loadModelFrom(file).model as AnyModel;
  const lossAfter = nodeLoss(trained, batch0, shape);
  assert.ok(
    lossAfter < loss0 - 0.01,
    `the loss on the first batch went down from ${loss0} to ${lossAfter} after ${s.steps.length} updates`,
  );
  const probe = trainIds.slice(100, 112);
  const pageLogits: number[] = await page.evaluate(
    (ids) => (window as unknown as { __playground: { logits(i: number[]): number[] } }).__playground.logits(ids),
    probe,
  );
  assertLogits(pageLogits, nodeLogits(trained, probe), "downloaded model");
  const out: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void out.push(a.join(" "));
  try {
    assert.equal(await cli(["generate", "--checkpoint", file, "--prompt", "The", "--max-tokens", "3", "--temperature", "0"]), 0);
  } finally {
    console.log = log;
  }
  assert.match(out.join("\n"), /^The/, "qkvflow generate continues the prompt from the downloaded checkpoint");
  lap("download checked");

  // ---- generate: streamed, and the tokens sampleTokens draws
  const prompt = "The game was";
  await page.fill("#prompt", prompt);
  await page.fill("#temperature", "0.8");
  await page.fill("#topk", "40");
  await page.fill("#max-tokens", String(sc.genTokens));
  const runs = (await pgState(page)).generation.runs;
  // every DOM change of the output is seen by an observer: streamed text shows up in as many separate tasks as tokens
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { __seen: string[] }).__seen = seen;
    const out = document.getElementById("gen-output")!;
    new MutationObserver(() => seen.push(document.getElementById("gen-new")?.textContent ?? "")).observe(out, {
      childList: true,
      subtree: true,
      characterData: true,
    });
  });
  await page.click("#generate");
  await until(page, `s.generation.runs > ${runs}`);
  s = await pgState(page);
  const seen = [...new Set(await page.evaluate(() => (window as unknown as { __seen: string[] }).__seen))].filter((x) => x.length > 0);
  assert.equal(seen.length, sc.genTokens, `the text was updated once per token, in separate tasks: ${JSON.stringify(seen)}`);
  const expected = sampleTokens(trained, gpt2Tokenizer.encode(prompt), {
    maxNewTokens: sc.genTokens,
    temperature: 0.8,
    topK: 40,
    key: random.key(0),
  });
  assert.deepEqual(s.generation.ids, expected, "the page samples the tokens sampleTokens draws with the same seed");
  assert.equal(await page.textContent("#gen-new"), gpt2Tokenizer.decode(expected));
  await shot(page, "generate");
  lap(`generated ${sc.genTokens} tokens, first after ${s.generation.firstTokenMs?.toFixed(0)} ms`);

  // ---- depth and solver: perplexity and evaluation counts against the CLI's evaluation in Node
  await setValue(page, "eval-tokens", String(sc.evalTokens), []);
  const held: number[] = await page.evaluate(() =>
    (window as unknown as { __playground: { heldOutIds(): number[] } }).__playground.heldOutIds(),
  );
  assert.equal(held.length, sc.evalTokens);
  const ppls: number[] = [];
  for (const d of sc.depth) {
    const before = (await pgState(page)).depth.runs;
    await setValue(page, "depth", String(d.steps), []);
    await setValue(page, "tol", d.tol.toExponential(), []); // the menu's values: 1e-1 … 1e-5
    await page.selectOption("#solver", d.solver); // one change event: the setting is evaluated once
    await until(page, `s.depth.runs > ${before} && !s.busy`);
    s = await pgState(page);
    assert.deepEqual(s.depth.setting, d);
    const ref = nodePerplexity(trained, held, d);
    assert.ok(
      Math.abs(s.depth.ppl! - ref.ppl) <= 1e-3 * ref.ppl,
      `${JSON.stringify(d)}: perplexity ${s.depth.ppl} in the page, ${ref.ppl} in Node`,
    );
    if (d.solver === "dopri5") {
      assert.ok(
        Math.abs(s.depth.evaluations! - ref.evaluations) <= sc.dopriSlack,
        `dopri5: ${s.depth.evaluations} evaluations, Node ${ref.evaluations}`,
      );
    } else {
      assert.equal(s.depth.evaluations, d.steps * STAGES[d.solver]!, `${d.solver} with M = ${d.steps}`);
    }
    assert.match((await page.textContent("#nfe"))!, new RegExp(`^${s.depth.evaluations}`));
    ppls.push(s.depth.ppl!);
  }
  assert.ok(new Set(ppls.map((p) => p.toFixed(6))).size === ppls.length, `perplexity changes with the setting: ${ppls.join(", ")}`);
  // the slider moves like a user's: input and change events
  const before = (await pgState(page)).depth.runs;
  await page.selectOption("#solver", "euler");
  await until(page, `s.depth.runs > ${before} && !s.busy`);
  await setValue(page, "depth", "3");
  await until(page, `s.depth.runs > ${before + 1} && !s.busy`);
  s = await pgState(page);
  assert.deepEqual([s.depth.setting.steps, s.depth.evaluations], [3, 3]);
  assert.equal(await page.textContent("#depth-value"), "3");
  await shot(page, "depth");
  lap("depth and solver checked");

  // ---- a checkpoint written by `qkvflow train` opens with Node's logits
  await page.setInputFiles("#upload", cliModel);
  await until(page, `s.model.origin.includes("model.safetensors") && !s.busy && s.depth.runs > ${before + 2}`);
  s = await pgState(page);
  const fromCli = loadModelFrom(cliModel).model as AnyModel;
  assert.deepEqual(s.model.config, fromCli.config);
  const ids = gpt2Tokenizer.encode(" = Valkyria Chronicles III = \n");
  const cliLogits: number[] = await page.evaluate(
    (i) => (window as unknown as { __playground: { logits(i: number[]): number[] } }).__playground.logits(i),
    ids,
  );
  assertLogits(cliLogits, nodeLogits(fromCli, ids), "checkpoint written by qkvflow train");
  lap("CLI checkpoint checked");

  // ---- look inside (CPU page): the analysis package's results for the same model and prompt
  if (sc.analyse) {
    await page.fill("#prompt", "The game was released in Japan");
    await page.click("#analyze");
    await until(page, "s.analysis.runs >= 1 && !s.busy");
    s = await pgState(page);
    setBackend("cpu");
    const ref = analyzeModel(fromCli, {
      label: "playground",
      texts: ["The game was released in Japan"],
      tokenizer: gpt2Tokenizer,
      maxTokens: 16,
      times: Array.from({ length: 9 }, (_, i) => i / 8),
    });
    const want = ref.sentences[0]!.maxExponent;
    const { worst, at, scale } = worstDiff(s.analysis.maxExponent, want);
    assert.ok(worst <= 1e-9 * scale + 1e-12, `Lyapunov exponent ${at}: ${s.analysis.maxExponent[at]} in the page, ${want[at]} in Node`);
    assert.deepEqual(s.analysis.tokens, ref.sentences[0]!.tokens);
    assert.equal(await page.$$eval("#lyapunov .tok", (e) => e.length), want.length);
    assert.equal(
      await page.$$eval("#spectra svg", (e) => e.length),
      7,
      "spectral radius and eigenvalue plots of QK, OV, FFN and the summary",
    );
    const radius = ref.spectra.stats.qk.map((st) => st.radius[0]!);
    const plotted = await page.$$eval("#spectra svg.spectra-qk.spectra-abs path.series", (e) => e.length);
    assert.equal(plotted, radius.length > 0 ? fromCli.config.nHead : 0, "one QK radius curve per head");
    await shot(page, "inside");
    lap("analysis checked");
  }

  s = await pgState(page);
  diag(
    `${sc.backend}: longest main-thread task ${s.longestTaskMs.toFixed(0)} ms (while training ${s.longestTrainingTaskMs.toFixed(0)} ms)`,
  );
  if (sc.maxTrainingTaskMs !== null) {
    assert.ok(
      s.longestTrainingTaskMs < sc.maxTrainingTaskMs,
      `longest main-thread task while training ${s.longestTrainingTaskMs.toFixed(0)} ms; expected < ${sc.maxTrainingTaskMs} ms`,
    );
  }
  assert.deepEqual(errors, [], "no uncaught page errors");
  assert.deepEqual(s.errors, [], "the page reported no errors");
  const foreign = requests.filter((r) => !r.startsWith(url) && !r.startsWith("blob:") && !r.startsWith("data:"));
  assert.deepEqual(foreign, [], "the page fetches nothing but its own files");
  return page;
}

describe("playground: a DiffEqFormer trained, sampled, re-integrated and analysed in headless Chromium", () => {
  it("matches Node on the CPU (WebAssembly) and gpu (WebGL2) backends", async (t) => {
    const browserFound = await browserOrSkip(t);
    if (!browserFound) return;
    const { exe, pw } = browserFound;
    const t0 = Date.now();
    const work = tmpDir("qkvflow-playground-");
    const built = await buildPlayground(join(work, "site"));
    if (!built.excerpt) t.diagnostic("no WikiText-2 data found: the page trains on text pasted by the test");
    t.diagnostic(
      `playground.js: ${(built.bundleBytes / 1e6).toFixed(2)} MB, playground-worker.js: ${(built.workerBytes / 1e6).toFixed(2)} MB`,
    );
    const { server, url } = await serveStatic(built.dir);
    const res = await fetch(url);
    assert.equal(res.headers.get("cross-origin-opener-policy"), "same-origin");
    assert.equal(res.headers.get("cross-origin-embedder-policy"), "require-corp");
    const cliModel = await cliCheckpoint(join(work, "cli-run"));
    const browser = await pw.chromium.launch({ executablePath: exe, headless: true, chromiumSandbox: false, args: CHROMIUM_ARGS });
    try {
      const only = process.env.QKVFLOW_PLAYGROUND_BACKENDS?.split(",");
      for (const sc of SCENARIOS.filter((x) => !only || only.includes(x.backend))) {
        const shots = process.env.QKVFLOW_PLAYGROUND_SCREENSHOTS;
        // each panel is photographed on the CPU page once its check has passed
        const shot = async (page: Page, panel: string): Promise<void> => {
          if (!shots || sc.backend !== "cpu") return;
          mkdirSync(shots, { recursive: true });
          await page.locator(`#panel-${panel}`).screenshot({ path: join(shots, `playground-${panel}.png`) });
        };
        const page = await runScenario(browser, url, sc, cliModel, work, !built.excerpt, (m) => t.diagnostic(m), shot);
        await page.context().close();
      }
    } finally {
      await browser.close();
      server.close();
    }
    t.diagnostic(`total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.ok(readFileSync(join(built.dir, "index.html"), "utf8").includes("CC BY-SA 3.0"), "the page cites the excerpt's licence");
  });
});
