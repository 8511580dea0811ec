/**
 * Layer norm and GELU, forward + backward as a training step calls them, on the tiny model's shapes
 * (float32): layerNorm of x [2048, 128] with gamma/beta [128], and gelu of x [2048, 512] (the MLP
 * hidden size). Measured in the same run:
 *
 * - qkvflow fused: valueAndGrad of (x, γ, β) => sum(layerNorm(x, γ, β, 1e-5) · w) (gradients for x, γ
 *   and β) and of x => sum(gelu(x) · w), where layerNorm / gelu are the fused primitives (Backend
 *   layerNorm / layerNormBackward / geluBackward: WebAssembly SIMD row kernels), with 1 and 2 threads;
 * - qkvflow composite: the same math from ordinary qkvflow ops (the pre-fusion implementation: mean /
 *   variance / rsqrt / sub / mul / add with keepdims; 0.5·x·(1 + tanh(c·(x + 0.044715·x³)))), so autodiff
 *   goes through many elementwise and reduction kernels (these are single-threaded);
 * - @tensorflow/tfjs-backend-wasm (SIMD, single-threaded in Node): tf.valueAndGrads of the same
 *   functions (layer norm via tf.moments, gelu via the tanh formula), results read back with dataSync();
 * - plain JS: hand-written forward + backward loops over Float32Array (closed-form layer-norm backward
 *   dx = rstd·(gy − mean(gy) − x̂·mean(gy·x̂)), dγ = Σ dy·x̂, dβ = Σ dy; gelu′ from its formula).
 *
 * w is a fixed random tensor of x's shape, so the cotangent dy = w is non-trivial. One iteration = loss
 * + all gradients, available as ordinary typed arrays. Before timing, every implementation's loss and
 * gradients are checked once against plain JS (max |a − b| / max |b| < 1e-4 per array); the suite
 * throws instead of timing wrong results.
 *
 * tfjs-core alone registers no gradients (the union package @tensorflow/tfjs does); this suite loads
 * tfjs-core's own dist/register_all_gradients.js (through require, so tsx resolves its extensionless
 * imports). The gradient registry and engine are tfjs globals, so the gradients apply to the
 * @tensorflow/tfjs-core instance imported here.
 *
 * Run: npx tsx bench/norm-gelu.bench.ts [filter]   (or npx tsx bench/run.ts norm-gelu)
 */
import Benchmark from "benchmark";
import { createRequire } from "node:module";
import os from "node:os";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import {
  add,
  gelu,
  layerNorm,
  mean,
  mul,
  rsqrt,
  sub,
  sum,
  tanh,
  tensor,
  valueAndGrad,
  variance,
  type Tensor,
} from "../packages/autograd/src/index.js";
import { getNumThreads, kernelInfo, setNumThreads } from "../packages/autograd/src/backend/cpu/kernels/gemm.js";
import { geluTanh, geluTanhBackward, layerNormBackwardRows, layerNormRows } from "../packages/autograd/src/backend/cpu/kernels/rows.js";
import { hardwareThreads, nameFilter, randomArray, runIfMain, runSuite } from "./common.js";

const ROWS = 2048;
const D_MODEL = 128;
const D_HIDDEN = 512;
const EPS = 1e-5;
const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;
const TOL = 1e-4;

type OpName = "layerNorm" | "gelu";

/** What one iteration yields: the loss and the gradients (dx, and dγ, dβ for layer norm), as flat arrays. */
type Result = { loss: number; grads: ArrayLike<number>[] };

// ---------------------------------------------------------------------------------------------
// data

/** Rows with different offsets and scales, so the normalisation does something. */
function lnInput(): Float32Array {
  const x = randomArray(ROWS * D_MODEL, 11, -1, 1);
  const off = randomArray(ROWS, 12, -3, 3);
  const scale = randomArray(ROWS, 13, 0.2, 4);
  for (let r = 0; r < ROWS; r++) for (let j = 0; j < D_MODEL; j++) x[r * D_MODEL + j] = x[r * D_MODEL + j]! * scale[r]! + off[r]!;
  return x;
}

// ---------------------------------------------------------------------------------------------
// plain JS (float64 arithmetic in JS numbers, float32 storage)

class PlainLayerNorm {
  readonly y = new Float32Array(ROWS * D_MODEL);
  readonly mu = new Float32Array(ROWS);
  readonly rstd = new Float32Array(ROWS);
  readonly dx = new Float32Array(ROWS * D_MODEL);
  readonly dgamma = new Float32Array(D_MODEL);
  readonly dbeta = new Float32Array(D_MODEL);
  private readonly accG = new Float64Array(D_MODEL);
  private readonly accB = new Float64Array(D_MODEL);

