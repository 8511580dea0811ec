/**
 * The generic elementwise ops of the CPU backend (float32) on the tiny model's shapes, forward only, one op
 * per iteration with a fresh output array each time:
 *
 * - mul of two same-shape tensors, [2048, 128] (262,144 elements) and [2048, 512] (1,048,576: the MLP hidden size);
 * - add of a bias: [2048, 128] + [128] (the "periodic" broadcast fast path);
 * - mul by a scalar, [2048, 128] · s (scalar on the right);
 * - sub(1, x), [2048, 128] (scalar on the left);
 * - exp, [2048, 128] (a unary kernel);
 * - sum over axis 0 of [2048, 128] → [128] (the bias-gradient reduction);
 * - where(mask [128, 128] bool, x [16, 4, 128, 128], -1e9) (attention-score masking; the general broadcasting
 *   loop, 1,048,576 elements).
 *
 * Implementations, measured in the same run:
 *
 * - qkvflow op: the exported ops (mul, add, sub, exp, sum, where) on CPU tensors, result kept as a tensor (its
 *   buffer is already an ordinary typed array on the CPU backend);
 * - qkvflow kernel: binaryKernel / unaryKernel / whereKernel (backend/cpu/elementwise.ts) called directly into a
 *   fresh Float32Array, so the op-level overhead (shape checks, operand wrapping, tape bookkeeping) is the difference
 *   to the op row; for sum, CpuBackend.reduce (the reduction loop itself is not exported);
 * - plain JS: the natural hand-written loop over Float32Arrays, writing into a fresh Float32Array (sum accumulates
 *   in a Float64Array, as the library does);
 * - @tensorflow/tfjs-backend-wasm (SIMD, single-threaded in Node): the same op inside tf.tidy, read back with
 *   dataSync() (so the work is not skipped), result disposed.
 *
 * Before timing, every qkvflow result is checked once against plain JS (max |a − b| / max |b| < 1e-6) and tfjs
 * against plain JS (< 1e-4); the suite throws instead of timing wrong results.
 *
 * Run: npx tsx bench/elementwise.bench.ts [filter]   (or npx tsx bench/run.ts elementwise)
 */
import Benchmark from "benchmark";
import os from "node:os";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import { add, exp, getBackend, mul, sub, sum, tensor, where, type Tensor, type TypedArray } from "../packages/autograd/src/index.js";
import { CpuBackend } from "../packages/autograd/src/backend/cpu/cpu-backend.js";
import { binaryKernel, unaryKernel, whereKernel } from "../packages/autograd/src/backend/cpu/elementwise.js";
import { hardwareThreads, nameFilter, randomArray, runIfMain, runSuite } from "./common.js";

const ROWS = 2048;
const D_MODEL = 128;
const D_HIDDEN = 512;
const BATCH = 16;
const HEADS = 4;
const SEQ = 128;
/** the attention scale of a 32-wide head (d_model 128 / 4 heads) */
const SCALE = 1 / Math.sqrt(D_MODEL / HEADS);
const MASK_FILL = -1e9;
const TOL = 1e-6;
const TOL_TF = 1e-4;

const IMPLS = ["qkvflow op", "qkvflow kernel", "plain JS", "tfjs-wasm"] as const;
type Impl = (typeof IMPLS)[number];

interface Spec {
  /** the case part of the benchmark names */
  label: string;
  /** elements processed per iteration (output elements; input elements for the reduction) */
  elems: number;
  plain: () => Float32Array;
  op: () => Tensor;
  kernel: () => TypedArray;
  tf: () => Float32Array;
}

interface Row {
  label: string;
  impl: Impl;
  elems: number;
  ms: number;
  best: number;
  rme: number;
}

// ---------------------------------------------------------------------------------------------
// data

/** A causal mask [SEQ, SEQ]: 1 where key ≤ query. */
function causalMask(): Uint8Array {
  const m = new Uint8Array(SEQ * SEQ);
  for (let q = 0; q < SEQ; q++) for (let k = 0; k <= q; k++) m[q * SEQ + k] = 1;
  return m;
}

// ---------------------------------------------------------------------------------------------
// plain JS: the straightforward loops, a fresh output per call

function plainMul(a: Float32Array, b: Float32Array): Float32Array {
  const n = a.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
  return out;
}

function plainAddBias(x: Float32Array, bias: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  const p = bias.length;
  for (let o = 0; o < x.length; o += p) for (let j = 0; j < p; j++) out[o + j] = x[o + j]! + bias[j]!;
  return out;
}

