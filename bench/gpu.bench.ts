/**
 * The gpu backend (gpu.js) next to the cpu backend: GEMM with read-back, and one DiffEqFormer training step
 * (loss and every gradient, read back to the host). gpu.js modes measured: `cpu` and `webasm` (always
 * available in Node) and `headlessgl` when the native `gl` module loads and an X display is present
 * (`xvfb-run -a npx tsx bench/gpu.bench.ts`); on a machine without a GPU headlessgl runs on Mesa's software
 * rasteriser, so these numbers say nothing about real GPUs — they show the overhead of the path.
 * Each training step runs in its own module graph (the models package caches tensors per process): worker
 * threads for the cpu backend and the cpu / webasm modes, the main thread for headlessgl (the native `gl`
 * module cannot be loaded by a second thread once the main thread has it).
 * Run: npm run bench (all suites) or npx tsx bench/gpu.bench.ts [filter]
 */
import Benchmark from "benchmark";
import { pathToFileURL } from "node:url";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { GPU } from "gpu.js";
import { matmul, random, setBackend, tensor, valueAndGrad, type Backend, type Tensor } from "@qkvflow/autograd";
import { createGpuBackend, isGpuModeSupported, tidy, type GpuMode } from "@qkvflow/autograd/gpu";
import { createModel, preset } from "@qkvflow/models";

type Target = { label: string; kind: "cpu" } | { label: string; kind: "gpu"; mode: GpuMode };

function targets(): Target[] {
  const t: Target[] = [
    { label: "cpu backend", kind: "cpu" },
    { label: "gpu.js cpu", kind: "gpu", mode: "cpu" },
  ];
  if (isGpuModeSupported("webasm")) t.push({ label: "gpu.js webasm", kind: "gpu", mode: "webasm" });
  if (GPU.isHeadlessGLSupported) t.push({ label: "gpu.js headlessgl", kind: "gpu", mode: "headlessgl" });
  return t;
}

function backendOf(t: Target): Backend | "cpu" {
  return t.kind === "cpu" ? "cpu" : createGpuBackend({ mode: t.mode, name: `bench-${t.mode}` });
}

function runSuite(suite: Benchmark.Suite): Promise<void> {
  return new Promise((resolve) => {
    suite.on("complete", () => resolve());
    suite.run({ async: true });
  });
}

// ---- training step (worker side) --------------------------------------------------------------------------

interface StepJob {
  target: Target;
  config: "micro" | "small";
}
interface StepTiming {
  label: string;
  config: string;
  firstMs: number;
  msPerStep: number;
  rme: number;
  loss: number;
}

const CONFIGS = {
  micro: { preset: "diffeqformer-micro", overrides: {}, B: 2, T: 8 },
  small: {
    preset: "diffeqformer-micro",
    overrides: { vocabSize: 256, blockSize: 32, nEmbd: 64, nHead: 4, nLayer: 4, timeEmbedDim: 8, sinusoidalDim: 8 },
    B: 4,
    T: 32,
  },
} as const;

async function stepWorker(job: StepJob): Promise<StepTiming> {
  const be = backendOf(job.target);
  setBackend(be);
  const c = CONFIGS[job.config];
  const model = createModel(preset(c.preset, c.overrides), random.key(0));
  model.train(false);
  const V = model.config.vocabSize;
  const x = tensor(
    Int32Array.from({ length: c.B * c.T }, (_, i) => (i * 7 + 3) % V),
    { shape: [c.B, c.T], dtype: "int32" },
  );
  const y = tensor(
    Int32Array.from({ length: c.B * c.T }, (_, i) => (i * 5 + 1) % V),
    { shape: [c.B, c.T], dtype: "int32" },
  );
  const params = model.parameters();
  const step = () => {
    const [loss, grads] = valueAndGrad((p: Record<string, Tensor>) => {
      model.setParameters(p);
      return model.loss(x, y);
    })(params) as [Tensor, Record<string, Tensor>];
    for (const g of Object.values(grads)) g.data();
    return loss.item();
  };
  // the first step compiles every kernel (and creates tensors the models package caches: outside any tidy scope)
  const t0 = performance.now();
  const loss = step();
  const firstMs = performance.now() - t0;
  const bench = new Benchmark(`${job.target.label} ${job.config}`, () => tidy(step), { minSamples: 5, maxTime: 3 });
  await new Promise<void>((resolve) => {
    bench.on("complete", () => resolve());
    bench.run({ async: true });
  });
  return { label: job.target.label, config: job.config, firstMs, msPerStep: 1000 / (bench.hz ?? NaN), rme: bench.stats.rme, loss };
}

