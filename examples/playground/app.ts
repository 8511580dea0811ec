/**
 * The playground page: trains, samples from, re-integrates and analyses a small DiffEqFormer in the browser on the
 * backend the user picks (CPU: the WebAssembly SIMD kernels; GPU: gpu.js on WebGL2). CPU training and the CPU held-out
 * evaluation run in module workers (worker.ts), so the main thread only draws while it trains; on WebGL2 (gpu.js
 * needs the page's WebGL context) training and evaluation, and on both backends generation and analysis, run on the
 * main thread in short tasks (one update, one generated token, one evaluation per task). The longest main-thread task is measured and shown. The state the page reaches is published as
 * `window.__playground` (read by the end-to-end test; `?backend=webgl2|cpu` picks the starting backend).
 */
import { add, getBackend, setBackend, tensor, type Backend } from "../../packages/autograd/src/index.js";
import { kernelInfo } from "../../packages/autograd/src/backend/cpu/kernels/gemm.js";
import { createGpuBackend, type GpuBackend } from "@qkvflow/autograd/gpu";
import type { AnyModel } from "../../packages/models/src/factory.js";
import { gpt2Tokenizer } from "../../packages/train/src/data/tokenizer.js";
import { analyzeModel } from "../../packages/analysis/src/analyze.js";
import { HEAT_COLORS, HEAT_LEVELS, analysisPlots, heatColor, heatLevel, tokenText } from "../../packages/analysis/src/report.js";
import { escapeXml, fmtNum, linePlot } from "../../packages/analysis/src/svg.js";
import type { TrainReport, TrainRequest } from "./worker.js";
import {
  STAGES,
  TrainSession,
  heldOut,
  logitsOf,
  modelFileBytes,
  modelFromFile,
  newModel,
  nextToken,
  type DepthSetting,
  type SolverChoice,
  type StepRecord,
} from "./engine.js";

type BackendChoice = "cpu" | "webgl2";

/** What the page publishes for tests and for the curious (window.__playground). */
export interface PlaygroundState {
  ready: boolean;
  busy: string | null;
  errors: string[];
  backend: {
    choice: BackendChoice;
    name: string;
    mode: string;
    renderer: string | null;
    simd: boolean | null;
    threads: number | null;
    isolated: boolean;
  };
  data: { source: "excerpt" | "paste"; excerpt: boolean; trainTokens: number; heldOutTokens: number };
  model: { config: unknown; parameters: number; origin: string };
  training: boolean;
  steps: StepRecord[];
  tokensPerSec: number | null;
  chartUpdates: number;
  generation: {
    running: boolean;
    ids: number[];
    promptIds: number[];
    text: string;
    firstTokenMs: number | null;
    msPerToken: number | null;
    runs: number;
  };
  depth: {
    setting: DepthSetting;
    ppl: number | null;
    evaluations: number | null;
    runs: number;
    log: { setting: DepthSetting; ppl: number; evaluations: number }[];
  };
  analysis: { runs: number; tokens: string[]; maxExponent: number[]; plots: string[] };
  /** Longest main-thread task (PerformanceObserver 'longtask': tasks over 50 ms), overall and while training. */
  longestTaskMs: number;
  longestTrainingTaskMs: number;
  longTasks: number;
}

interface PlaygroundApi {
  state: PlaygroundState;
  /** Logits [T·V] of token ids under the current model, on the current backend. */
  logits(ids: number[]): number[];
  /** The held-out token ids the depth panel evaluates. */
  heldOutIds(): number[];
  /** The training token ids. */
  trainIds(): number[];
  /** The model file the download button gives. */
  modelFile(): Uint8Array;
}

declare global {
  interface Window {
    __playground?: PlaygroundApi;
  }
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`playground: the page has no element #${id}`);
  return el as T;
};

