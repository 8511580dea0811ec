/**
 * The tiny model's output layer and loss, forward + backward: x [2048, 128] (ln_f output), tied unembedding
 * w [50257, 128], int32 targets (every 64th ignored), float32. Measured in the same run:
 *
 * - qkvflow fused: `linearCrossEntropy` kernels (logits in chunks inside kernel memory, recomputed in the
 *   backward; nothing [2048, 50257] is allocated), and the one-pass kernel that the op uses for a mean / sum
 *   loss under reverse mode (forward and gradients together: three GEMMs per chunk instead of four);
 * - qkvflow unfused: the same kernels the unfused ops call — sgemm logits, cross-entropy forward and backward
 *   rows, sgemm dX = dL·w and dW = dLᵀ·x — with fresh outputs each iteration, as autodiff allocates them;
 * - op level, both ways: valueAndGrad of `linearCrossEntropy(x, w, t)` against
 *   `crossEntropy(matmulT(x, w, false, true), t)`.
 *
 * tfjs-wasm is not in this suite: its transposed GEMMs alone take ~12 s per call at these shapes (gemm suite).
 *
 * Run: npx tsx bench/linear-ce.bench.ts [filter]   (or npx tsx bench/run.ts linear-ce)
 */
import Benchmark from "benchmark";
import os from "node:os";
import { crossEntropy, linearCrossEntropy, matmulT, tensor, valueAndGrad, type Tensor } from "../packages/autograd/src/index.js";
import { getNumThreads, kernelInfo, setNumThreads, sgemm } from "../packages/autograd/src/backend/cpu/kernels/gemm.js";
import {
  linearCrossEntropyBackwardRows,
  linearCrossEntropyRows,
  linearCrossEntropyWithGradRows,
} from "../packages/autograd/src/backend/cpu/kernels/linear-ce.js";
import { crossEntropyBackwardRows, crossEntropyRows } from "../packages/autograd/src/backend/cpu/kernels/rows.js";
import { hardwareThreads, nameFilter, randomArray, runIfMain, runSuite } from "./common.js";

const N = 2048;
const E = 128;
const V = 50257;
const IGNORE = -100;

interface Row {
  impl: string;
  ms: number;
  best: number;
  rme: number;
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) s = Math.max(s, Math.abs(b[i]!));
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m / Math.max(s, 1e-30);
}

