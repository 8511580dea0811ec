/**
 * A synchronous worker pool for the WebAssembly kernels.
 *
 * Each worker instantiates the generated kernel module on the shared WebAssembly.Memory and waits on
 * its slot of a small SharedArrayBuffer control block. Two kinds of work exist:
 *
 *  - `runParallel(tasks)`: one task (export name + numeric arguments) per thread. Task 0 runs on the
 *    calling thread, the others on workers woken with Atomics.notify; the caller then blocks in
 *    Atomics.wait until every worker has reported.
 *  - `runStreamed(spec)`: a row range cut into chunks that all threads claim from a shared counter.
 *    The calling thread copies chunk inputs into kernel memory (publishing a "ready" count) and copies
 *    finished chunks out, computing chunks itself whenever it has nothing to copy, so the copies
 *    between the caller's arrays and the shared memory overlap with the computation on the workers.
 *
 * Either way callers see a plain synchronous function.
 *
 * Workers are created from an inline source string (`eval: true`), so no worker file has to be
 * resolved whether the code runs from TypeScript sources or from a bundle, and they are unref()'d so
 * an idle pool never keeps the process alive. Without worker_threads or shared memory (browsers),
 * work simply runs on the calling thread.
 */
import type { Worker as NodeWorker, WorkerOptions } from "node:worker_threads";
import { getRuntime, hardwareThreads, nodeBuiltin, type KernelRuntime } from "./runtime.js";

/** One unit of work: call the kernel export `fn` with these arguments. */
export interface ParallelTask {
  fn: string;
  args: readonly number[];
}

/**
 * A kernel applied to rows [0, total) in chunks of `per` rows. For the chunk starting at row r0 the
 * arguments are `base[i] + r0 * perRow[i]`, except argument `rowsArg`, which is the chunk's row count.
 */
export interface StreamSpec {
  fn: string;
  total: number;
  per: number;
  rowsArg: number;
  base: readonly number[];
  perRow: readonly number[];
  /** copy the inputs of rows [r0, r0 + n) into kernel memory (calling thread) */
  copyIn?: (r0: number, n: number) => void;
  /** copy the outputs of rows [r0, r0 + n) out of kernel memory (calling thread) */
  copyOut?: (r0: number, n: number) => void;
}

const SLOT_INTS = 64; // 256 bytes per worker slot
const SEQ = 0;
const DONE = 1;
const CMD = 2;
const NARGS = 3;
const STATUS = 4;
const MODE = 5; // 0: call once, 1: stream
const ALIVE = 6; // set by the worker once it waits for commands
const ARGS_F64 = 4; // f64 index within the slot (byte 32)
const MAX_ARGS = SLOT_INTS / 2 - ARGS_F64;
/**
 * Spin-wait budgets (ms) before sleeping in Atomics.wait. A sleeping thread that is woken tends to be
 * placed on the waker's core (Linux wake-affine) and only migrates to the idle core a few ms later,
 * which serialises sub-millisecond parallel calls; so workers keep spinning for a while after a task
 * (back-to-back kernel calls find them running) and the calling thread spins while joining.
 */
const WORKER_SPIN_MS = 2;
const JOIN_SPIN_MS = 2;
/** Maximum number of chunks of one streamed call. */
export const MAX_STREAM_CHUNKS = 1024;
// stream area (after the slots): ready count, claim counter, then one done flag per chunk
const S_READY = 0;
const S_NEXT = 1;
const S_FLAGS = 16;

const STATUS_OK = 0;
const STATUS_ERROR = 1;
const STATUS_UNAVAILABLE = 2;

/** A worker that has not come up after this long is given up on (its tasks run on the caller). */
const STARTUP_TIMEOUT_MS = 20000;

