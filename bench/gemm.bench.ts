/**
 * SGEMM: qkvflow's WebAssembly SIMD kernel (1 and 2 threads) against @tensorflow/tfjs-backend-wasm
 * (XNNPACK, single-threaded in Node) and a plain-JS loop, measured in the same run.
 *
 * Cases: square A·B at 256/512/1024/2048, and the tiny model's output-layer shapes (T = 2048 tokens,
 * d = 128, vocabulary V = 50257): logits = X·W, dX = dY·Wᵀ and dW = Xᵀ·dY. qkvflow's time includes
 * copying the operands into and the result out of kernel memory; tfjs's includes reading the result
 * back with dataSync() (its inputs already live in its heap). Plain JS is skipped above 1024³ and for
 * the model shapes (more than ten seconds per call).
 *
 * Body rows ("body: ..."): every matmul shape of one training step of the paper's tiny configuration
 * (E 128, 4 heads of 32, T 128, batch 16, so 2048 token rows; MLP 512): for each projection the forward
 * X·W, dX = dY·Wᵀ and dW = Xᵀ·dY (a 2048-long reduction), and the attention products per head as one
 * batched call over the 64 (batch × heads) entries, forward and backward; and DiffEqFormer's weight generation
 * (d_emb 20, 4 layer times): W(t) = h·A for the qkv and MLP projections (A is [20, in·out]) and its gradients.
 *
 * Run: npx tsx bench/gemm.bench.ts [filter]   (or npx tsx bench/run.ts gemm)
 */
import Benchmark from "benchmark";
import os from "node:os";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import { gemmBatched, getNumThreads, kernelInfo, setNumThreads } from "../packages/autograd/src/backend/cpu/kernels/gemm.js";
import { hardwareThreads, nameFilter, runIfMain, runSuite } from "./common.js";

interface Shape {
  name: string;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  plainJs: boolean;
  /** independent GEMMs of this shape in one batched call (default 1) */
  batch?: number;
}

const V = 50257;
const SHAPES: Shape[] = [
  { name: "256x256x256", m: 256, n: 256, k: 256, transA: false, transB: false, plainJs: true },
  { name: "512x512x512", m: 512, n: 512, k: 512, transA: false, transB: false, plainJs: true },
  { name: "1024x1024x1024", m: 1024, n: 1024, k: 1024, transA: false, transB: false, plainJs: true },
  { name: "2048x2048x2048", m: 2048, n: 2048, k: 2048, transA: false, transB: false, plainJs: false },
  { name: "logits X·W 2048x128·128x50257", m: 2048, n: V, k: 128, transA: false, transB: false, plainJs: false },
  { name: "dX = dY·Wᵀ 2048x50257·(128x50257)ᵀ", m: 2048, n: 128, k: V, transA: false, transB: true, plainJs: false },
  { name: "dW = Xᵀ·dY (2048x128)ᵀ·2048x50257", m: 128, n: V, k: 2048, transA: true, transB: false, plainJs: false },
  ...bodyShapes(),
];

/** The tiny configuration's body matmuls (see the header): name, [m, n, k], transposes, batch. */
function bodyShapes(): Shape[] {
  const T = 2048;
  const out: Shape[] = [];
  const row = (name: string, m: number, n: number, k: number, transA: boolean, transB: boolean, batch = 1): void => {
    out.push({ name: `body: ${name}`, m, n, k, transA, transB, plainJs: false, batch });
  };
  for (const [what, din, dout] of [
    ["qkv", 128, 384],
    ["attn out", 128, 128],
    ["mlp up", 128, 512],
    ["mlp down", 512, 128],
  ] as const) {
    row(`${what} X·W ${T}x${din}·${din}x${dout}`, T, dout, din, false, false);
    row(`${what} dX = dY·Wᵀ ${T}x${dout}·(${din}x${dout})ᵀ`, T, din, dout, false, true);
    row(`${what} dW = Xᵀ·dY (${T}x${din})ᵀ·${T}x${dout}`, din, dout, T, true, false);
  }
  const B = 64; // batch 16 × 4 heads
  row(`attn S = Q·Kᵀ ${B}×[128x32·(128x32)ᵀ]`, 128, 128, 32, false, true, B);
  row(`attn O = P·V ${B}×[128x128·128x32]`, 128, 32, 128, false, false, B);
  row(`attn dP = dO·Vᵀ ${B}×[128x32·(128x32)ᵀ]`, 128, 128, 32, false, true, B);
  row(`attn dV = Pᵀ·dO ${B}×[(128x128)ᵀ·128x32]`, 128, 32, 128, true, false, B);
  row(`attn dQ = dS·K ${B}×[128x128·128x32]`, 128, 32, 128, false, false, B);
  row(`attn dK = dSᵀ·Q ${B}×[(128x128)ᵀ·128x32]`, 128, 32, 128, true, false, B);
  const nt = 4; // layer times
  const d = 20; // hypernetwork width (d_emb)
  for (const [what, io] of [
    ["qkv", 128 * 384],
    ["mlp", 128 * 512],
  ] as const) {
    row(`hyper ${what} W(t) = h·A ${nt}x${d}·${d}x${io}`, nt, io, d, false, false);
    row(`hyper ${what} dA = hᵀ·dW (${nt}x${d})ᵀ·${nt}x${io}`, d, io, nt, true, false);
    row(`hyper ${what} dh = dW·Aᵀ ${nt}x${io}·(${d}x${io})ᵀ`, nt, d, io, false, true);
  }
  return out;
}

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

/** Plain JS C = A·B (row-major, i-k-j loop order). */
function plainGemm(a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number): void {
  c.fill(0);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p]!;
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] += aip * b[bp + j]!;
    }
  }
}