  /** loss = Σ layerNorm(x)·w, then the gradients with dy = w. */
  step(x: Float32Array, gamma: Float32Array, beta: Float32Array, w: Float32Array): number {
    const C = D_MODEL;
    const { y, mu, rstd, dx, dgamma, dbeta, accG, accB } = this;
    let loss = 0;
    for (let r = 0; r < ROWS; r++) {
      const o = r * C;
      let s = 0;
      for (let j = 0; j < C; j++) s += x[o + j]!;
      const m = s / C;
      let v = 0;
      for (let j = 0; j < C; j++) {
        const d = x[o + j]! - m;
        v += d * d;
      }
      const rs = 1 / Math.sqrt(v / C + EPS);
      mu[r] = m;
      rstd[r] = rs;
      for (let j = 0; j < C; j++) {
        const yy = (x[o + j]! - m) * rs * gamma[j]! + beta[j]!;
        y[o + j] = yy;
        loss += yy * w[o + j]!;
      }
    }
    accG.fill(0);
    accB.fill(0);
    for (let r = 0; r < ROWS; r++) {
      const o = r * C;
      const m = mu[r]!;
      const rs = rstd[r]!;
      let a = 0;
      let b = 0;
      for (let j = 0; j < C; j++) {
        const dy = w[o + j]!;
        const xh = (x[o + j]! - m) * rs;
        const gy = dy * gamma[j]!;
        a += gy;
        b += gy * xh;
        accG[j] = accG[j]! + dy * xh;
        accB[j] = accB[j]! + dy;
      }
      a /= C;
      b /= C;
      for (let j = 0; j < C; j++) {
        const xh = (x[o + j]! - m) * rs;
        dx[o + j] = rs * (w[o + j]! * gamma[j]! - a - xh * b);
      }
    }
    for (let j = 0; j < C; j++) {
      dgamma[j] = accG[j]!;
      dbeta[j] = accB[j]!;
    }
    return loss;
  }
}

class PlainGelu {
  readonly y = new Float32Array(ROWS * D_HIDDEN);
  readonly dx = new Float32Array(ROWS * D_HIDDEN);

  /** loss = Σ gelu(x)·w, then dx = w·gelu′(x). */
  step(x: Float32Array, w: Float32Array): number {
    const { y, dx } = this;
    const n = x.length;
    let loss = 0;
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      const yy = 0.5 * v * (1 + Math.tanh(GELU_C * (v + GELU_A * v * v * v)));
      y[i] = yy;
      loss += yy * w[i]!;
    }
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      const th = Math.tanh(GELU_C * (v + GELU_A * v * v * v));
      const d = 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * GELU_C * (1 + 3 * GELU_A * v * v);
      dx[i] = w[i]! * d;
    }
    return loss;
  }
}

// ---------------------------------------------------------------------------------------------
// qkvflow composite (pre-fusion math from ordinary ops)

function layerNormComposite(x: Tensor, gamma: Tensor, beta: Tensor, eps: number): Tensor {
  const mu = mean(x, -1, { keepdims: true });
  const v = variance(x, -1, { keepdims: true });
  const xh = mul(sub(x, mu), rsqrt(add(v, eps)));
  return add(mul(xh, gamma), beta);
}

function geluComposite(x: Tensor): Tensor {
  const inner = mul(GELU_C, add(x, mul(GELU_A, mul(mul(x, x), x))));
  return mul(mul(0.5, x), add(1, tanh(inner)));
}

// ---------------------------------------------------------------------------------------------
// tfjs

let tfGradientsRegistered = false;

function registerTfGradients(): void {
  if (tfGradientsRegistered) return;
  createRequire(import.meta.url)("@tensorflow/tfjs-core/dist/register_all_gradients.js");
  tfGradientsRegistered = true;
}

function tfLayerNormLoss(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, w: tf.Tensor): tf.Scalar {
  const { mean: mu, variance: v } = tf.moments(x, -1, true);
  const xh = tf.mul(tf.sub(x, mu), tf.rsqrt(tf.add(v, EPS)));
  return tf.sum(tf.mul(tf.add(tf.mul(xh, gamma), beta), w));
}

function tfGeluLoss(x: tf.Tensor, w: tf.Tensor): tf.Scalar {
  const inner = tf.mul(GELU_C, tf.add(x, tf.mul(GELU_A, tf.mul(tf.mul(x, x), x))));
  return tf.sum(tf.mul(tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner))), w));
}

// ---------------------------------------------------------------------------------------------