// Plain JavaScript, valid both as a CommonJS and as an ES module script (an eval worker inherits
// --input-type from the parent unless execArgv is reset, which it is below).
const WORKER_SOURCE = `
"use strict";
const wt = typeof require === "function" ? require("node:worker_threads") : process.getBuiltinModule("node:worker_threads");
const workerData = wt.workerData;
const SLOT_INTS = ${SLOT_INTS}, SEQ = ${SEQ}, DONE = ${DONE}, CMD = ${CMD}, NARGS = ${NARGS}, STATUS = ${STATUS};
const MODE = ${MODE}, ARGS_F64 = ${ARGS_F64}, SPIN_MS = ${WORKER_SPIN_MS};
const i32 = new Int32Array(workerData.ctrl);
const f64 = new Float64Array(workerData.ctrl);
const base = workerData.slot * SLOT_INTS;
const S = workerData.streamBase;
let fns = null;
try {
  const inst = new WebAssembly.Instance(workerData.module, { env: { memory: workerData.memory } });
  fns = workerData.names.map((n) => inst.exports[n]);
} catch (e) {
  fns = null;
}
function stream(fn, a0) {
  const chunks = f64[a0], per = f64[a0 + 1], total = f64[a0 + 2], ri = f64[a0 + 3], na = f64[a0 + 4];
  const args = new Array(na);
  let status = ${STATUS_OK};
  for (;;) {
    const c = Atomics.add(i32, S + ${S_NEXT}, 1);
    if (c >= chunks) return status;
    for (let spins = 0, until = 0; ; spins++) {
      const ready = Atomics.load(i32, S + ${S_READY});
      if (ready > c) break;
      if ((spins & 255) === 0) {
        const now = performance.now();
        if (spins === 0) until = now + SPIN_MS;
        else if (now > until) Atomics.wait(i32, S + ${S_READY}, ready, 100);
      }
    }
    const r0 = c * per;
    for (let k = 0; k < na; k++) args[k] = f64[a0 + 5 + k] + r0 * f64[a0 + 5 + na + k];
    args[ri] = Math.min(per, total - r0);
    try {
      fn.apply(null, args);
    } catch (e) {
      status = ${STATUS_ERROR};
    }
    Atomics.store(i32, S + ${S_FLAGS} + c, 1);
    Atomics.notify(i32, S + ${S_FLAGS} + c);
  }
}
// come alive unless the caller has already given up on this worker (ALIVE = -1)
if (Atomics.compareExchange(i32, base + ${ALIVE}, 0, 1) === 0) serve();
function serve() {
let seen = 0;
for (;;) {
  for (let spins = 0, until = 0; Atomics.load(i32, base + SEQ) === seen; spins++) {
    if ((spins & 255) === 0) {
      const now = performance.now();
      if (spins === 0) until = now + SPIN_MS;
      else if (now > until) Atomics.wait(i32, base + SEQ, seen);
    }
  }
  seen = Atomics.load(i32, base + SEQ);
  const cmd = i32[base + CMD];
  if (cmd < 0) break;
  let status = ${STATUS_OK};
  const a0 = (base >> 1) + ARGS_F64;
  if (fns === null) {
    status = ${STATUS_UNAVAILABLE};
  } else if (i32[base + MODE] === 1) {
    status = stream(fns[cmd], a0);
  } else {
    const n = i32[base + NARGS];
    const args = new Array(n);
    for (let k = 0; k < n; k++) args[k] = f64[a0 + k];
    try {
      fns[cmd].apply(null, args);
    } catch (e) {
      status = ${STATUS_ERROR};
    }
  }
  i32[base + STATUS] = status;
  Atomics.store(i32, base + DONE, seen);
  Atomics.notify(i32, base + DONE);
}
}
`;

interface Pool {
  workers: NodeWorker[];
  ctrl: Int32Array;
  ctrlF64: Float64Array;
  seq: number[];
  streamBase: number;
}

let pool: Pool | null = null;
let poolBroken = false;
let numThreads = 0; // 0 = not yet chosen (default: all hardware threads)
let parallelCalls = 0;

/** Counters for tests and diagnostics: live workers and calls that actually ran on more than one thread. */
export function poolStats(): { workers: number; parallelCalls: number } {
  return { workers: pool ? pool.workers.length : 0, parallelCalls };
}