function plainMulScalar(x: Float32Array, s: number): Float32Array {
  const n = x.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = x[i]! * s;
  return out;
}

function plainOneMinus(x: Float32Array): Float32Array {
  const n = x.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 1 - x[i]!;
  return out;
}

function plainExp(x: Float32Array): Float32Array {
  const n = x.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]!);
  return out;
}

function plainSumAxis0(x: Float32Array, rows: number, cols: number): Float32Array {
  const acc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) acc[j] = acc[j]! + x[o + j]!;
  }
  const out = new Float32Array(cols);
  for (let j = 0; j < cols; j++) out[j] = acc[j]!;
  return out;
}

function plainMaskedFill(mask: Uint8Array, x: Float32Array, fill: number): Float32Array {
  const out = new Float32Array(x.length);
  const p = mask.length;
  for (let o = 0; o < x.length; o += p) for (let j = 0; j < p; j++) out[o + j] = mask[j] !== 0 ? x[o + j]! : fill;
  return out;
}

// ---------------------------------------------------------------------------------------------

/** max |a − b| / max |b| over one array. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) return NaN;
    if (d > num) num = d;
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}

/** Throws unless `got` matches the plain-JS reference within `tol`; returns the relative error. */
function check(name: string, got: ArrayLike<number>, ref: ArrayLike<number>, tol: number): number {
  const e = relErr(got, ref);
  if (!(e < tol)) {
    throw new Error(
      `elementwise: ${name} disagrees with plain JS (max |a − b| / max |b| = ${e} >= ${tol}; lengths ${got.length} / ${ref.length})`,
    );
  }
  return e;
}

