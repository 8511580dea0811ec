/**
 * Dropout, forward + backward as a training step calls it, on the tiny model's activation shape
 * [16, 128, 128] float32 (262,144 elements), rate 0.1. One iteration = y = dropout(x) and the cotangent pulled
 * back through it (ag.vjp, so the backward recomputes the mask from the key), both results ordinary typed arrays.
 * Measured in the same run:
 *
 * - qkvflow dropout: the op (Philox-4x32-10 dropout stream, four elements per hash, mask and scale written in one
 *   pass by the CPU backend's fused `dropout` kernel; the backward is the same kernel on the cotangent);
 * - previous implementation: the op as it was before the fused kernel, where(bernoulli(key, 1 − rate), x·s, 0) —
 *   one Threefry-2x32 hash per element on the host, float64 uniforms, a bool mask, then mul and where kernels
 *   (the backward goes through where and mul again, with the mask kept);
 * - kernel only, SIMD / JavaScript: one pass of the CPU kernel (dropoutF32, copying in and out of its WebAssembly
 *   memory included) into a reused output, and the same pass forced to the portable JavaScript loop.
 *
 * Before timing, the op's output is checked against the documented stream (dropoutKeepMask) and the throughput
 * is reported per element. Run: npx tsx bench/dropout.bench.ts [filter]   (or npx tsx bench/run.ts dropout)
 */
import Benchmark from "benchmark";
import { dropout, mul, random, tensor, vjp, where, type Tensor } from "../packages/autograd/src/index.js";
import { dropoutF32 } from "../packages/autograd/src/backend/cpu/kernels/dropout-wasm.js";
import { dropoutKeepMask } from "../packages/autograd/src/random/philox.js";
import { nameFilter, randomArray, runIfMain, runSuite } from "./common.js";

const SHAPE = [16, 128, 128];
const N = 16 * 128 * 128;
const RATE = 0.1;

export async function run(filter?: string): Promise<void> {
  const want = nameFilter(filter);
  const x = tensor(randomArray(N, 1, -2, 2)).reshape(SHAPE);
  const g = tensor(randomArray(N, 2, -1, 1)).reshape(SHAPE);
  const k = random.key(42);
  const s = 1 / (1 - RATE);
  const xs = x.data() as Float32Array;
  const out = new Float32Array(N);
  const fwdBwd = (f: (a: Tensor) => Tensor) => () => {
    const [y, pull] = vjp(f, x);
    const [dx] = pull(g);
    return [y.data(), dx.data()];
  };
  const cases: [string, () => unknown][] = [
    ["qkvflow dropout (Philox, fused)", fwdBwd((a) => dropout(a, RATE, k))],
    ["previous implementation (Threefry + where·mul)", fwdBwd((a) => where(random.bernoulli(k, 1 - RATE, a.shape), mul(a, s), 0))],
    ["kernel only, SIMD pass", () => dropoutF32(xs, out, k.words[0], k.words[1], RATE)],
    ["kernel only, JavaScript pass", () => dropoutF32(xs, out, k.words[0], k.words[1], RATE, true)],
  ];
  // check the op against the documented stream before timing
  const keep = dropoutKeepMask(k.words[0], k.words[1], N, RATE);
  const y = dropout(x, RATE, k).data();
  const xd = x.data();
  for (let i = 0; i < N; i++) {
    const want = keep[i] ? Math.fround(xd[i] * Math.fround(s)) : 0;
    if (y[i] !== want) throw new Error(`dropout bench: element ${i} is ${y[i]}, expected ${want}`);
  }
  const suite = new Benchmark.Suite("dropout");
  for (const [name, fn] of cases) if (want(`dropout: ${name}`)) suite.add(`dropout: ${name}`, fn, { minSamples: 10 });
  suite.on("cycle", (e: Benchmark.Event) => {
    const b = e.target as unknown as Benchmark;
    const ms = (b.stats?.mean ?? 0) * 1e3;
    console.log(`${b.name}: ${ms.toFixed(2)} ms/iter (±${(b.stats?.rme ?? 0).toFixed(1)} %), ${((ms * 1e6) / N).toFixed(1)} ns/element`);
  });
  await runSuite(suite);
}

runIfMain(import.meta.url, run);