/** Set the number of threads used by the kernels (1..hardware threads). */
export function setPoolThreads(n: number): void {
  const max = hardwareThreads();
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new Error(`setNumThreads: expected an integer in 1..${max} (available parallelism), got ${n}`);
  }
  numThreads = n;
}

/** Threads the kernels will use: the configured count, capped by what the runtime supports. */
export function poolThreads(): number {
  const rt = getRuntime();
  const wanted = numThreads === 0 ? hardwareThreads() : numThreads;
  if (!rt || !rt.shared || poolBroken) return 1;
  return Math.max(1, Math.min(wanted, rt.maxThreads));
}

function workerCtor(): (new (code: string, opts: WorkerOptions) => NodeWorker) | null {
  const wt = nodeBuiltin<{ Worker?: new (code: string, opts: WorkerOptions) => NodeWorker }>("node:worker_threads");
  return wt?.Worker ?? null;
}

function ensureWorkers(rt: KernelRuntime, count: number): Pool | null {
  if (poolBroken) return null;
  if (!pool) {
    const streamBase = SLOT_INTS * Math.max(1, rt.maxThreads);
    const ctrl = new SharedArrayBuffer((streamBase + S_FLAGS + MAX_STREAM_CHUNKS) * 4);
    pool = { workers: [], ctrl: new Int32Array(ctrl), ctrlF64: new Float64Array(ctrl), seq: [], streamBase };
  }
  const Worker = count > pool.workers.length ? workerCtor() : null;
  while (pool.workers.length < count) {
    if (!Worker) {
      poolBroken = true;
      return null;
    }
    const slot = pool.workers.length;
    try {
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        execArgv: [], // plain Node: no loaders or --input-type inherited from the parent

        workerData: {
          module: rt.module,
          memory: rt.memory,
          ctrl: pool.ctrl.buffer,
          slot,
          streamBase: pool.streamBase,
          names: rt.exportNames,
        },
      });
      w.unref();
      // A worker that fails reports through its slot status; keep 'error' from being unhandled.
      w.on("error", () => {
        poolBroken = true;
      });
      pool.workers.push(w);
      pool.seq.push(0);
    } catch {
      poolBroken = true;
      return null;
    }
  }
  return pool;
}

function fnIndex(rt: KernelRuntime, fn: string, nargs: number, caller: string): number {
  const idx = rt.exportNames.indexOf(fn);
  if (idx < 0) throw new Error(`${caller}: unknown kernel '${fn}'`);
  if (nargs > MAX_ARGS) throw new Error(`${caller}: kernel '${fn}' given ${nargs} argument slots; at most ${MAX_ARGS}`);
  return idx;
}

/** Post a command to worker w (1-based thread index) and wake it. */
function post(p: Pool, w: number, cmd: number, mode: number, args: readonly number[]): void {
  const base = (w - 1) * SLOT_INTS;
  p.ctrl[base + CMD] = cmd;
  p.ctrl[base + MODE] = mode;
  p.ctrl[base + NARGS] = args.length;
  const a0 = (base >> 1) + ARGS_F64;
  for (let k = 0; k < args.length; k++) p.ctrlF64[a0 + k] = args[k]!;
  const next = (p.seq[w - 1]! + 1) | 0 || 1;
  p.seq[w - 1] = next;
  Atomics.store(p.ctrl, base + SEQ, next);
  Atomics.notify(p.ctrl, base + SEQ);
}

/** Spin (up to JOIN_SPIN_MS, then sleep in slices) while ctrl[index] === value, until `deadline` (ms). */
function waitWhile(ctrl: Int32Array, index: number, value: number, deadline = Infinity): void {
  for (let spins = 0, until = 0; Atomics.load(ctrl, index) === value; spins++) {
    if ((spins & 255) === 0) {
      const now = performance.now();
      if (now >= deadline) return;
      if (spins === 0) until = now + JOIN_SPIN_MS;
      else if (now > until) Atomics.wait(ctrl, index, value, Math.min(1000, Math.max(1, deadline - now)));
    }
  }
}

