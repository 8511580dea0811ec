/**
 * Fused softmax + cross-entropy, forward and backward, on the tiny model's logits (2048 tokens ×
 * vocabulary 50257, float32): qkvflow's row kernels (WebAssembly SIMD, 1 and 2 threads) against a
 * plain-JS implementation and @tensorflow/tfjs-backend-wasm (the same math from tfjs ops: logSumExp,
 * one-hot labels, exp), measured in the same run.
 *
 * One iteration = per-row loss and log-sum-exp (forward) + dLogits = g·(softmax − onehot) (backward),
 * with results available as ordinary Float32Arrays (qkvflow copies in and out of kernel memory; tfjs
 * reads back with dataSync()).
 *
 * Run: npx tsx bench/softmax-ce.bench.ts [filter]   (or npx tsx bench/run.ts softmax)
 */
import Benchmark from "benchmark";
import os from "node:os";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import { getNumThreads, kernelInfo, setNumThreads } from "../packages/autograd/src/backend/cpu/kernels/gemm.js";
import { crossEntropyBackwardRows, crossEntropyRows } from "../packages/autograd/src/backend/cpu/kernels/rows.js";
import { hardwareThreads, nameFilter, runIfMain, runSuite } from "./common.js";

const ROWS = 2048;
const COLS = 50257;
const IGNORE = -100;

/** Plain JS forward + backward (the same math, scalar loops with Math.exp / Math.log). */
function plainCe(x: Float32Array, targets: Int32Array, g: Float32Array, loss: Float32Array, lse: Float32Array, d: Float32Array): void {
  for (let r = 0; r < ROWS; r++) {
    const o = r * COLS;
    let m = -Infinity;
    for (let j = 0; j < COLS; j++) if (x[o + j]! > m) m = x[o + j]!;
    let s = 0;
    for (let j = 0; j < COLS; j++) s += Math.exp(x[o + j]! - m);
    const l = m + Math.log(s);
    lse[r] = l;
    const t = targets[r]!;
    loss[r] = t === IGNORE ? 0 : l - x[o + t]!;
  }
  for (let r = 0; r < ROWS; r++) {
    const o = r * COLS;
    const t = targets[r]!;
    if (t === IGNORE) {
      d.fill(0, o, o + COLS);
      continue;
    }
    const l = lse[r]!;
    const gr = g[r]!;
    for (let j = 0; j < COLS; j++) d[o + j] = gr * Math.exp(x[o + j]! - l);
    d[o + t] = d[o + t]! - gr;
  }
}

interface Row {
  impl: string;
  what: string;
  ms: number;
  best: number;
  rme: number;
}

