/**
 * Shared state of the WebAssembly kernels: feature detection, the generated module, the (shared)
 * linear memory, per-thread scratch areas and a per-call workspace allocator.
 *
 * Memory layout:  [0, 64)                 reserved
 *                 [64, 64 + T*scratch)    per-thread GEMM packing buffers (T = max threads)
 *                 [workspaceBase, ...)    operands copied in for the current call (bump allocated)
 *
 * Node built-ins are looked up lazily (process.getBuiltinModule / require) so this file can be loaded
 * in a browser bundle, where the kernels run on one thread.
 */
import { ModuleBuilder } from "./wasm-emitter.js";
import { DEFAULT_GEMM_BLOCKING, emitGemm, gemmScratchBytes } from "./gemm-wasm.js";
import { emitRows } from "./rows-wasm.js";
import { emitAdamW } from "./adamw-wasm.js";

const PAGE = 65536;
/** 4 GiB: the 32-bit address space; a shared memory must declare its maximum up front. */
const MAX_PAGES = 65536;
const INITIAL_PAGES = 16;

/** Look up a Node built-in module without a static import; null outside Node. */
export function nodeBuiltin<T>(name: string): T | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  try {
    if (proc && typeof proc.getBuiltinModule === "function") {
      const mod = proc.getBuiltinModule(name);
      if (mod) return mod as T;
    }
  } catch {
    // fall through
  }
  try {
    const req = (globalThis as { require?: (id: string) => unknown }).require ?? (typeof require === "function" ? require : undefined);
    if (req) return req(name) as T;
  } catch {
    // not available
  }
  return null;
}

/** Number of hardware threads (1 where unknown). */
export function hardwareThreads(): number {
  const os = nodeBuiltin<{ availableParallelism?: () => number; cpus: () => unknown[] }>("node:os");
  let n = 1;
  if (os) n = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(64, n | 0));
}

let simdCache: boolean | null = null;

/** Whether this engine validates 128-bit WebAssembly SIMD. */
export function wasmSimdSupported(): boolean {
  if (simdCache !== null) return simdCache;
  try {
    const mb = new ModuleBuilder();
    mb.func("f", [], ["i32"], (f) => {
      f.f32x4Const(1, 2, 3, 4).f32x4Const(1, 1, 1, 1).f32x4Add().f32x4ExtractLane(3).i32TruncSatF32S();
    });
    const bytes = mb.toBytes();
    simdCache = typeof WebAssembly === "object" && WebAssembly.validate(bytes);
    if (simdCache) {
      const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
      simdCache = (inst.exports.f as () => number)() === 5;
    }
  } catch {
    simdCache = false;
  }
  return simdCache;
}

/** The kernel functions exported by the generated module (all arguments are i32 addresses/counts unless noted). */
export interface KernelExports {
  [name: string]: (...args: number[]) => void;
}

/** Runtime state: memory, compiled module and the main thread's instance. */
export interface KernelRuntime {
  readonly memory: WebAssembly.Memory;
  readonly module: WebAssembly.Module;
  readonly exports: KernelExports;
  readonly exportNames: readonly string[];
  readonly shared: boolean;
  /** bytes of GEMM scratch per thread */
  readonly scratchBytes: number;
  /** number of threads that have scratch reserved */
  readonly maxThreads: number;
  /** first byte of the per-call workspace */
  readonly workspaceBase: number;
}

let runtime: KernelRuntime | null | undefined;
let portableForced = false;

/** Force (or stop forcing) the pure-TypeScript kernels, e.g. to test them where SIMD is available. */
export function setPortableForced(on: boolean): void {
  portableForced = on;
}

/** The WebAssembly runtime to use for float32 kernels, or null to use the portable TypeScript ones. */
export function activeRuntime(): KernelRuntime | null {
  return portableForced ? null : getRuntime();
}

function align64(x: number): number {
  return Math.ceil(x / 64) * 64;
}

/** Emit the kernel module (SGEMM, row kernels and the AdamW update) on an imported memory; `text` records the text dump. */
function buildKernelModule(shared: boolean, text: boolean): ModuleBuilder {
  const mb = new ModuleBuilder({ text }).importMemory({
    module: "env",
    name: "memory",
    initialPages: INITIAL_PAGES,
    maximumPages: MAX_PAGES,
    shared,
  });
  emitGemm(mb, DEFAULT_GEMM_BLOCKING);
  emitRows(mb);
  emitAdamW(mb);
  return mb;
}