/** Runs the elementwise benchmarks whose names contain `filter`; prints a markdown table. */
export async function run(filter?: string): Promise<void> {
  const want = nameFilter(filter);
  const caseName = (label: string, impl: Impl) => `elementwise: ${label} ${impl}`;
  const cpu = new CpuBackend();
  if (getBackend().name !== "cpu") throw new Error(`elementwise: the default backend is '${getBackend().name}'; expected cpu`);

  // --- data
  const N = ROWS * D_MODEL;
  const NH = ROWS * D_HIDDEN;
  const NS = BATCH * HEADS * SEQ * SEQ;
  const xA = randomArray(N, 11, -1, 1);
  const xB = randomArray(N, 12, -1, 1);
  const hA = randomArray(NH, 13, -1, 1);
  const hB = randomArray(NH, 14, -1, 1);
  const bias = randomArray(D_MODEL, 15, -0.5, 0.5);
  const scores = randomArray(NS, 16, -4, 4);
  const mask = causalMask();
  const scaleArr = Float32Array.of(SCALE);
  const oneArr = Float32Array.of(1);
  const fillArr = Float32Array.of(MASK_FILL);

  const qA = tensor(xA, { shape: [ROWS, D_MODEL] });
  const qB = tensor(xB, { shape: [ROWS, D_MODEL] });
  const qHA = tensor(hA, { shape: [ROWS, D_HIDDEN] });
  const qHB = tensor(hB, { shape: [ROWS, D_HIDDEN] });
  const qBias = tensor(bias, { shape: [D_MODEL] });
  const qScores = tensor(scores, { shape: [BATCH, HEADS, SEQ, SEQ] });
  const qMask = tensor(mask, { shape: [SEQ, SEQ], dtype: "bool" });

  const sh = [ROWS, D_MODEL];
  const shH = [ROWS, D_HIDDEN];
  const shS = [BATCH, HEADS, SEQ, SEQ];

  // --- tfjs (tensors created below, only when a tfjs case is selected)
  let tA: tf.Tensor,
    tB: tf.Tensor,
    tHA: tf.Tensor,
    tHB: tf.Tensor,
    tBias: tf.Tensor,
    tScores: tf.Tensor,
    tMask: tf.Tensor,
    tFill: tf.Tensor;
  const tfRun = (f: () => tf.Tensor) => (): Float32Array => {
    const y = tf.tidy(f);
    const d = y.dataSync() as Float32Array;
    y.dispose();
    return d;
  };

  const specs: Spec[] = [
    {
      label: `mul [${ROWS},${D_MODEL}]`,
      elems: N,
      plain: () => plainMul(xA, xB),
      op: () => mul(qA, qB),
      kernel: () => {
        const out = new Float32Array(N);
        binaryKernel("mul", xA, sh, xB, sh, out, sh);
        return out;
      },
      tf: tfRun(() => tf.mul(tA, tB)),
    },
    {
      label: `mul [${ROWS},${D_HIDDEN}]`,
      elems: NH,
      plain: () => plainMul(hA, hB),
      op: () => mul(qHA, qHB),
      kernel: () => {
        const out = new Float32Array(NH);
        binaryKernel("mul", hA, shH, hB, shH, out, shH);
        return out;
      },
      tf: tfRun(() => tf.mul(tHA, tHB)),
    },
    {
      label: `add bias [${ROWS},${D_MODEL}]+[${D_MODEL}]`,
      elems: N,
      plain: () => plainAddBias(xA, bias),
      op: () => add(qA, qBias),
      kernel: () => {
        const out = new Float32Array(N);
        binaryKernel("add", xA, sh, bias, [D_MODEL], out, sh);
        return out;
      },
      tf: tfRun(() => tf.add(tA, tBias)),
    },
    {
      label: `mul scalar [${ROWS},${D_MODEL}]`,
      elems: N,
      plain: () => plainMulScalar(xA, SCALE),
      op: () => mul(qA, SCALE),
      kernel: () => {
        const out = new Float32Array(N);
        binaryKernel("mul", xA, sh, scaleArr, [], out, sh);
        return out;
      },
      tf: tfRun(() => tf.mul(tA, SCALE)),
    },
    {
      label: `sub(1, x) [${ROWS},${D_MODEL}]`,
      elems: N,
      plain: () => plainOneMinus(xA),
      op: () => sub(1, qA),
      kernel: () => {
        const out = new Float32Array(N);
        binaryKernel("sub", oneArr, [], xA, sh, out, sh);
        return out;
      },
      tf: tfRun(() => tf.sub(1, tA)),
    },
    {
      label: `exp [${ROWS},${D_MODEL}]`,
      elems: N,
      plain: () => plainExp(xA),
      op: () => exp(qA),
      kernel: () => {
        const out = new Float32Array(N);
        unaryKernel("exp", xA, out);
        return out;
      },
      tf: tfRun(() => tf.exp(tA)),
    },
    {
      label: `sum axis 0 [${ROWS},${D_MODEL}]`,
      elems: N,
      plain: () => plainSumAxis0(xA, ROWS, D_MODEL),
      op: () => sum(qA, 0),
      kernel: () => cpu.reduce("sum", { buf: xA, shape: sh, dtype: "float32" }, [0]) as TypedArray,
      tf: tfRun(() => tf.sum(tA, 0)),
    },
    {
      label: `where mask [${BATCH},${HEADS},${SEQ},${SEQ}]`,
      elems: NS,
      plain: () => plainMaskedFill(mask, scores, MASK_FILL),
      op: () => where(qMask, qScores, MASK_FILL),
      kernel: () => {
        const out = new Float32Array(NS);
        whereKernel(mask, [SEQ, SEQ], scores, shS, fillArr, [], out, shS);
        return out;
      },
      tf: tfRun(() => tf.where(tMask, tScores, tFill)),
    },
  ];

  let tfNote = "";
  let tfOk = false;
  let tfState: tf.Tensor[] = [];
  if (specs.some((s) => want(caseName(s.label, "tfjs-wasm")))) {
    try {
      await tf.setBackend("wasm");
      await tf.ready();
      const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
      const mt = await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT");
      tfNote = `; tfjs-wasm simd=${String(simd)} threads=${mt ? "yes" : "no (single-threaded in Node)"}`;
      tfOk = tf.getBackend() === "wasm";
    } catch (e) {
      console.log(`tfjs-wasm cases not run: ${(e as Error).message}`);
    }
  }
  if (tfOk) {
    tA = tf.tensor2d(xA, [ROWS, D_MODEL]);
    tB = tf.tensor2d(xB, [ROWS, D_MODEL]);
    tHA = tf.tensor2d(hA, [ROWS, D_HIDDEN]);
    tHB = tf.tensor2d(hB, [ROWS, D_HIDDEN]);
    tBias = tf.tensor1d(bias);
    tScores = tf.tensor4d(scores, [BATCH, HEADS, SEQ, SEQ]);
    tMask = tf.tensor2d(mask, [SEQ, SEQ], "bool");
    tFill = tf.scalar(MASK_FILL);
    tfState = [tA, tB, tHA, tHB, tBias, tScores, tMask, tFill];
  }

  const impls = IMPLS.filter((i) => i !== "tfjs-wasm" || tfOk);
  const selected = specs
    .flatMap((s) => impls.map((impl) => ({ spec: s, impl, name: caseName(s.label, impl) })))
    .filter((c) => want(c.name));
  if (selected.length === 0) {
    tf.dispose(tfState);
    console.log(`elementwise: no benchmark matches '${filter}'`);
    return;
  }
  console.log(
    `machine: ${os.cpus()[0]?.model ?? "?"}, ${hardwareThreads()} hardware threads, Node ${process.version}${tfNote}; ` +
      `float32, fresh output per iteration, forward only`,
  );

  const fnOf = (s: Spec, impl: Impl): (() => unknown) =>
    impl === "qkvflow op" ? s.op : impl === "qkvflow kernel" ? s.kernel : impl === "plain JS" ? s.plain : s.tf;

  const rows: Row[] = [];
  const savedDecompilation = Benchmark.support.decompilation;
  Benchmark.support.decompilation = false;
  const opts: Benchmark.Options = { minSamples: 5, maxTime: 1, initCount: 1 };
  const suite = new Benchmark.Suite("elementwise");
  let keep: unknown = null;
  try {
    // correctness once (doubles as warm-up: the first calls generate and compile the kernel loops)
    const checks: string[] = [];
    for (const s of specs) {
      const mine = selected.filter((c) => c.spec === s);
      if (mine.length === 0) continue;
      const ref = s.plain();
      const errs: string[] = [];
      errs.push(`op ${check(`${s.label} qkvflow op`, s.op().data(), ref, TOL).toExponential(1)}`);
      errs.push(`kernel ${check(`${s.label} qkvflow kernel`, s.kernel(), ref, TOL).toExponential(1)}`);
      if (tfOk && mine.some((c) => c.impl === "tfjs-wasm")) {
        const before = tf.memory().numTensors;
        errs.push(`tfjs ${check(`${s.label} tfjs-wasm`, s.tf(), ref, TOL_TF).toExponential(1)}`);
        if (tf.memory().numTensors !== before)
          throw new Error(`elementwise: ${s.label} tfjs-wasm leaks ${tf.memory().numTensors - before} tensors per iteration`);
      }
      checks.push(`${s.label}: ${errs.join(", ")}`);
    }
    console.log(`results checked against plain JS (max |a − b| / max |b|): ${checks.join("; ")}`);

    for (const c of selected) {
      const f = fnOf(c.spec, c.impl);
      suite.add(
        c.name,
        () => {
          keep = f();
        },
        {
          ...opts,
          onComplete: (e: { target: Benchmark }) => {
            if (e.target.error) {
              console.log(`${c.name} failed: ${String(e.target.error)}`);
              return;
            }
            const st = e.target.stats;
            rows.push({
              label: c.spec.label,
              impl: c.impl,
              elems: c.spec.elems,
              ms: st.mean * 1000,
              best: Math.min(...st.sample) * 1000,
              rme: st.rme,
            });
          },
        },
      );
    }
    await runSuite(suite);
  } finally {
    tf.dispose(tfState);
    Benchmark.support.decompilation = savedDecompilation;
  }
  if (keep === undefined) console.log("(no result kept)");
  if (rows.length === 0) return;

  const peers: Impl[] = ["qkvflow op", "plain JS", "tfjs-wasm"];
  console.log(
    `\n| case (float32) | implementation | ms / iteration (mean ± rme) | best ms | ns / element |${peers.map((p) => ` vs ${p} |`).join("")}`,
  );
  console.log(`|---|---|---|---|---|${peers.map(() => "---|").join("")}`);
  for (const r of rows) {
    const ratios = peers.map((p) => {
      const peer = rows.find((x) => x.label === r.label && x.impl === p);
      return peer && peer !== r ? ` ${(r.ms / peer.ms).toFixed(2)}× |` : " - |";
    });
    const ns = (r.ms * 1e6) / r.elems;
    console.log(
      `| ${r.label} | ${r.impl} | ${r.ms < 1 ? r.ms.toFixed(3) : r.ms.toFixed(2)} ± ${r.rme.toFixed(0)}% | ${r.best < 1 ? r.best.toFixed(3) : r.best.toFixed(2)} | ${ns.toFixed(2)} |${ratios.join("")}`,
    );
  }
  console.log(
    "\nns / element = mean time / elements (output elements; for the axis-0 sum, input elements). " +
      "vs X = this row's mean / X's mean for the same case (< 1: this row is faster). " +
      "Every iteration allocates its output (qkvflow, plain JS: a zero-filled typed array; tfjs: wasm heap + the dataSync copy).",
  );
}

runIfMain(import.meta.url, run);