const query = new URLSearchParams(location.search);
const state: PlaygroundState = {
  ready: false,
  busy: null,
  errors: [],
  backend: {
    choice: "cpu",
    name: "cpu",
    mode: "",
    renderer: null,
    simd: null,
    threads: null,
    isolated: globalThis.crossOriginIsolated === true,
  },
  data: { source: "excerpt", excerpt: false, trainTokens: 0, heldOutTokens: 0 },
  model: { config: null, parameters: 0, origin: "" },
  training: false,
  steps: [],
  tokensPerSec: null,
  chartUpdates: 0,
  generation: { running: false, ids: [], promptIds: [], text: "", firstTokenMs: null, msPerToken: null, runs: 0 },
  depth: { setting: { solver: "euler", steps: 4, tol: 1e-3 }, ppl: null, evaluations: null, runs: 0, log: [] },
  analysis: { runs: 0, tokens: [], maxExponent: [], plots: [] },
  longestTaskMs: 0,
  longestTrainingTaskMs: 0,
  longTasks: 0,
};

let model: AnyModel;
let session: TrainSession | null = null;
let trainIds: number[] = [];
let heldIds: number[] = [];
let excerptText = "";
let heldText = "";
let gpu: GpuBackend | null = null;
/** The CPU training worker, whether it holds a training session for the current model and data, and how to end a wait on it. */
let trainer: Worker | null = null;
let trainerSession = false;
let trainerDone: (() => void) | null = null;
/** A second instance of the worker for the held-out evaluation on the CPU backend (so it runs while training too). */
let evaluator: Worker | null = null;

/** engine.ts's heldOut of the current model, computed in the evaluation worker. */
function heldOutInWorker(ids: number[], d: DepthSetting): Promise<{ ppl: number; evaluations: number }> {
  return new Promise((done, reject) => {
    const w = (evaluator ??= new Worker("playground-worker.js", { type: "module", name: "qkvflow-evaluation" }));
    w.onmessage = (ev: MessageEvent<TrainReport>) => {
      const m = ev.data;
      if (m.type === "evaluated") done(m);
      else reject(new Error(m.type === "error" ? m.message : `unexpected '${m.type}' from the evaluation worker`));
    };
    w.onerror = (ev) => {
      ev.preventDefault();
      evaluator?.terminate();
      evaluator = null;
      reject(new Error(`evaluation worker: ${ev.message || "failed to start (playground-worker.js)"}`));
    };
    const bytes = modelFileBytes(model);
    const tokens = Int32Array.from(ids);
    w.postMessage({ type: "evaluate", model: bytes, tokens, setting: d } satisfies TrainRequest, [bytes.buffer, tokens.buffer]);
  });
}

/** Ends the training session (new model, data or batch shape): the worker, if any, is stopped with it. */
function dropSession(): void {
  session = null;
  trainerSession = false;
  if (trainer) {
    trainer.terminate();
    trainer = null;
  }
  trainerDone?.();
  trainerDone = null;
}

/** Lets the browser render and handle input before the next chunk of work. */
const yieldToBrowser = (): Promise<void> => new Promise((ok) => setTimeout(ok, 0));

function status(msg: string, error = false): void {
  const el = $("status");
  el.textContent = msg;
  el.className = error ? "note error" : "note";
}

function fail(where: string, e: unknown): void {
  const msg = `${where}: ${e instanceof Error ? e.message : String(e)}`;
  state.errors.push(msg);
  status(msg, true);
  console.error(e);
}

// ---- longest main-thread task -------------------------------------------------------------------------------
/** The times (performance.now) training started and stopped: a long task counts as a training one if it began in one. */
const trainingSpans: { from: number; to: number | null }[] = [];
const duringTraining = (t: number): boolean => trainingSpans.some((sp) => t >= sp.from && (sp.to === null || t <= sp.to));

function watchLongTasks(): void {
  try {
    const po = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        state.longTasks++;
        state.longestTaskMs = Math.max(state.longestTaskMs, e.duration);
        if (duringTraining(e.startTime)) state.longestTrainingTaskMs = Math.max(state.longestTrainingTaskMs, e.duration);
      }
      $("longtask").textContent = `${state.longestTrainingTaskMs.toFixed(0)} ms`;
    });
    po.observe({ type: "longtask", buffered: true });
  } catch {
    $("longtask").textContent = "not measurable in this browser";
  }
}