interface Row {
  shape: string;
  impl: string;
  flops: number;
  ms: number;
  best: number;
  rme: number;
}

/** Runs the GEMM benchmarks whose names contain `filter` (case-insensitive); prints a markdown table. */
export async function run(filter?: string): Promise<void> {
  const want = nameFilter(filter);
  const hw = hardwareThreads();
  const threadCounts = [...new Set([1, Math.min(2, hw)])];
  const caseNames = (s: Shape): string[] => [
    ...threadCounts.map((t) => `gemm: ${s.name} qkvflow ${t} thread${t > 1 ? "s" : ""}`),
    `gemm: ${s.name} tfjs-wasm`,
    ...(s.plainJs ? [`gemm: ${s.name} plain JS`] : []),
  ];
  if (!SHAPES.some((s) => caseNames(s).some(want))) {
    console.log(`gemm: no benchmark matches '${filter}'`);
    return;
  }
  await tf.setBackend("wasm");
  await tf.ready();
  const savedThreads = getNumThreads();
  const info = kernelInfo();
  console.log(
    `machine: ${os.cpus()[0]?.model ?? "?"}, ${hw} hardware threads, Node ${process.version}; ` +
      `qkvflow simd=${info.simd}; tfjs-wasm simd=${tf.env().getBool("WASM_HAS_SIMD_SUPPORT")} ` +
      `threads=${tf.env().getBool("WASM_HAS_MULTITHREAD_SUPPORT")}`,
  );
  const rows: Row[] = [];
  const savedDecompilation = Benchmark.support.decompilation;
  Benchmark.support.decompilation = false; // call the closures as they are
  const opts: Benchmark.Options = { minSamples: 3, maxTime: 2, initCount: 1 };
  try {
    for (const s of SHAPES) {
      const cases = caseNames(s).filter(want);
      if (cases.length === 0) continue;
      const batch = s.batch ?? 1;
      const a = fill(batch * s.m * s.k, 1);
      const b = fill(batch * s.k * s.n, 2);
      const c = new Float32Array(batch * s.m * s.n);
      const flops = 2 * s.m * s.n * s.k * batch;
      const suite = new Benchmark.Suite(s.name);
      const record = (impl: string) => (e: { target: Benchmark }) => {
        if (e.target.error) {
          console.log(`${s.name} ${impl} failed: ${String(e.target.error)}`);
          return;
        }
        const st = e.target.stats;
        rows.push({ shape: s.name, impl, flops, ms: st.mean * 1000, best: Math.min(...st.sample) * 1000, rme: st.rme });
      };
      for (const t of threadCounts) {
        const impl = `qkvflow ${t} thread${t > 1 ? "s" : ""}`;
        if (!want(`gemm: ${s.name} ${impl}`)) continue;
        const strides = { batch, strideA: s.m * s.k, strideB: s.k * s.n, strideC: s.m * s.n };
        const args = { transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, a, b, c, ...strides };
        // warm-up outside the timings: the first call grows (and page-faults in) the kernel memory
        setNumThreads(t);
        gemmBatched(args);
        suite.add(
          `gemm: ${s.name} ${impl}`,
          () => {
            setNumThreads(t);
            gemmBatched(args);
          },
          { ...opts, onComplete: record(impl) },
        );
      }
      let ta: tf.Tensor | null = null;
      let tb: tf.Tensor | null = null;
      if (want(`gemm: ${s.name} tfjs-wasm`)) {
        const lead = batch > 1 ? [batch] : [];
        ta = tf.tensor(a, [...lead, ...(s.transA ? [s.k, s.m] : [s.m, s.k])]);
        tb = tf.tensor(b, [...lead, ...(s.transB ? [s.n, s.k] : [s.k, s.n])]);
        const xa = ta;
        const xb = tb;
        suite.add(
          `gemm: ${s.name} tfjs-wasm`,
          () => {
            const out = tf.matMul(xa, xb, s.transA, s.transB);
            out.dataSync();
            out.dispose();
          },
          { ...opts, onComplete: record("tfjs-wasm") },
        );
      }
      if (s.plainJs && want(`gemm: ${s.name} plain JS`)) {
        suite.add(`gemm: ${s.name} plain JS`, () => plainGemm(a, b, c, s.m, s.n, s.k), {
          ...opts,
          minSamples: 2,
          onComplete: record("plain JS"),
        });
      }
      await runSuite(suite);
      ta?.dispose();
      tb?.dispose();
    }
  } finally {
    Benchmark.support.decompilation = savedDecompilation;
    setNumThreads(savedThreads);
  }
  if (rows.length === 0) return;
  console.log("\n| GEMM (m×k · k×n) | implementation | ms (mean ± rme) | best ms | GFLOP/s (mean) | vs tfjs-wasm |");
  console.log("|---|---|---|---|---|---|");
  for (const r of rows) {
    const base = rows.find((b) => b.shape === r.shape && b.impl === "tfjs-wasm");
    const ratio = base ? `${(base.ms / r.ms).toFixed(2)}×` : "-";
    console.log(
      `| ${r.shape} | ${r.impl} | ${r.ms.toFixed(2)} ± ${r.rme.toFixed(0)}% | ${r.best.toFixed(2)} | ${(r.flops / r.ms / 1e6).toFixed(1)} | ${ratio} |`,
    );
  }
  if (rows.some((r) => r.shape.startsWith("2048x2048") || r.shape.includes("50257"))) {
    console.log("(plain JS skipped for 2048³ and the model shapes: over ten seconds per call)");
  }
}

runIfMain(import.meta.url, run);