function inWorker(job: StepJob): Promise<StepTiming> {
  return new Promise((resolve, reject) => {
    const api = import.meta.resolve("tsx/esm/api");
    const boot = `import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(import.meta.url)});`;
    const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), { workerData: { gpuBenchStep: job } });
    w.once("message", resolve);
    w.once("error", reject);
    w.once("exit", (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
  });
}

// ---- main ----------------------------------------------------------------------------------------------

/** Runs the GEMM and training-step benchmarks whose names contain `filter` (all by default). */
export async function run(filter?: string): Promise<void> {
  const want = (name: string) => !filter || name.toLowerCase().includes(filter.toLowerCase());
  const ts = targets();
  if (!ts.some((t) => t.kind === "gpu" && t.mode === "headlessgl")) {
    console.log(
      "gpu: headlessgl unavailable (build gl with .ci/gpu-setup.sh and run under xvfb-run -a); measuring cpu and webasm modes only",
    );
  }

  // GEMM: C = A·B for n×n float32 matrices, kernel launch plus read-back of C each time.
  const gemmRows: { n: number; label: string; ms: number; gflops: number }[] = [];
  const suite = new Benchmark.Suite("gpu gemm");
  for (const n of [64, 256, 512]) {
    for (const t of ts) {
      const name = `gpu: gemm ${n}x${n} ${t.label}`;
      if (!want(name)) continue;
      const be = backendOf(t);
      setBackend(be);
      const [ka, kb] = random.split(random.key(n), 2);
      const A = random.normal(ka, [n, n]),
        B = random.normal(kb, [n, n]);
      tidy(() => matmul(A, B).data()); // compile
      const row = { n, label: t.label, ms: 0, gflops: 0 };
      gemmRows.push(row);
      suite.add(name, () => tidy(() => matmul(A, B).data()), {
        minSamples: 5,
        maxTime: n >= 512 ? 3 : 1.5,
        onComplete: (e: { target: Benchmark }) => {
          const hz = e.target.hz ?? 0;
          row.ms = 1000 / hz;
          row.gflops = (2 * n ** 3 * hz) / 1e9;
        },
      });
      setBackend("cpu");
    }
  }
  if (suite.length > 0) {
    suite.on("cycle", (e: { target: Benchmark }) => console.log(String(e.target)));
    await runSuite(suite);
    console.log("\n| n | backend | ms / gemm (incl. read-back) | GFLOP/s | vs cpu backend |");
    console.log("|---|---|---|---|---|");
    for (const r of gemmRows) {
      const base = gemmRows.find((b) => b.n === r.n && b.label === "cpu backend");
      console.log(
        `| ${r.n} | ${r.label} | ${r.ms.toFixed(3)} | ${r.gflops.toFixed(3)} | ${base ? (base.ms / r.ms).toFixed(2) + "×" : "-"} |`,
      );
    }
  }

  // Training step of a DiffEqFormer: value and gradient of the loss, everything read back.
  const steps: StepTiming[] = [];
  for (const config of ["micro", "small"] as const) {
    for (const t of ts) {
      const name = `gpu: train step ${config} ${t.label}`;
      if (!want(name)) continue;
      const job = { target: t, config };
      let r: StepTiming;
      try {
        r = t.kind === "gpu" && t.mode === "headlessgl" ? await stepWorker(job) : await inWorker(job);
      } catch (e) {
        console.log(`${name}: failed: ${(e as Error).message}`);
        continue;
      }
      console.log(
        `${name}: first step ${r.firstMs.toFixed(0)} ms, then ${r.msPerStep.toFixed(1)} ms ±${r.rme.toFixed(1)}% (loss ${r.loss.toFixed(5)})`,
      );
      steps.push(r);
    }
  }
  if (steps.length) {
    console.log("\n| model | backend | first step (compiles) ms | ms / step | vs cpu backend | loss |");
    console.log("|---|---|---|---|---|---|");
    for (const r of steps) {
      const base = steps.find((b) => b.config === r.config && b.label === "cpu backend");
      const c = CONFIGS[r.config as "micro" | "small"];
      console.log(
        `| ${r.config} (B ${c.B}, T ${c.T}) | ${r.label} | ${r.firstMs.toFixed(0)} | ${r.msPerStep.toFixed(1)} | ${base ? (base.msPerStep / r.msPerStep).toFixed(2) + "×" : "-"} | ${r.loss.toFixed(5)} |`,
      );
    }
  }
}

if (!isMainThread && parentPort && (workerData as { gpuBenchStep?: StepJob } | null)?.gpuBenchStep) {
  stepWorker((workerData as { gpuBenchStep: StepJob }).gpuBenchStep).then((r) => parentPort!.postMessage(r));
} else if (isMainThread && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run(process.argv[2]).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