// ---- backends ---------------------------------------------------------------------------------------------
function describeBackend(): void {
  const b = state.backend;
  if (b.choice === "cpu") {
    const k = kernelInfo();
    b.name = "cpu";
    b.mode = k.simd ? "wasm-simd" : "typescript";
    b.simd = k.simd;
    b.threads = k.threads;
    b.renderer = null;
    const iso = b.isolated
      ? "cross-origin isolated (shared memory available), but the kernel worker pool needs Node's worker_threads: the kernels run on one thread"
      : "not cross-origin isolated (serve with COOP/COEP headers, as `npm run playground` does): one thread";
    $("backend-info").textContent =
      `running: CPU, ${k.simd ? "WebAssembly SIMD kernels" : "TypeScript kernels (no WebAssembly SIMD here)"}, ${k.threads} thread${k.threads === 1 ? "" : "s"}; ${iso}; training and evaluation run in workers, generation and analysis on the page`;
  } else {
    const g = gpu!;
    b.name = "gpu";
    b.mode = g.mode;
    b.simd = null;
    b.threads = null;
    const ctx = (g.gpu as unknown as { context?: WebGLRenderingContext | null }).context;
    let renderer = "none";
    if (ctx && typeof ctx.getParameter === "function") {
      const info = ctx.getExtension("WEBGL_debug_renderer_info");
      renderer = String(ctx.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : ctx.RENDERER));
    }
    b.renderer = renderer;
    $("backend-info").textContent =
      `running: gpu.js mode ${g.mode}${g.fallbackReason ? ` (asked for ${g.requestedMode}: ${g.fallbackReason})` : ""}, renderer ${renderer}`;
  }
}

function backendFor(choice: BackendChoice): Backend | string {
  if (choice === "cpu") return "cpu";
  gpu ??= createGpuBackend({ mode: "webgl2", onModeMismatch: "error" });
  return gpu;
}

/** Moves the current model (through its model file) onto the chosen backend; AdamW restarts there. */
function switchBackend(choice: BackendChoice): void {
  const bytes = model ? modelFileBytes(model) : null;
  setBackend(backendFor(choice));
  // one small kernel, so that gpu.js has made its WebGL context (and says which renderer) before it is reported
  if (choice !== "cpu") add(tensor([1, 2]), tensor([3, 4])).data();
  state.backend.choice = choice;
  describeBackend();
  if (bytes) setModel(modelFromFile(bytes), state.model.origin);
}

// ---- data ---------------------------------------------------------------------------------------------------
async function encodeChunked(text: string): Promise<number[]> {
  const out: number[] = [];
  const CH = 16_000;
  for (let i = 0; i < text.length; ) {
    let end = Math.min(text.length, i + CH);
    const nl = text.indexOf("\n", end);
    end = nl < 0 ? text.length : nl + 1;
    for (const id of gpt2Tokenizer.encode(text.slice(i, end))) out.push(id);
    i = end;
    await yieldToBrowser();
  }
  return out;
}

async function loadExcerpt(): Promise<void> {
  try {
    const [tr, ho] = await Promise.all([fetch("data/wikitext-2-train.txt"), fetch("data/wikitext-2-heldout.txt")]);
    if (!tr.ok || !ho.ok) throw new Error("not built");
    excerptText = await tr.text();
    heldText = await ho.text();
    state.data.excerpt = true;
    $("data-note").textContent =
      `Bundled excerpt: the first ${(excerptText.length / 1000).toFixed(0)} KB of WikiText-2's training split (text from Wikipedia, CC BY-SA 3.0; Merity et al. 2016) to train on, and the next ${(heldText.length / 1000).toFixed(0)} KB as held-out text.`;
  } catch {
    state.data.excerpt = false;
    ($("source-paste") as HTMLInputElement).checked = true;
    ($("source-excerpt") as HTMLInputElement).disabled = true;
    $("data-note").textContent =
      "No WikiText-2 excerpt in this build (the data folder was not found when it was built): paste text above; its last tenth is held out.";
  }
}

/** Tokenises the chosen training text; pasted text gives its last tenth as held-out text. */
async function prepareData(): Promise<void> {
  const paste = ($("source-paste") as HTMLInputElement).checked;
  state.data.source = paste ? "paste" : "excerpt";
  if (paste) {
    const text = ($("text") as HTMLTextAreaElement).value;
    const ids = await encodeChunked(text);
    const cut = Math.floor(ids.length * 0.9);
    trainIds = ids.slice(0, cut);
    heldIds = ids.slice(cut);
  } else {
    trainIds = await encodeChunked(excerptText);
    heldIds = await encodeChunked(heldText);
  }
  state.data.trainTokens = trainIds.length;
  state.data.heldOutTokens = heldIds.length;
}