/** Runs the projection + cross-entropy benchmarks whose names contain `filter`; prints a markdown table. */
export async function run(filter?: string): Promise<void> {
  const want = nameFilter(filter);
  const hw = hardwareThreads();
  const threads = Math.min(2, hw);
  const impls = ["fused kernels", "fused kernels, one pass", "unfused kernels", "fused op (valueAndGrad)", "unfused ops (valueAndGrad)"];
  const name = (impl: string) => `linear-ce: ${impl}`;
  if (!impls.some((i) => want(name(i)))) {
    console.log(`linear-ce: no benchmark matches '${filter}'`);
    return;
  }
  const saved = getNumThreads();
  setNumThreads(threads);
  console.log(
    `machine: ${os.cpus()[0]?.model ?? "?"}, ${hw} hardware threads, Node ${process.version}; qkvflow simd=${kernelInfo().simd}, ${threads} threads; ` +
      `x ${N}×${E}, w ${V}×${E}, float32 (logits would be ${((N * V * 4) / 2 ** 20).toFixed(0)} MiB)`,
  );
  const x = randomArray(N * E, 1, -1, 1);
  const w = randomArray(V * E, 2, -0.1, 0.1);
  const targets = Int32Array.from({ length: N }, (_, r) => (r % 64 === 63 ? IGNORE : (r * 7919) % V));
  const valid = targets.reduce((a, t) => a + (t === IGNORE ? 0 : 1), 0);
  const g = new Float32Array(N).fill(1 / valid);

  const fused = () => {
    const loss = new Float32Array(N),
      lse = new Float32Array(N);
    linearCrossEntropyRows(x, w, targets, N, E, V, IGNORE, loss, lse);
    const dx = new Float32Array(N * E),
      dw = new Float32Array(V * E);
    linearCrossEntropyBackwardRows(x, w, targets, lse, g, dx, dw, N, E, V, IGNORE);
    return { loss, dx, dw };
  };
  // forward and backward in one pass (what the op does for a mean / sum loss under reverse mode): unit row
  // weights, then the scale 1/valid applied to dx and dw as the op's backward does
  const onePass = () => {
    const loss = new Float32Array(N),
      lse = new Float32Array(N),
      dx = new Float32Array(N * E),
      dw = new Float32Array(V * E);
    linearCrossEntropyWithGradRows(x, w, targets, N, E, V, IGNORE, loss, lse, dx, dw);
    for (let i = 0; i < dx.length; i++) dx[i] = dx[i]! / valid;
    for (let i = 0; i < dw.length; i++) dw[i] = dw[i]! / valid;
    return { loss, dx, dw };
  };
  const unfused = () => {
    const logits = new Float32Array(N * V);
    sgemm({ transA: false, transB: true, m: N, n: V, k: E, a: x, b: w, c: logits });
    const loss = new Float32Array(N),
      lse = new Float32Array(N);
    crossEntropyRows(logits, targets, N, V, IGNORE, loss, lse);
    const dl = new Float32Array(N * V);
    crossEntropyBackwardRows(logits, targets, lse, g, dl, N, V, IGNORE);
    const dx = new Float32Array(N * E),
      dw = new Float32Array(V * E);
    sgemm({ transA: false, transB: false, m: N, n: E, k: V, a: dl, b: w, c: dx });
    sgemm({ transA: true, transB: false, m: V, n: E, k: N, a: dl, b: x, c: dw });
    return { loss, dx, dw };
  };
  const X = tensor(x, { shape: [N, E] }),
    W = tensor(w, { shape: [V, E] }),
    T = tensor(targets, { dtype: "int32" });
  const opFused = valueAndGrad((a: Tensor, b: Tensor) => linearCrossEntropy(a, b, T), { argnums: [0, 1] });
  const opUnfused = valueAndGrad((a: Tensor, b: Tensor) => crossEntropy(matmulT(a, b, false, true), T), { argnums: [0, 1] });

  // correctness once (and warm-up): fused against unfused
  const b = unfused();
  for (const [label, f] of [
    ["fused", fused],
    ["fused one pass", onePass],
  ] as const) {
    const a = f();
    const errs = [maxRel(a.loss, b.loss), maxRel(a.dx, b.dx), maxRel(a.dw, b.dw)];
    console.log(
      `${label} vs unfused kernels (max relative error): loss ${errs[0]!.toExponential(1)}, dx ${errs[1]!.toExponential(1)}, dw ${errs[2]!.toExponential(1)}`,
    );
    if (errs.some((e) => !(e < 1e-4))) throw new Error(`linear-ce: ${label} and unfused results differ (${errs.join(", ")})`);
  }

  const rows: Row[] = [];
  const savedDecompilation = Benchmark.support.decompilation;
  Benchmark.support.decompilation = false;
  const opts: Benchmark.Options = { minSamples: 3, maxTime: 6, initCount: 1 };
  const suite = new Benchmark.Suite("linear-ce");
  const add = (impl: string, fn: () => unknown) => {
    if (!want(name(impl))) return;
    suite.add(name(impl), fn, {
      ...opts,
      onComplete: (e: { target: Benchmark }) => {
        if (e.target.error) {
          console.log(`${impl} failed: ${String(e.target.error)}`);
          return;
        }
        const st = e.target.stats;
        rows.push({ impl, ms: st.mean * 1000, best: Math.min(...st.sample) * 1000, rme: st.rme });
      },
    });
  };
  add("fused kernels", fused);
  add("fused kernels, one pass", onePass);
  add("unfused kernels", unfused);
  add("fused op (valueAndGrad)", () => opFused(X, W));
  add("unfused ops (valueAndGrad)", () => opUnfused(X, W));
  try {
    await runSuite(suite);
  } finally {
    Benchmark.support.decompilation = savedDecompilation;
    setNumThreads(saved);
  }
  const base = rows.find((r) => r.impl === "fused kernels");
  console.log("\n| projection + cross-entropy, forward + backward | ms (mean ± rme) | best ms | vs fused kernels |\n|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.impl} | ${r.ms.toFixed(0)} ± ${r.rme.toFixed(0)}% | ${r.best.toFixed(0)} | ${base ? (r.ms / base.ms).toFixed(2) + "×" : "-"} |`,
    );
  }
  console.log("\nvs fused kernels = this row's mean / the fused kernels' mean (> 1: the fused kernels are faster).");
}

runIfMain(import.meta.url, run);