/**
 * Wait for worker w's current command; returns its status. A worker that never came up (its startup
 * failed before it could report, or it was killed) is retired after STARTUP_TIMEOUT_MS: its command
 * is withdrawn and STATUS_UNAVAILABLE returned so that the caller runs the task itself.
 */
function join(p: Pool, w: number): number {
  const base = (w - 1) * SLOT_INTS;
  const want = p.seq[w - 1]!;
  const start = performance.now();
  for (;;) {
    const done = Atomics.load(p.ctrl, base + DONE);
    if (done === want) break;
    waitWhile(p.ctrl, base + DONE, done, start + STARTUP_TIMEOUT_MS);
    // retire a worker that never came alive; should it start after all, it sees ALIVE = -1 and exits
    if (performance.now() - start >= STARTUP_TIMEOUT_MS && Atomics.compareExchange(p.ctrl, base + ALIVE, 0, -1) === 0) {
      poolBroken = true;
      return STATUS_UNAVAILABLE;
    }
  }
  return p.ctrl[base + STATUS]!;
}

/**
 * Run independent tasks, task 0 on the calling thread and task i on worker i-1, and return when all
 * are done. Falls back to running them in sequence when no workers are available.
 */
export function runParallel(tasks: readonly ParallelTask[]): void {
  const rt = getRuntime();
  if (!rt) throw new Error("runParallel: WebAssembly SIMD kernels are not available in this environment");
  const ids = tasks.map((t) => fnIndex(rt, t.fn, t.args.length, "runParallel"));
  if (tasks.length === 0) return;
  if (tasks.length > rt.maxThreads) {
    throw new Error(`runParallel: ${tasks.length} tasks but at most ${rt.maxThreads} threads (one task per thread)`);
  }
  const p = tasks.length > 1 ? ensureWorkers(rt, tasks.length - 1) : null;
  if (!p) {
    for (const t of tasks) rt.exports[t.fn]!(...t.args);
    return;
  }
  parallelCalls++;
  for (let w = 1; w < tasks.length; w++) post(p, w, ids[w]!, 0, tasks[w]!.args);
  let mainError: unknown = null;
  try {
    rt.exports[tasks[0]!.fn]!(...tasks[0]!.args);
  } catch (e) {
    mainError = e;
  }
  const redo: ParallelTask[] = [];
  let workerFailed = false;
  for (let w = 1; w < tasks.length; w++) {
    const status = join(p, w);
    if (status === STATUS_UNAVAILABLE) {
      poolBroken = true;
      redo.push(tasks[w]!);
    } else if (status !== STATUS_OK) {
      workerFailed = true;
    }
  }
  if (mainError) throw mainError;
  if (workerFailed) throw new Error(`runParallel: kernel '${tasks[1]!.fn}' failed on a worker thread`);
  for (const t of redo) rt.exports[t.fn]!(...t.args);
}

/**
 * Run a chunked row kernel with copy-in/copy-out on the calling thread overlapped with computation
 * on all threads (see StreamSpec). On one thread the chunks simply run in order.
 */