// ---- model ------------------------------------------------------------------------------------------------
function setModel(m: AnyModel, origin: string): void {
  if (m.config.kind !== "diffeqformer") {
    throw new Error(`the checkpoint holds a '${m.config.kind}' model; the playground runs DiffEqFormer checkpoints (kind 'diffeqformer')`);
  }
  model = m;
  dropSession();
  const sep = document.createElement("tr");
  sep.innerHTML = `<td colspan="4" class="note">model: ${escapeXml(origin)}</td>`;
  $("depth-log").querySelector("tbody")!.prepend(sep);
  const c = m.config;
  state.model = { config: c, parameters: m.numParameters(), origin };
  $("model-info").textContent =
    `Model (${origin}): DiffEqFormer, width ${c.nEmbd}, ${c.nHead} heads, ${c.nLayer} Euler steps in training, context ${c.blockSize}, ` +
    `GPT-2 vocabulary (${c.vocabSize}); ${m.numParameters().toLocaleString("en")} parameters.`;
}

// ---- training ------------------------------------------------------------------------------------------------
function drawLoss(): void {
  const pts = state.steps.map((s) => [s.step, s.loss] as [number, number]);
  if (pts.length < 1) {
    $("loss-chart").innerHTML = "";
    return;
  }
  $("loss-chart").innerHTML = linePlot([{ label: "training loss", points: pts }], {
    title: "training loss (nats per token)",
    xLabel: "update",
    yLabel: "loss",
    className: "loss-plot",
    height: 240,
  });
  state.chartUpdates++;
}

/** Records and shows one finished update. */
const recent: StepRecord[] = [];
function showStep(r: StepRecord): void {
  state.steps.push(r);
  recent.push(r);
  if (recent.length > 5) recent.shift();
  const ms = recent.reduce((a, s) => a + s.ms, 0);
  state.tokensPerSec = (recent.reduce((a, s) => a + s.tokens, 0) / ms) * 1000;
  $("step").textContent = String(r.step);
  $("loss").textContent = r.loss.toFixed(4);
  $("tps").textContent = state.tokensPerSec.toFixed(0);
  drawLoss();
}

/**
 * CPU training in the worker until it pauses: the worker gets the model file and the token ids (once per session),
 * reports each update, and sends the trained model file back when it has seen the pause request; the page's model
 * is then replaced by it. Resolves when the worker has paused or the session was dropped.
 */
function trainInWorker(batchSize: number, seqLen: number): Promise<void> {
  return new Promise((done, reject) => {
    const w = (trainer ??= new Worker("playground-worker.js", { type: "module", name: "qkvflow-training" }));
    trainerDone = done;
    w.onmessage = (ev: MessageEvent<TrainReport>) => {
      const m = ev.data;
      if (m.type === "step") showStep(m.record);
      else if (m.type === "paused") {
        model = modelFromFile(m.model);
        trainerDone = null;
        done();
      } else {
        trainerSession = false;
        trainerDone = null;
        reject(new Error(`training worker: ${m.type === "error" ? m.message : `unexpected '${m.type}'`}`));
      }
    };
    w.onerror = (ev) => {
      ev.preventDefault();
      dropSession();
      reject(new Error(`training worker: ${ev.message || "failed to start (playground-worker.js)"}`));
    };
    const send = (m: TrainRequest, transfer: Transferable[] = []) => w.postMessage(m, transfer);
    if (trainerSession) send({ type: "resume" });
    else {
      const bytes = modelFileBytes(model);
      const tokens = Int32Array.from(trainIds);
      const step = state.steps.length ? state.steps[state.steps.length - 1]!.step : 0;
      send({ type: "start", model: bytes, tokens, batchSize, seqLen, step }, [bytes.buffer, tokens.buffer]);
      trainerSession = true;
    }
  });
}