/** max |a − b| / max |b| over one array. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) return NaN; // reported as a failure
    if (d > num) num = d;
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}

/** Throws unless `got` matches the plain-JS reference; returns the worst relative error. */
function check(what: string, got: Result, ref: Result, names: string[]): number {
  const errs = [Math.abs(got.loss - ref.loss) / Math.max(Math.abs(ref.loss), 1), ...got.grads.map((g, i) => relErr(g, ref.grads[i]!))];
  const worst = Math.max(...errs.map((e) => (Number.isNaN(e) ? Infinity : e)));
  if (!(worst < TOL)) {
    const detail = ["loss", ...names].map((n, i) => `${n} ${errs[i]!.toExponential(2)}`).join(", ");
    throw new Error(`norm-gelu: ${what} disagrees with plain JS (max relative error ${worst.toExponential(2)} >= ${TOL}: ${detail})`);
  }
  return worst;
}

interface Case {
  op: OpName;
  impl: string;
  /** fused qkvflow thread count, for the ratio columns */
  fusedThreads?: number;
  name: string;
  fn: () => Result;
}

interface Row {
  op: OpName;
  impl: string;
  fusedThreads?: number;
  ms: number;
  best: number;
  rme: number;
}

/** Runs the layer-norm / GELU benchmarks whose names contain `filter`; prints a markdown table. */
export async function run(filter?: string): Promise<void> {
  const want = nameFilter(filter);
  const hw = hardwareThreads();
  const threadCounts = [...new Set([1, Math.min(2, hw)])];
  const threadLabel = (t: number) => `${t} thread${t > 1 ? "s" : ""}`;
  const implNames = [
    ...threadCounts.map((t) => `qkvflow fused ${threadLabel(t)}`),
    ...threadCounts.map((t) => `qkvflow kernels only ${threadLabel(t)}`),
    "qkvflow composite",
    "tfjs-wasm",
    "plain JS",
  ];
  const caseName = (op: OpName, impl: string) => `norm-gelu: ${op} ${impl}`;
  const ops: OpName[] = ["layerNorm", "gelu"];
  if (!ops.some((op) => implNames.some((impl) => want(caseName(op, impl))))) {
    console.log(`norm-gelu: no benchmark matches '${filter}'`);
    return;
  }
  const wantTf = ops.some((op) => want(caseName(op, "tfjs-wasm")));
  let tfNote = "";
  if (wantTf) {
    try {
      registerTfGradients();
      await tf.setBackend("wasm");
      await tf.ready();
      const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
      const mt = await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT");
      tfNote = `; tfjs-wasm simd=${String(simd)} threads=${mt ? "yes" : "no (single-threaded in Node)"}`;
    } catch (e) {
      console.log(`tfjs-wasm cases not run: ${(e as Error).message}`);
    }
  }
  const tfOk = wantTf && tf.getBackend() === "wasm";
  const savedThreads = getNumThreads();
  console.log(
    `machine: ${os.cpus()[0]?.model ?? "?"}, ${hw} hardware threads, Node ${process.version}; qkvflow simd=${kernelInfo().simd}${tfNote}; ` +
      `float32, layerNorm x ${ROWS}×${D_MODEL} (γ, β [${D_MODEL}]), gelu x ${ROWS}×${D_HIDDEN}`,
  );

  // --- data
  const lnX = lnInput();
  const lnGamma = randomArray(D_MODEL, 21, 0.5, 1.5);
  const lnBeta = randomArray(D_MODEL, 22, -0.5, 0.5);
  const lnW = randomArray(ROWS * D_MODEL, 23, -1, 1);
  const geX = randomArray(ROWS * D_HIDDEN, 31, -5, 5);
  const geW = randomArray(ROWS * D_HIDDEN, 32, -1, 1);

  // --- plain JS
  const pLn = new PlainLayerNorm();
  const pGe = new PlainGelu();
  const plainLn = (): Result => ({ loss: pLn.step(lnX, lnGamma, lnBeta, lnW), grads: [pLn.dx, pLn.dgamma, pLn.dbeta] });
  const plainGe = (): Result => ({ loss: pGe.step(geX, geW), grads: [pGe.dx] });

  // --- qkvflow
  const qX = tensor(lnX, { shape: [ROWS, D_MODEL] });
  const qGamma = tensor(lnGamma, { shape: [D_MODEL] });
  const qBeta = tensor(lnBeta, { shape: [D_MODEL] });
  const qW = tensor(lnW, { shape: [ROWS, D_MODEL] });
  const qGx = tensor(geX, { shape: [ROWS, D_HIDDEN] });
  const qGw = tensor(geW, { shape: [ROWS, D_HIDDEN] });
  const lnFused = valueAndGrad((x: Tensor, g: Tensor, b: Tensor) => sum(mul(layerNorm(x, g, b, EPS), qW)), { argnums: [0, 1, 2] });
  const lnComp = valueAndGrad((x: Tensor, g: Tensor, b: Tensor) => sum(mul(layerNormComposite(x, g, b, EPS), qW)), { argnums: [0, 1, 2] });
  const geFused = valueAndGrad((x: Tensor) => sum(mul(gelu(x), qGw)));
  const geComp = valueAndGrad((x: Tensor) => sum(mul(geluComposite(x), qGw)));
  const qLn = (vg: typeof lnFused) => (): Result => {
    const [loss, grads] = vg(qX, qGamma, qBeta) as [Tensor, Tensor[]];
    return { loss: loss.data()[0]!, grads: grads.map((t) => t.data()) };
  };
  const qGe = (vg: typeof geFused) => (): Result => {
    const [loss, dx] = vg(qGx) as [Tensor, Tensor];
    return { loss: loss.data()[0]!, grads: [dx.data()] };
  };

  // --- the fused row kernels alone (no autodiff, no ops around them; the loss Σ y·w as a JS loop)
  const kY = new Float32Array(ROWS * D_MODEL),
    kMean = new Float32Array(ROWS),
    kRstd = new Float32Array(ROWS);
  const kDx = new Float32Array(ROWS * D_MODEL),
    kDg = new Float32Array(D_MODEL),
    kDb = new Float32Array(D_MODEL);
  const kGy = new Float32Array(ROWS * D_HIDDEN),
    kGdx = new Float32Array(ROWS * D_HIDDEN);
  const dot = (a: Float32Array, b: Float32Array) => {
    let acc = 0;
    for (let i = 0; i < a.length; i++) acc += a[i]! * b[i]!;
    return acc;
  };
  const kernLn = (): Result => {
    layerNormRows(lnX, lnGamma, lnBeta, kY, kMean, kRstd, ROWS, D_MODEL, EPS);
    kDg.fill(0);
    kDb.fill(0);
    layerNormBackwardRows(lnX, lnGamma, kMean, kRstd, lnW, kDx, kDg, kDb, ROWS, D_MODEL);
    return { loss: dot(kY, lnW), grads: [kDx, kDg, kDb] };
  };
  const kernGe = (): Result => {
    geluTanh(geX, kGy, geX.length);
    geluTanhBackward(geX, geW, kGdx, geX.length);
    return { loss: dot(kGy, geW), grads: [kGdx] };
  };

  // --- tfjs
  let tfState: tf.Tensor[] = [];
  const tfRun = (f: () => { value: tf.Scalar; grads: tf.Tensor[] }) => (): Result => {
    const { value, grads } = tf.tidy(f);
    const r = { loss: value.dataSync()[0]!, grads: grads.map((t) => t.dataSync()) };
    tf.dispose([value, ...grads]);
    return r;
  };
  let tfLn: (() => Result) | null = null;
  let tfGe: (() => Result) | null = null;
  if (tfOk) {
    const tX = tf.tensor2d(lnX, [ROWS, D_MODEL]);
    const tGamma = tf.tensor1d(lnGamma);
    const tBeta = tf.tensor1d(lnBeta);
    const tW = tf.tensor2d(lnW, [ROWS, D_MODEL]);
    const tGx = tf.tensor2d(geX, [ROWS, D_HIDDEN]);
    const tGw = tf.tensor2d(geW, [ROWS, D_HIDDEN]);
    tfState = [tX, tGamma, tBeta, tW, tGx, tGw];
    const vgLn = tf.valueAndGrads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tfLayerNormLoss(x, g, b, tW));
    const vgGe = tf.valueAndGrads((x: tf.Tensor) => tfGeluLoss(x, tGw));
    tfLn = tfRun(() => vgLn([tX, tGamma, tBeta]) as { value: tf.Scalar; grads: tf.Tensor[] });
    tfGe = tfRun(() => vgGe([tGx]) as { value: tf.Scalar; grads: tf.Tensor[] });
  }

  // --- cases
  const cases: Case[] = [];
  const withThreads = (t: number, f: () => Result) => () => {
    setNumThreads(t);
    return f();
  };
  const compositeThreads = Math.max(...threadCounts); // composite kernels are single-threaded; fix the setting anyway
  for (const op of ops) {
    const isLn = op === "layerNorm";
    for (const t of threadCounts) {
      cases.push({
        op,
        impl: `qkvflow fused ${threadLabel(t)}`,
        fusedThreads: t,
        name: "",
        fn: withThreads(t, isLn ? qLn(lnFused) : qGe(geFused)),
      });
    }
    for (const t of threadCounts) {
      cases.push({ op, impl: `qkvflow kernels only ${threadLabel(t)}`, name: "", fn: withThreads(t, isLn ? kernLn : kernGe) });
    }
    cases.push({ op, impl: "qkvflow composite", name: "", fn: withThreads(compositeThreads, isLn ? qLn(lnComp) : qGe(geComp)) });
    const tfFn = isLn ? tfLn : tfGe;
    if (tfFn) cases.push({ op, impl: "tfjs-wasm", name: "", fn: tfFn });
    cases.push({ op, impl: "plain JS", name: "", fn: isLn ? plainLn : plainGe });
  }
  for (const c of cases) c.name = caseName(c.op, c.impl);
  const selected = cases.filter((c) => want(c.name));

  const rows: Row[] = [];
  const savedDecompilation = Benchmark.support.decompilation;
  Benchmark.support.decompilation = false;
  const opts: Benchmark.Options = { minSamples: 5, maxTime: 2, initCount: 1 };
  const suite = new Benchmark.Suite("norm-gelu");
  let sink = 0;
  try {
    // correctness once (doubles as warm-up: the first calls grow the kernel memory and compile the kernels)
    const checks: string[] = [];
    for (const op of ops) {
      const opCases = selected.filter((c) => c.op === op);
      if (opCases.length === 0) continue;
      const ref = op === "layerNorm" ? plainLn() : plainGe();
      const snapshot: Result = { loss: ref.loss, grads: ref.grads.map((g) => Float32Array.from(g)) };
      const names = op === "layerNorm" ? ["dx", "dgamma", "dbeta"] : ["dx"];
      // always check the fused kernels, also when only other cases are selected
      const toCheck = [
        ...cases.filter((c) => c.op === op && c.fusedThreads !== undefined),
        ...opCases.filter((c) => c.fusedThreads === undefined && c.impl !== "plain JS"),
      ];
      for (const c of toCheck) {
        const tensorsBefore = c.impl === "tfjs-wasm" ? tf.memory().numTensors : 0;
        const worst = check(c.name, c.fn(), snapshot, names);
        if (c.impl === "tfjs-wasm" && tf.memory().numTensors !== tensorsBefore) {
          throw new Error(`norm-gelu: ${c.name} leaks ${tf.memory().numTensors - tensorsBefore} tensors per iteration`);
        }
        checks.push(`${op} ${c.impl} ${worst.toExponential(1)}`);
      }
    }
    console.log(`gradients checked against plain JS (max relative error): ${checks.join("; ")}`);

    for (const c of selected) {
      suite.add(
        c.name,
        () => {
          sink += c.fn().loss;
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
              op: c.op,
              impl: c.impl,
              fusedThreads: c.fusedThreads,
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
    setNumThreads(savedThreads);
  }
  if (!Number.isFinite(sink)) console.log("(non-finite loss sum)");
  if (rows.length === 0) return;

  const fusedCols = threadCounts.filter((t) => rows.some((r) => r.fusedThreads === t));
  const shapes: Record<OpName, string> = { layerNorm: `layerNorm ${ROWS}×${D_MODEL}`, gelu: `gelu ${ROWS}×${D_HIDDEN}` };
  const elems: Record<OpName, number> = { layerNorm: ROWS * D_MODEL, gelu: ROWS * D_HIDDEN };
  console.log(
    `\n| op, forward + backward | implementation | ms / iteration (mean ± rme) | best ms | nominal GB/s |` +
      fusedCols.map((t) => ` fused ${threadLabel(t)} speedup |`).join(""),
  );
  console.log(`|---|---|---|---|---|${fusedCols.map(() => "---|").join("")}`);
  for (const r of rows) {
    const gbs = (5 * 4 * elems[r.op]) / (r.ms / 1000) / 1e9;
    const ratios = fusedCols.map((t) => {
      const f = rows.find((x) => x.op === r.op && x.fusedThreads === t);
      return f && f !== r ? ` ${(r.ms / f.ms).toFixed(2)}× |` : " - |";
    });
    console.log(
      `| ${shapes[r.op]} | ${r.impl} | ${r.ms.toFixed(2)} ± ${r.rme.toFixed(0)}% | ${r.best.toFixed(2)} | ${gbs.toFixed(2)} |${ratios.join("")}`,
    );
  }
  console.log(
    "\nnominal GB/s = 5 × 4 bytes per element of x / mean time (forward reads x and writes y; backward reads x and dy and writes dx). " +
      "speedup = this row's mean / the fused row's mean (> 1: fused is faster).",
  );
}

runIfMain(import.meta.url, run);