export function runStreamed(spec: StreamSpec): void {
  const rt = getRuntime();
  if (!rt) throw new Error("runStreamed: WebAssembly SIMD kernels are not available in this environment");
  const { fn, total, per, rowsArg, base, perRow } = spec;
  const na = base.length;
  const id = fnIndex(rt, fn, 5 + 2 * na, "runStreamed");
  if (perRow.length !== na || rowsArg < 0 || rowsArg >= na || !(per >= 1)) {
    throw new Error(
      `runStreamed: inconsistent spec for '${fn}' (${na} base args, ${perRow.length} increments, rows arg ${rowsArg}, per ${per})`,
    );
  }
  if (total <= 0) return;
  const chunks = Math.ceil(total / per);
  if (chunks > MAX_STREAM_CHUNKS) throw new Error(`runStreamed: ${chunks} chunks exceed the limit of ${MAX_STREAM_CHUNKS}`);
  const kernel = rt.exports[fn]!;
  const args = new Array<number>(na);
  const runChunk = (c: number): void => {
    const r0 = c * per;
    for (let k = 0; k < na; k++) args[k] = base[k]! + r0 * perRow[k]!;
    args[rowsArg] = Math.min(per, total - r0);
    kernel(...args);
  };
  const rows = (c: number): [number, number] => [c * per, Math.min(per, total - c * per)];
  const threads = Math.min(poolThreads(), chunks);
  const p = threads > 1 ? ensureWorkers(rt, threads - 1) : null;
  if (!p) {
    for (let c = 0; c < chunks; c++) {
      spec.copyIn?.(...rows(c));
      runChunk(c);
      spec.copyOut?.(...rows(c));
    }
    return;
  }
  parallelCalls++;
  const { ctrl } = p;
  const S = p.streamBase;
  Atomics.store(ctrl, S + S_READY, 0);
  Atomics.store(ctrl, S + S_NEXT, 0);
  ctrl.fill(0, S + S_FLAGS, S + S_FLAGS + chunks);
  const streamArgs = [chunks, per, total, rowsArg, na, ...base, ...perRow];
  for (let w = 1; w < threads; w++) post(p, w, id, 1, streamArgs);
  let out = 0;
  const drain = (): void => {
    while (out < chunks && Atomics.load(ctrl, S + S_FLAGS + out) === 1) {
      const [r0, nr] = rows(out);
      out++;
      if (spec.copyOut) spec.copyOut(r0, nr);
    }
  };
  // Keep the copied inputs `lead` chunks ahead of the claims, but no further, so that a chunk is still
  // in the shared cache when a thread computes it; between top-ups, claim and compute a chunk here.
  const lead = 4 * threads;
  let copied = 0;
  const copyUpTo = (end: number): void => {
    while (copied < end) {
      spec.copyIn?.(...rows(copied));
      copied++;
      Atomics.store(ctrl, S + S_READY, copied);
      Atomics.notify(ctrl, S + S_READY);
    }
  };
  let mainError: unknown = null;
  try {
    for (;;) {
      drain();
      const frontier = Math.min(chunks, Atomics.load(ctrl, S + S_NEXT) + lead);
      if (copied < frontier) {
        copyUpTo(frontier);
        continue;
      }
      const c = Atomics.add(ctrl, S + S_NEXT, 1);
      if (c >= chunks) break;
      copyUpTo(c + 1);
      runChunk(c);
      Atomics.store(ctrl, S + S_FLAGS + c, 1);
    }
    // every chunk is claimed; the workers' chunks still need their inputs
    copyUpTo(chunks);
  } catch (e) {
    mainError = e;
    // release workers waiting for inputs: they finish the chunks they claim (on whatever the
    // inputs hold) and report back, then the error is rethrown below
    Atomics.store(ctrl, S + S_READY, chunks);
    Atomics.notify(ctrl, S + S_READY);
  }
  // Every chunk has been claimed by now (the claim loop above ran the counter past the end), so
  // each one finishes; copy the rest out in order as they complete.
  if (mainError === null) {
    while (out < chunks) {
      if (Atomics.load(ctrl, S + S_FLAGS + out) === 1) drain();
      else waitWhile(ctrl, S + S_FLAGS + out, 0);
    }
  }
  let workerFailed = false;
  for (let w = 1; w < threads; w++) {
    const status = join(p, w);
    if (status === STATUS_UNAVAILABLE) poolBroken = true;
    else if (status !== STATUS_OK) workerFailed = true;
  }
  if (mainError) throw mainError;
  if (workerFailed) throw new Error(`runStreamed: kernel '${fn}' failed on a worker thread`);
}

/** Stop all workers (they are unref()'d, so this is only needed to free them early). */
export function shutdownPool(): void {
  if (!pool) return;
  for (let w = 1; w <= pool.workers.length; w++) post(pool, w, -1, 0, []);
  for (const w of pool.workers) void w.terminate();
  pool = null;
}