async function trainLoop(): Promise<void> {
  if (state.training) {
    // pause: the loop (or the worker) stops after the current update
    if (trainer && trainerDone) {
      trainer.postMessage({ type: "pause" } satisfies TrainRequest);
      $("train").textContent = "Pausing…";
    } else state.training = false;
    return;
  }
  if (state.busy) return;
  state.training = true;
  $("train").textContent = "Pause";
  const span = { from: performance.now(), to: null as number | null };
  trainingSpans.push(span);
  try {
    const batchSize = Number(($("batch") as HTMLInputElement).value);
    const seqLen = Math.min(Number(($("seq") as HTMLInputElement).value), (model.config as { blockSize: number }).blockSize);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch is ${batchSize}; expected an integer >= 1`);
    if (!Number.isInteger(seqLen) || seqLen < 2) throw new Error(`sequence length is ${seqLen}; expected an integer >= 2`);
    if (!session && !trainerSession) {
      status("tokenising…");
      await prepareData();
      if (trainIds.length < seqLen + 1) {
        throw new Error(`the training text has ${trainIds.length} tokens; expected at least ${seqLen + 1}`);
      }
    }
    if (state.backend.choice === "cpu") {
      status("training (in a worker)");
      await trainInWorker(batchSize, seqLen);
    } else {
      if (!session) {
        session = new TrainSession(model, trainIds, { batchSize, seqLen });
        session.step = state.steps.length ? state.steps[state.steps.length - 1]!.step : 0;
      }
      status("training");
      const sess = session;
      // a new model (reset, upload, backend switch) ends the loop
      while (state.training && session === sess) {
        showStep(sess.update());
        await yieldToBrowser();
      }
    }
    const last = state.steps[state.steps.length - 1];
    status(`paused after update ${last ? last.step : 0}`);
  } catch (e) {
    fail("training", e);
  } finally {
    span.to = performance.now();
    state.training = false;
    $("train").textContent = "Train";
  }
}

// ---- checkpoints ----------------------------------------------------------------------------------------------
function download(): void {
  const bytes = modelFileBytes(model);
  const url = URL.createObjectURL(new Blob([new Uint8Array(bytes)], { type: "application/octet-stream" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = "model.safetensors";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  $("ckpt-info").textContent =
    `downloaded model.safetensors (${(bytes.length / 1e6).toFixed(2)} MB): qkvflow generate --checkpoint model.safetensors --prompt …`;
}

async function upload(file: File): Promise<void> {
  state.training = false;
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    setModel(modelFromFile(bytes, file.name), `opened from ${file.name}`);
    state.steps = [];
    drawLoss();
    $("step").textContent = "0";
    $("loss").textContent = "–";
    $("ckpt-info").textContent = `opened ${file.name}; training continues from these weights with a fresh optimizer state`;
    status(`checkpoint ${file.name} loaded`);
    await runDepth();
  } catch (e) {
    fail(`opening ${file.name}`, e);
  }
}

// ---- generation ---------------------------------------------------------------------------------------------------
async function generate(): Promise<void> {
  if (state.generation.running || state.busy) return;
  const g = state.generation;
  g.running = true;
  const t0 = performance.now();
  try {
    const prompt = ($("prompt") as HTMLInputElement).value;
    const promptIds = gpt2Tokenizer.encode(prompt);
    if (promptIds.length === 0) throw new Error("the prompt is empty; type a few words");
    const temperature = Number(($("temperature") as HTMLInputElement).value);
    const topK = Number(($("topk") as HTMLInputElement).value);
    const n = Number(($("max-tokens") as HTMLInputElement).value);
    if (!(temperature >= 0)) throw new Error(`temperature is ${temperature}; expected a number >= 0`);
    if (!Number.isInteger(topK) || topK < 0) throw new Error(`top-k is ${topK}; expected an integer >= 0 (0: all tokens)`);
    if (!Number.isInteger(n) || n < 1) throw new Error(`tokens is ${n}; expected an integer >= 1`);
    g.promptIds = promptIds;
    g.ids = [];
    g.text = "";
    g.firstTokenMs = null;
    const out = $("gen-output");
    out.innerHTML = `<span class="prompt">${escapeXml(prompt)}</span><span id="gen-new"></span>`;
    const seq = [...promptIds];
    for (let i = 0; i < n; i++) {
      const id = nextToken(model, seq, i, { temperature, topK, seed: 0 });
      seq.push(id);
      g.ids.push(id);
      if (g.firstTokenMs === null) g.firstTokenMs = performance.now() - t0;
      g.text = gpt2Tokenizer.decode(g.ids);
      $("gen-new").textContent = g.text;
      await yieldToBrowser();
    }
    g.msPerToken = (performance.now() - t0) / n;
    $("gen-info").textContent =
      `first token after ${g.firstTokenMs!.toFixed(0)} ms; ${g.msPerToken.toFixed(0)} ms per token (temperature ${temperature}, top-k ${topK || "off"}, seed 0)`;
    g.runs++;
  } catch (e) {
    fail("generation", e);
  } finally {
    g.running = false;
  }
}

// ---- depth and solver ---------------------------------------------------------------------------------------------------
/** The held-out tokens evaluated: the first N (the "held-out tokens" field). */
function evalIds(): number[] {
  const n = Number(($("eval-tokens") as HTMLInputElement).value);
  if (!Number.isInteger(n) || n < 2) throw new Error(`held-out tokens is ${n}; expected an integer >= 2`);
  return heldIds.slice(0, n);
}

function depthSetting(): DepthSetting {
  return {
    solver: ($("solver") as HTMLSelectElement).value as SolverChoice,
    steps: Number(($("depth") as HTMLInputElement).value),
    tol: Number(($("tol") as HTMLSelectElement).value),
  };
}

let depthQueued = false;
async function runDepth(): Promise<void> {
  if (depthQueued) return;
  depthQueued = true;
  while (state.busy) await new Promise((ok) => setTimeout(ok, 20));
  depthQueued = false;
  const d = depthSetting();
  $("depth-value").textContent = String(d.steps);
  ($("tol") as HTMLSelectElement).disabled = d.solver !== "dopri5";
  ($("depth") as HTMLInputElement).disabled = d.solver === "dopri5";
  if (heldIds.length < 2) {
    await prepareData();
    if (heldIds.length < 2) {
      $("ppl").textContent = "no held-out text";
      return;
    }
  }
  state.busy = "depth";
  try {
    await yieldToBrowser();
    const r = state.backend.choice === "cpu" ? await heldOutInWorker(evalIds(), d) : heldOut(model, evalIds(), d);
    state.depth.setting = d;
    state.depth.ppl = r.ppl;
    state.depth.evaluations = r.evaluations;
    state.depth.runs++;
    state.depth.log.push({ setting: d, ppl: r.ppl, evaluations: r.evaluations });
    $("ppl").textContent = r.ppl.toFixed(2);
    const expected = d.solver === "dopri5" ? "" : ` (= ${d.steps} × ${STAGES[d.solver]})`;
    $("nfe").textContent = `${r.evaluations}${expected}`;
    const row = document.createElement("tr");
    row.innerHTML = `<td>${d.solver}</td><td>${d.solver === "dopri5" ? `tol ${d.tol}` : `M = ${d.steps}`}</td><td>${r.evaluations}</td><td>${r.ppl.toFixed(2)}</td>`;
    $("depth-log").querySelector("tbody")!.prepend(row);
  } catch (e) {
    fail("evaluation", e);
  } finally {
    state.busy = null;
  }
}

// ---- look inside ---------------------------------------------------------------------------------------------------
function heatSpans(tokens: readonly string[], values: readonly number[], query: number): string {
  const src = values.slice(0, query);
  const lo = Math.min(...src),
    hi = Math.max(...src);
  const rgb = HEAT_COLORS.lyapunov;
  const spans = tokens.map((t, k) => {
    const text = escapeXml(tokenText(t));
    if (k === query) return `<span class="tok query" title="query token (not scored)">${text}</span>`;
    const lvl = heatLevel(values[k]!, lo, hi);
    return `<span class="tok heat" data-level="${lvl}" style="background-color:${heatColor(lvl, rgb)}" title="max exponent ${escapeXml(fmtNum(values[k]!))}">${text}</span>`;
  });
  const legend = `<div class="legend"><span class="lg" style="background:${heatColor(0, rgb)}">${escapeXml(fmtNum(lo))}</span><span class="lg" style="background:linear-gradient(to right, ${heatColor(0, rgb)}, ${heatColor(HEAT_LEVELS - 1, rgb)})">&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;&nbsp;</span><span class="lg" style="background:${heatColor(HEAT_LEVELS - 1, rgb)};color:#fff">${escapeXml(fmtNum(hi))}</span></div>`;
  return `<div class="hm-title">Lyapunov heat map: max exponent of each prompt token for the last token</div><div class="tokens">${spans.join("")}</div>${legend}`;
}

async function analyse(): Promise<void> {
  if (state.busy || state.training) return;
  state.busy = "analysis";
  status("analysing (float64, CPU backend)…");
  await yieldToBrowser();
  const current = getBackend();
  try {
    // spectra and Jacobians need float64, which only the CPU backend has: a CPU copy of the model is analysed
    setBackend("cpu");
    const cpuModel = modelFromFile(modelFileBytes(model));
    const prompt = ($("prompt") as HTMLInputElement).value;
    const times = Array.from({ length: 9 }, (_, i) => i / 8);
    const r = analyzeModel(cpuModel, { label: "playground", texts: [prompt], tokenizer: gpt2Tokenizer, maxTokens: 16, times });
    const plots = analysisPlots(r, 1);
    const keys = ["qk-abs", "ov-abs", "ffn-abs", "qk-complex", "ov-complex", "ffn-complex", "spectra-summary"].map(
      (k) => `playground-${k}`,
    );
    state.analysis.plots = keys.filter((k) => plots[k] !== undefined);
    $("spectra").innerHTML = state.analysis.plots.map((k) => plots[k]).join("");
    const s = r.sentences[0];
    if (s) {
      state.analysis.tokens = s.tokens;
      state.analysis.maxExponent = s.maxExponent;
      $("lyapunov").innerHTML = heatSpans(s.tokens, s.maxExponent, s.query);
    } else {
      $("lyapunov").textContent = "the prompt needs at least two tokens";
    }
    state.analysis.runs++;
    status("analysis done");
  } catch (e) {
    fail("analysis", e);
  } finally {
    setBackend(current);
    state.busy = null;
  }
}

// ---- start -----------------------------------------------------------------------------------------------------
async function start(): Promise<void> {
  watchLongTasks();
  await yieldToBrowser(); // the page is drawn (and its load event fires) before the backend starts
  const choice: BackendChoice = query.get("backend") === "webgl2" ? "webgl2" : "cpu";
  ($("backend") as HTMLSelectElement).value = choice;
  try {
    switchBackend(choice);
  } catch (e) {
    fail(`starting the ${choice} backend`, e);
    setBackend("cpu");
    state.backend.choice = "cpu";
    ($("backend") as HTMLSelectElement).value = "cpu";
    describeBackend();
  }
  setModel(newModel(), "new, random weights (seed 0)");
  await loadExcerpt();
  $("train").addEventListener("click", () => void trainLoop());
  $("reset").addEventListener("click", () => {
    state.training = false;
    setModel(newModel(), "new, random weights (seed 0)");
    state.steps = [];
    drawLoss();
  });
  $("download").addEventListener("click", download);
  $("upload").addEventListener("change", (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (f) void upload(f);
  });
  $("generate").addEventListener("click", () => void generate());
  for (const id of ["depth", "solver", "tol", "eval-tokens"]) $(id).addEventListener("change", () => void runDepth());
  $("depth").addEventListener("input", () => ($("depth-value").textContent = ($("depth") as HTMLInputElement).value));
  $("analyze").addEventListener("click", () => void analyse());
  $("backend").addEventListener("change", () => {
    state.training = false;
    try {
      switchBackend(($("backend") as HTMLSelectElement).value as BackendChoice);
      status(`switched to ${state.backend.choice}`);
    } catch (e) {
      fail("switching backend", e);
    }
  });
  for (const id of ["source-excerpt", "source-paste", "text"])
    $(id).addEventListener("change", () => {
      dropSession();
      heldIds = [];
    });
  for (const id of ["batch", "seq"]) $(id).addEventListener("change", () => dropSession());
  window.__playground = {
    state,
    logits: (ids) => Array.from(logitsOf(model, ids)),
    heldOutIds: () => evalIds(),
    trainIds: () => [...trainIds],
    modelFile: () => modelFileBytes(model),
  };
  state.ready = true;
  status("ready: press Train");
}

void start();