/** Runs the softmax / cross-entropy benchmarks whose names contain `filter`; prints a markdown table. */
export async function run(filter?: string): Promise<void> {
  const want = nameFilter(filter);
  const hw = hardwareThreads();
  const threadCounts = [...new Set([Math.min(2, hw), 1])];
  const caseNames = [
    ...threadCounts.flatMap((t) =>
      ["forward+backward", "forward only", "backward only"].map((w) => `softmax-ce: qkvflow ${t} thread${t > 1 ? "s" : ""} ${w}`),
    ),
    "softmax-ce: memcpy reference",
    "softmax-ce: plain JS forward+backward",
    "softmax-ce: tfjs-wasm forward+backward",
  ];
  if (!caseNames.some(want)) {
    console.log(`softmax-ce: no benchmark matches '${filter}'`);
    return;
  }
  const savedThreads = getNumThreads();
  console.log(
    `machine: ${os.cpus()[0]?.model ?? "?"}, ${hw} hardware threads, Node ${process.version}; qkvflow simd=${kernelInfo().simd}; ` +
      `logits ${ROWS}×${COLS} float32 (${((ROWS * COLS * 4) / 2 ** 20).toFixed(0)} MiB)`,
  );
  const x = new Float32Array(ROWS * COLS);
  let s = 12345;
  for (let i = 0; i < x.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    x[i] = (s / 4294967296 - 0.5) * 8;
  }
  const targets = Int32Array.from({ length: ROWS }, (_, r) => (r % 64 === 63 ? IGNORE : (r * 7919) % COLS));
  const g = new Float32Array(ROWS).fill(1 / ROWS);
  const loss = new Float32Array(ROWS);
  const lse = new Float32Array(ROWS);
  const d = new Float32Array(ROWS * COLS);
  const rows: Row[] = [];
  const savedDecompilation = Benchmark.support.decompilation;
  Benchmark.support.decompilation = false;
  const opts: Benchmark.Options = { minSamples: 5, maxTime: 3, initCount: 1 };
  const suite = new Benchmark.Suite("softmax-ce");
  const record = (impl: string, what: string) => (e: { target: Benchmark }) => {
    if (e.target.error) {
      console.log(`${impl} ${what} failed: ${String(e.target.error)}`);
      return;
    }
    const st = e.target.stats;
    rows.push({ impl, what, ms: st.mean * 1000, best: Math.min(...st.sample) * 1000, rme: st.rme });
  };
  try {
    for (const t of threadCounts) {
      const impl = `qkvflow ${t} thread${t > 1 ? "s" : ""}`;
      const fwd = () => crossEntropyRows(x, targets, ROWS, COLS, IGNORE, loss, lse);
      const bwd = () => crossEntropyBackwardRows(x, targets, lse, g, d, ROWS, COLS, IGNORE);
      // warm-up outside the timings: the first call grows (and page-faults in) the kernel memory
      setNumThreads(t);
      fwd();
      bwd();
      if (want(`softmax-ce: ${impl} forward+backward`)) {
        suite.add(
          `softmax-ce: ${impl} forward+backward`,
          () => {
            setNumThreads(t);
            fwd();
            bwd();
          },
          { ...opts, onComplete: record(impl, "forward+backward") },
        );
      }
      if (want(`softmax-ce: ${impl} forward only`)) {
        suite.add(
          `softmax-ce: ${impl} forward only`,
          () => {
            setNumThreads(t);
            fwd();
          },
          { ...opts, onComplete: record(impl, "forward only") },
        );
      }
      if (want(`softmax-ce: ${impl} backward only`)) {
        suite.add(
          `softmax-ce: ${impl} backward only`,
          () => {
            setNumThreads(t);
            bwd();
          },
          { ...opts, onComplete: record(impl, "backward only") },
        );
      }
    }
    if (want("softmax-ce: memcpy reference")) {
      // one copy of the logits between ordinary arrays: qkvflow moves the logits in twice and the
      // gradient out once per iteration, so 3× this is the copying it cannot avoid
      suite.add("softmax-ce: memcpy reference", () => d.set(x), {
        ...opts,
        onComplete: record("TypedArray.set (memcpy)", "one copy of the logits"),
      });
    }
    if (want("softmax-ce: plain JS forward+backward")) {
      suite.add("softmax-ce: plain JS forward+backward", () => plainCe(x, targets, g, loss, lse, d), {
        ...opts,
        minSamples: 2,
        onComplete: record("plain JS", "forward+backward"),
      });
    }
    let tfState: tf.Tensor[] = [];
    if (want("softmax-ce: tfjs-wasm forward+backward")) {
      try {
        await tf.setBackend("wasm");
        await tf.ready();
        const onehot = new Float32Array(ROWS * COLS);
        for (let r = 0; r < ROWS; r++) if (targets[r] !== IGNORE) onehot[r * COLS + targets[r]!] = 1;
        const logits = tf.tensor2d(x, [ROWS, COLS]);
        const labels = tf.tensor2d(onehot, [ROWS, COLS]);
        // g per row (0 for ignored rows, as the one-hot row is all zeros there)
        const gt = tf.tensor2d(
          Array.from(targets, (t) => (t === IGNORE ? 0 : 1 / ROWS)),
          [ROWS, 1],
        );
        tfState = [logits, labels, gt];
        // The same math from tfjs ops (tfjs-core without the union package registers no gradients):
        // forward lse = logSumExp(logits), loss = lse - Σ logits·onehot; backward g·(exp(logits - lse) - onehot)
        suite.add(
          "softmax-ce: tfjs-wasm forward+backward",
          () => {
            const [tLoss, tLse] = tf.tidy(() => {
              const l = tf.logSumExp(logits, 1, true);
              return [tf.sub(l, tf.sum(tf.mul(logits, labels), 1, true)), l];
            });
            tLoss!.dataSync();
            tLse!.dataSync();
            const grad = tf.tidy(() => tf.mul(tf.sub(tf.exp(tf.sub(logits, tLse!)), labels), gt));
            grad.dataSync();
            tf.dispose([tLoss!, tLse!, grad]);
          },
          { ...opts, minSamples: 2, onComplete: record("tfjs-wasm", "forward+backward") },
        );
      } catch (e) {
        console.log(`tfjs-wasm case not run: ${(e as Error).message}`);
      }
    }
    await runSuite(suite);
    tf.dispose(tfState);
  } finally {
    Benchmark.support.decompilation = savedDecompilation;
    setNumThreads(savedThreads);
  }
  if (rows.length === 0) return;
  const base = rows.find((r) => r.impl === "plain JS");
  console.log(`\n| softmax + cross-entropy ${ROWS}×${COLS} | measured | ms / iteration (mean ± rme) | best ms | vs plain JS |`);
  console.log("|---|---|---|---|---|");
  for (const r of rows) {
    const ratio = base && r.what === "forward+backward" ? `${(base.ms / r.ms).toFixed(1)}×` : "-";
    console.log(`| ${r.impl} | ${r.what} | ${r.ms.toFixed(1)} ± ${r.rme.toFixed(0)}% | ${r.best.toFixed(1)} | ${ratio} |`);
  }
}

runIfMain(import.meta.url, run);