/**
 * Text listing of the generated kernel module: every function with its named parameters and locals and
 * one instruction per line, prefixed with the instruction's byte offset in the module (`@+N`, the
 * offsets engines give in a `CompileError`). The same listing `QKVFLOW_WASM_DEBUG` writes.
 */
export function kernelModuleText(shared = runtime?.shared ?? true): string {
  return buildKernelModule(shared, true).toText();
}

/**
 * Where to write the kernel module's text listing when it is built: `QKVFLOW_WASM_DEBUG=1` to stderr,
 * any other value (except 0) to that file; null when unset.
 */
function wasmDebugTarget(): string | null {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const v = env?.QKVFLOW_WASM_DEBUG;
  return v === undefined || v === "" || v === "0" ? null : v;
}

function writeWasmDebug(target: string, text: string): void {
  const fs = nodeBuiltin<{ writeFileSync: (path: string, data: string) => void }>("node:fs");
  if (target === "1" || !fs) {
    console.error(text);
    return;
  }
  fs.writeFileSync(target, text);
  console.error(`kernels: WebAssembly text listing written to ${target}`);
}

/** Build (once) and return the runtime, or null where WebAssembly SIMD is unavailable. */
export function getRuntime(): KernelRuntime | null {
  if (runtime !== undefined) return runtime;
  if (!wasmSimdSupported()) {
    runtime = null;
    return runtime;
  }
  let memory: WebAssembly.Memory;
  let shared = true;
  try {
    memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES, shared: true });
    if (typeof SharedArrayBuffer === "undefined" || !(memory.buffer instanceof SharedArrayBuffer)) shared = false;
  } catch {
    shared = false;
    memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES });
  }
  const debug = wasmDebugTarget();
  const mb = buildKernelModule(shared, debug !== null);
  if (debug !== null) writeWasmDebug(debug, mb.toText());
  const module = new WebAssembly.Module(mb.toBytes());
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const exportNames = WebAssembly.Module.exports(module)
    .filter((e) => e.kind === "function")
    .map((e) => e.name);
  const scratchBytes = align64(gemmScratchBytes(DEFAULT_GEMM_BLOCKING));
  const maxThreads = shared ? hardwareThreads() : 1;
  runtime = {
    memory,
    module,
    exports: instance.exports as unknown as KernelExports,
    exportNames,
    shared,
    scratchBytes,
    maxThreads,
    workspaceBase: align64(64 + scratchBytes * maxThreads),
  };
  return runtime;
}

/** Byte address of thread `t`'s GEMM scratch area. */
export function scratchAddress(rt: KernelRuntime, t: number): number {
  return 64 + rt.scratchBytes * t;
}

/** Grow the memory so that byte addresses below `end` are valid. */
export function ensureMemory(rt: KernelRuntime, end: number): void {
  if (end > MAX_PAGES * PAGE) {
    throw new Error(`kernels: a call needs ${(end / 2 ** 30).toFixed(2)} GiB of WebAssembly memory; the 32-bit limit is 4 GiB`);
  }
  const have = rt.memory.buffer.byteLength;
  if (end <= have) return;
  const want = Math.ceil(end / PAGE);
  // grow geometrically to avoid many small grows
  const pages = Math.min(MAX_PAGES, Math.max(want, Math.ceil((have / PAGE) * 1.25)));
  rt.memory.grow(pages - have / PAGE);
}

let f32Cache: Float32Array | null = null;
let i32Cache: Int32Array | null = null;

/** A Float32Array over the whole current memory (re-created after growth). */
export function f32View(rt: KernelRuntime): Float32Array {
  const buf = rt.memory.buffer;
  if (!f32Cache || f32Cache.buffer !== buf || f32Cache.byteLength !== buf.byteLength) f32Cache = new Float32Array(buf);
  return f32Cache;
}

/** An Int32Array over the whole current memory (re-created after growth). */
export function i32View(rt: KernelRuntime): Int32Array {
  const buf = rt.memory.buffer;
  if (!i32Cache || i32Cache.buffer !== buf || i32Cache.byteLength !== buf.byteLength) i32Cache = new Int32Array(buf);
  return i32Cache;
}

/** Bump allocator over the workspace for one kernel call. */
export class Workspace {
  private top: number;

  constructor(private readonly rt: KernelRuntime) {
    this.top = rt.workspaceBase;
  }

  /** Reserve `bytes` (64-byte aligned) and return the byte address; grows memory as needed. */
  alloc(bytes: number): number {
    const addr = this.top;
    this.top = align64(this.top + Math.max(0, bytes));
    ensureMemory(this.rt, this.top);
    return addr;
  }
}
