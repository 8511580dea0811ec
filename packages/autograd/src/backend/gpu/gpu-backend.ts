/**
 * The gpu backend: every primitive of the Backend interface and most fused kernels as gpu.js kernels (the fused
 * projection + cross-entropy runs as the op layer's composite: its matmul, then this backend's cross-entropy).
 *
 * Buffers are gpu.js pipeline textures on GL modes (headlessgl, webgl2, webgl) and Float32Arrays on the cpu
 * and webasm modes; results stay where the kernel wrote them and are read back only by `read` (which caches
 * the host copy: buffers are immutable). Every value is stored as a single-precision float: int32 and bool
 * tensors are carried as floats (integers exact below 2^24); float64 is refused. Kernels are generated as
 * source whose sizes and strides are arguments, compiled once per op structure and cached.
 */
import type { IGPUSettings, IKernelRunShortcut, Texture } from "gpu.js";
import { GPU } from "./gpujs.js";
import type { Backend, BinaryOp, Buffer, FusedKernels, ReduceOp, TensorInfo, UnaryOp } from "../backend.js";
import { allocArray, type DType, type TypedArray } from "../../dtype.js";
import { broadcastStrides, fmt, lastAxisRows, sizeOf, stridesOf, type Shape } from "../../shape.js";
import {
  argNames,
  binaryBody,
  coalesce,
  geluGradBody,
  kernelSource,
  Names,
  offsetExpr,
  splitIndex,
  truncBody,
  unaryBody,
} from "./codegen.js";
import { GL_MODES, isGpuModeSupported, modeOfKernelClass, type GpuMode, type ResolvedGpuMode } from "./modes.js";
import { trackAllocation, type Releasable } from "../../tidy.js";

/** What to do when the mode that runs is not the mode that was asked for. */
export type ModeMismatchPolicy = "error" | "warn" | "silent";

/** Options of `createGpuBackend`. */
export interface GpuBackendOptions {
  /** gpu.js mode (default `auto`: the best mode available, reported in `backend.mode`). */
  mode?: GpuMode;
  /**
   * When an explicitly requested mode is unavailable, or a kernel is moved to another mode by gpu.js at run
   * time: `error` throws (default), `warn` logs once and goes on with what runs, `silent` goes on quietly.
   * With `auto` the chosen mode is never a mismatch, but a later run-time change is.
   */
  onModeMismatch?: ModeMismatchPolicy;
  /** Name under which the backend registers (default `gpu`). */
  name?: string;
  /** Canvas or WebGL context to share (browser), passed to gpu.js. */
  canvas?: unknown;
  context?: unknown;
  /** Release a buffer's device memory when its tensor is garbage collected (default true). */
  releaseOnGc?: boolean;
  /** Sum/max/min runs longer than this are reduced in several passes (default 256). */
  reduceChunk?: number;
}

/** Counters of a gpu backend (for tests, benchmarks and leak hunting). */
export interface GpuBackendStats {
  /** Live (not disposed) buffers and their element count. */
  buffers: number;
  elements: number;
  /** Distinct compiled kernels. */
  kernels: number;
  /** Kernel launches, host→device uploads and device→host read-backs since creation. */
  launches: number;
  uploads: number;
  readbacks: number;
}

type Store = Texture | Float32Array | null;

const isTexture = (s: Store): s is Texture => s !== null && !(s instanceof Float32Array);

/** A device buffer of the gpu backend. */
export class GpuBuffer implements Releasable {
  /** @internal */ store: Store;
  /** Host copy (set on upload and on the first read-back). */
  host: TypedArray | null;
  disposed = false;
  constructor(
    readonly owner: GpuBackend,
    store: Store,
    readonly size: number,
    readonly dtype: DType,
    host: TypedArray | null,
  ) {
    this.store = store;
    this.host = host;
  }
  /** Frees the device memory (idempotent). */
  release(): void {
    this.owner.dispose(this);
  }
}

const registry =
  typeof FinalizationRegistry === "function"
    ? new FinalizationRegistry<Texture>((t) => {
        try {
          t.delete();
        } catch {
          // context already gone
        }
      })
    : null;

const nameOf = (m: ResolvedGpuMode | "unknown"): string => m;

/** Creates a gpu backend (gpu.js kernels) in the requested mode; `backend.mode` says which mode runs. */
export function createGpuBackend(opts: GpuBackendOptions = {}): GpuBackend {
  return new GpuBackend(opts);
}

/** The fused kernels the gpu backend implements; the linear + cross-entropy ones run as the op layer's composites. */
type GpuFusedKernels = Pick<
  FusedKernels,
  "softmax" | "crossEntropy" | "crossEntropyBackward" | "layerNorm" | "layerNormBackward" | "geluBackward"
>;

/** The Backend implementation on gpu.js. */
export class GpuBackend implements Backend, GpuFusedKernels {
  readonly name: string;
  /** The mode that was asked for. */
  readonly requestedMode: GpuMode;
  /** The mode kernels run on (updated if gpu.js moves a kernel at run time). */
  mode: ResolvedGpuMode;
  /** Why the running mode differs from the requested one (null when it does not). */
  fallbackReason: string | null = null;
  /** The gpu.js instance. */
  readonly gpu: GPU;
  private readonly policy: ModeMismatchPolicy;
  private readonly kernels = new Map<string, IKernelRunShortcut>();
  private readonly checked = new Set<string>();
  private readonly releaseOnGc: boolean;
  private readonly chunk: number;
  private warned = false;
  private live = 0;
  private liveElements = 0;
  private counters = { launches: 0, uploads: 0, readbacks: 0 };

  constructor(opts: GpuBackendOptions = {}) {
    this.name = opts.name ?? "gpu";
    this.requestedMode = opts.mode ?? "auto";
    this.policy = opts.onModeMismatch ?? "error";
    this.releaseOnGc = opts.releaseOnGc ?? true;
    this.chunk = Math.max(2, Math.floor(opts.reduceChunk ?? 256));
    const settings: IGPUSettings = {};
    if (opts.canvas !== undefined) (settings as Record<string, unknown>).canvas = opts.canvas;
    if (opts.context !== undefined) (settings as Record<string, unknown>).context = opts.context;
    const req = this.requestedMode;
    if (req === "webgpu") {
      // gpu.js's webgpu kernels only return Promises, and Backend.read is synchronous.
      this.mismatch(
        "webgpu",
        "webgpu kernels are asynchronous in gpu.js (every call returns a Promise) and the qkvflow Backend interface is synchronous",
      );
      settings.mode = "gpu";
    } else if (req !== "auto") {
      if (!isGpuModeSupported(req)) {
        this.mismatch(
          req,
          `gpu.js reports mode '${req}' as unsupported here${req === "headlessgl" ? " (the native 'gl' module did not load or could not open a context; see .ci/gpu-setup.sh and run under xvfb-run)" : ""}`,
        );
        settings.mode = "gpu";
      } else settings.mode = req as IGPUSettings["mode"];
    }
    let gpu: GPU;
    try {
      gpu = new GPU(settings);
    } catch (e) {
      if (settings.mode === "gpu") throw e;
      this.mismatch(req as ResolvedGpuMode, `gpu.js could not start mode '${req}': ${(e as Error).message}`);
      gpu = new GPU({ ...settings, mode: "gpu" });
    }
    this.gpu = gpu;
    const chosen = modeOfKernelClass((gpu as unknown as { Kernel: unknown }).Kernel);
    this.mode = chosen === "unknown" ? "cpu" : chosen;
  }

  private mismatch(asked: GpuMode, reason: string): void {
    const msg = `gpu backend: requested mode '${asked}' is not what runs: ${reason}`;
    this.fallbackReason = reason;
    if (this.policy === "error")
      throw new Error(`${msg}; expected an available mode (available: ${availableList()}) or onModeMismatch: 'warn' | 'silent'`);
    if (this.policy === "warn" && !this.warned) {
      this.warned = true;
      console.warn(`${msg}; continuing on the mode gpu.js picks (see backend.mode)`);
    }
  }

  /** Whether results live in GL textures (as opposed to host arrays on the cpu / webasm modes). */
  get onDevice(): boolean {
    return GL_MODES.includes(this.mode);
  }

  /** Live buffers, compiled kernels and transfer counters. */
  stats(): GpuBackendStats {
    return { buffers: this.live, elements: this.liveElements, kernels: this.kernels.size, ...this.counters };
  }

  /** Destroys every compiled kernel and the gpu.js instance (buffers become unusable). */
  destroy(): void {
    for (const k of this.kernels.values()) {
      try {
        k.destroy();
      } catch {
        // already gone
      }
    }
    this.kernels.clear();
    void this.gpu.destroy();
  }

  // ---------------------------------------------------------------- buffers

  private wrap(store: Store, size: number, dtype: DType, host: TypedArray | null): GpuBuffer {
    const b = new GpuBuffer(this, store, size, dtype, host);
    this.live++;
    this.liveElements += size;
    if (registry && this.releaseOnGc && isTexture(store)) registry.register(b, store, b);
    trackAllocation(b);
    return b;
  }

  private buf(op: string, x: TensorInfo): GpuBuffer {
    const b = x.buf;
    if (!(b instanceof GpuBuffer))
      throw new Error(`gpu backend (${op}): operand ${fmt(x.shape)} is not a gpu buffer; expected a tensor created on this backend`);
    if (b.owner !== this)
      throw new Error(
        `gpu backend (${op}): operand ${fmt(x.shape)} belongs to another gpu backend instance; expected a tensor of this instance`,
      );
    if (b.disposed)
      throw new Error(
        `gpu backend (${op}): operand ${fmt(x.shape)} (${x.dtype}) was disposed; expected a live tensor (was it released by tidy or dispose?)`,
      );
    return b;
  }

  private checkDType(op: string, dtype: DType): void {
    if (dtype === "float64") {
      throw new Error(
        `gpu backend (${op}): float64 is not supported (gpu.js computes in single precision); expected float32, int32 or bool — use the cpu backend for float64`,
      );
    }
  }

  fromArray(data: TypedArray, dtype: DType): Buffer {
    this.checkDType("fromArray", dtype);
    const n = data.length;
    if (n === 0) return this.wrap(null, 0, dtype, data);
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    this.counters.uploads++;
    if (!this.onDevice) return this.wrap(f32, n, dtype, data);
    const store = this.launch(
      "upload",
      this.kernel("upload", () => kernelSource(["a"], "return a[i];\n")),
      n,
      [f32],
    );
    return this.wrap(store, n, dtype, data);
  }

  zeros(dtype: DType, size: number): Buffer {
    return this.fill(dtype, size, 0);
  }

  read(x: TensorInfo): TypedArray {
    const b = this.buf("read", x);
    if (b.host) return b.host;
    const out = allocArray(b.dtype, b.size);
    if (b.size > 0) {
      this.counters.readbacks++;
      const raw = isTexture(b.store) ? (b.store.toArray() as Float32Array) : (b.store as Float32Array);
      if (b.dtype === "float32") (out as Float32Array).set(raw.length === b.size ? raw : raw.subarray(0, b.size));
      else if (b.dtype === "bool") for (let i = 0; i < b.size; i++) out[i] = raw[i] !== 0 ? 1 : 0;
      else for (let i = 0; i < b.size; i++) out[i] = Math.round(raw[i]);
    }
    b.host = out;
    return out;
  }

  dispose(buf: Buffer): void {
    if (!(buf instanceof GpuBuffer) || buf.disposed || buf.owner !== this) return;
    buf.disposed = true;
    this.live--;
    this.liveElements -= buf.size;
    if (isTexture(buf.store)) {
      registry?.unregister(buf);
      buf.store.delete();
    }
    buf.store = null;
    buf.host = null;
  }

  // ---------------------------------------------------------------- kernel machinery

  /**
   * The compiled kernel for a structure key (created on first use). Kernels take sizes and strides as
   * arguments and have a dynamic output size, so one kernel serves every shape of its structure.
   */
  private kernel(key: string, source: () => string): IKernelRunShortcut {
    let k = this.kernels.get(key);
    if (!k) {
      const settings = {
        output: [1],
        pipeline: true,
        immutable: true,
        precision: "single",
        tactic: "precision",
        dynamicOutput: true,
        dynamicArguments: true,
        loopMaxIterations: 1 << 30,
      };
      k = this.gpu.createKernel(source(), settings as Parameters<GPU["createKernel"]>[1]);
      this.kernels.set(key, k);
    }
    return k;
  }

  /** Runs kernel `k` with output size n; checks once per kernel that it runs in the backend's mode. */
  private launch(key: string, k: IKernelRunShortcut, n: number, args: (Store | number)[]): Store {
    this.counters.launches++;
    const shortcut = k as unknown as { output?: number[]; setOutput(o: number[]): void } & ((...a: unknown[]) => unknown);
    const cur = (k.kernel as unknown as { output?: number[] } | undefined)?.output ?? shortcut.output;
    if (!cur || cur[0] !== n) k.setOutput([n]);
    let out = shortcut(...args) as Store;
    if (out && !(out instanceof Float32Array) && (out as unknown as { output?: number[] }).output?.[0] !== n) {
      // gpu.js (immutable pipeline) swapped in, as this kernel's output, a texture of an earlier call that was an
      // argument of this kernel, sized for that call's output: give the kernel a texture of this size, run again
      (out as Texture).delete();
      k.setOutput([n]);
      out = shortcut(...args) as Store;
    }
    if (!this.checked.has(key)) {
      this.checked.add(key);
      const ran = modeOfKernelClass((k.kernel ?? k).constructor);
      if (ran !== "unknown" && ran !== this.mode) {
        const reason = (k.kernel as unknown as { fallbackReason?: string | null })?.fallbackReason ?? "gpu.js moved the kernel";
        const was = this.mode;
        this.mode = ran;
        this.mismatch(was, `kernel '${key}' ran on '${nameOf(ran)}' (${reason})`);
      }
    }
    if (out instanceof Float32Array) return out;
    if (out && typeof (out as Texture).toArray === "function") return out as Texture;
    throw new Error(`gpu backend: kernel '${key}' returned ${Object.prototype.toString.call(out)}; expected a texture or a Float32Array`);
  }

  /**
   * Runs the kernel of structure `key` (source from `src`) with output size n over the given buffers, then
   * the numeric arguments `uniforms` (size-0 outputs skip the launch).
   */
  private run(
    op: string,
    key: string,
    n: number,
    dtype: DType,
    src: () => string,
    inputs: GpuBuffer[],
    uniforms: number[] = [],
  ): GpuBuffer {
    this.checkDType(op, dtype);
    if (n === 0) return this.wrap(null, 0, dtype, allocArray(dtype, 0));
    const fullKey = `${op}:${key}`;
    const k = this.kernel(fullKey, src);
    return this.wrap(this.launch(fullKey, k, n, [...inputs.map((b) => b.store), ...uniforms]), n, dtype, null);
  }

  /** Host values of an int32 index buffer (cached host copy or a read-back). */
  private hostOf(x: TensorInfo, op: string): TypedArray {
    this.buf(op, x);
    return this.read(x);
  }

  // ---------------------------------------------------------------- elementwise

  cast(x: TensorInfo, to: DType): Buffer {
    const b = this.buf("cast", x);
    this.checkDType("cast", to);
    let body = "let v = a[i];\nlet res = v;\n";
    if (to === "bool") body += "res = v != 0.0 ? 1.0 : 0.0;\n";
    else if (to === "int32" && x.dtype === "float32") body += truncBody("res");
    body += "return res;\n";
    return this.run("cast", `${x.dtype}>${to}`, b.size, to, () => kernelSource(["a"], body), [b]);
  }

  fill(dtype: DType, size: number, value: number): Buffer {
    this.checkDType("fill", dtype);
    const coerced = allocArray(dtype, 1);
    coerced[0] = value;
    const v = coerced[0];
    if (!this.onDevice && size > 0) return this.wrap(new Float32Array(size).fill(v), size, dtype, null);
    return this.run("fill", "", size, dtype, () => kernelSource(["v"], "return v;\n"), [], [v]);
  }

  unary(op: UnaryOp, x: TensorInfo, outDType: DType): Buffer {
    const b = this.buf(op, x);
    const intOut = outDType === "int32";
    return this.run(
      "u",
      `${op}:${intOut}`,
      b.size,
      outDType,
      () => {
        const names = new Names();
        return kernelSource(
          ["a"],
          `let v = a[i];\nlet res = 0.0;\n${unaryBody(op, "v", "res", names)}${intOut ? truncBody("res") : ""}return res;\n`,
        );
      },
      [b],
    );
  }

  /** Merged axes of an elementwise op: at least one axis (a scalar result is one element). */
  private static axes(outShape: Shape, strides: number[][]): { dims: number[]; st: number[][] } {
    const c = coalesce(outShape, strides);
    if (c.shape.length === 0) return { dims: [1], st: strides.map(() => [0]) };
    return { dims: c.shape, st: c.strides };
  }

  binary(op: BinaryOp, a: TensorInfo, b: TensorInfo, outShape: Shape, outDType: DType): Buffer {
    const A = this.buf(op, a),
      B = this.buf(op, b);
    const { dims, st } = GpuBackend.axes(outShape, [broadcastStrides(a.shape, outShape), broadcastStrides(b.shape, outShape)]);
    const R = dims.length;
    const intOut = outDType === "int32";
    return this.run(
      "b",
      `${op}:${intOut}:${R}`,
      sizeOf(outShape),
      outDType,
      () => {
        const names = new Names();
        const d = argNames("d", R),
          sa = argNames("sa", R),
          sb = argNames("sb", R);
        const { code, coords } = splitIndex("i", d, names);
        return kernelSource(
          ["a", "b", ...d, ...sa, ...sb],
          code +
            `let x = a[${offsetExpr(coords, sa)}];\nlet y = b[${offsetExpr(coords, sb)}];\n` +
            "let res = 0.0;\n" +
            binaryBody(op, "x", "y", "res", names) +
            (intOut ? truncBody("res") : "") +
            "return res;\n",
        );
      },
      [A, B],
      [...dims, ...st[0], ...st[1]],
    );
  }

  where(cond: TensorInfo, a: TensorInfo, b: TensorInfo, outShape: Shape): Buffer {
    const C = this.buf("where", cond),
      A = this.buf("where", a),
      B = this.buf("where", b);
    const { dims, st } = GpuBackend.axes(outShape, [
      broadcastStrides(cond.shape, outShape),
      broadcastStrides(a.shape, outShape),
      broadcastStrides(b.shape, outShape),
    ]);
    const R = dims.length;
    return this.run(
      "where",
      `${R}`,
      sizeOf(outShape),
      a.dtype,
      () => {
        const d = argNames("d", R),
          sc = argNames("sc", R),
          sa = argNames("sa", R),
          sb = argNames("sb", R);
        const { code, coords } = splitIndex("i", d, new Names());
        return kernelSource(
          ["c", "a", "b", ...d, ...sc, ...sa, ...sb],
          code +
            "let res = 0.0;\n" +
            `if (c[${offsetExpr(coords, sc)}] != 0.0) { res = a[${offsetExpr(coords, sa)}]; } ` +
            `else { res = b[${offsetExpr(coords, sb)}]; }\nreturn res;\n`,
        );
      },
      [C, A, B],
      [...dims, ...st[0], ...st[1], ...st[2]],
    );
  }

  // ---------------------------------------------------------------- reductions

  reduce(op: ReduceOp, x: TensorInfo, axes: readonly number[]): Buffer {
    let cur = this.buf(op, x);
    let shape = [...x.shape];
    const runs: [number, number][] = [];
    for (const a of axes) {
      const r = runs[runs.length - 1];
      if (r && r[1] === a - 1) r[1] = a;
      else runs.push([a, a]);
    }
    if (runs.length === 0) return this.copy(cur, x.dtype);
    const temps: GpuBuffer[] = [];
    for (let ri = runs.length - 1; ri >= 0; ri--) {
      const [s, e] = runs[ri];
      const outer = sizeOf(shape.slice(0, s));
      let R = sizeOf(shape.slice(s, e + 1));
      const inner = sizeOf(shape.slice(e + 1));
      if (R === 0) {
        if (op !== "sum") throw new Error(`gpu backend (${op}): reducing an empty axis of ${fmt(x.shape)}; expected a non-empty axis`);
        cur = this.fill(x.dtype, outer * inner, 0) as GpuBuffer;
        temps.push(cur);
      }
      // long runs are reduced in chunks, pass after pass, for parallelism and accuracy
      while (R > 0) {
        const C = R > this.chunk ? this.chunk : R;
        const nC = Math.ceil(R / C);
        cur = this.run("red", op, outer * nC * inner, x.dtype, () => this.reduceSource(op), [cur], [nC, inner, R, C]);
        temps.push(cur);
        R = nC === 1 ? 0 : nC;
      }
      shape = [...shape.slice(0, s), ...shape.slice(e + 1)];
    }
    const result = temps.pop()!;
    for (const t of temps) this.dispose(t);
    return result;
  }

  /** [outer, R, inner] → [outer, nC, inner], each output reducing one chunk of C consecutive entries. */
  private reduceSource(op: ReduceOp): string {
    const { code, coords } = splitIndex("i", ["outer", "nC", "inner"], new Names());
    const [o, k, j] = coords;
    const step =
      op === "sum" ? "acc += v;\n" : op === "max" ? "if (v > acc || v != v) { acc = v; }\n" : "if (v < acc || v != v) { acc = v; }\n";
    return kernelSource(
      ["x", "nC", "inner", "R", "C"],
      code +
        `let first = ${k} * C;\nlet base = ${o} * R * inner + first * inner + ${j};\n` +
        (op === "sum" ? "let acc = 0.0;\n" : "let acc = x[base];\n") +
        `for (let t = ${op === "sum" ? 0 : 1}; t < C; t++) {\n` +
        "if (first + t < R) {\nlet v = x[base + t * inner];\n" +
        step +
        "}\n}\nreturn acc;\n",
    );
  }

  // ---------------------------------------------------------------- matmul

  matmul(a: TensorInfo, b: TensorInfo, transA: boolean, transB: boolean, outShape: Shape): Buffer {
    const A = this.buf("matmul", a),
      B = this.buf("matmul", b);
    const ra = a.shape.length,
      rb = b.shape.length,
      ro = outShape.length;
    const m = outShape[ro - 2],
      n = outShape[ro - 1];
    const K = transA ? a.shape[ra - 2] : a.shape[ra - 1];
    const total = sizeOf(outShape);
    if (K === 0) return this.fill(a.dtype, total, 0);
    const batchShape = outShape.slice(0, ro - 2);
    const sa = broadcastStrides(a.shape.slice(0, ra - 2), batchShape).map((s) => s * m * K);
    const sb = broadcastStrides(b.shape.slice(0, rb - 2), batchShape).map((s) => s * K * n);
    const so = stridesOf(batchShape).map((s) => s * m * n);
    const cb = coalesce(batchShape, [sa, sb, so]);
    const Rb = cb.shape.length;
    // element strides inside one matrix
    const [ai, ak] = transA ? [1, m] : [K, 1];
    const [bk, bj] = transB ? [1, K] : [n, 1];
    return this.run(
      "mm",
      `${Rb}`,
      total,
      a.dtype,
      () => {
        const d = argNames("d", Rb),
          pa = argNames("sa", Rb),
          pb = argNames("sb", Rb);
        const { code, coords } = splitIndex("i", [...d, "m", "n"], new Names());
        const bc = coords.slice(0, Rb),
          ci = coords[Rb],
          cj = coords[Rb + 1];
        return kernelSource(
          ["a", "b", ...d, "m", "n", "K", ...pa, ...pb, "ai", "ak", "bk", "bj"],
          code +
            `let oa = ${offsetExpr([...bc, ci], [...pa, "ai"])};\nlet ob = ${offsetExpr([...bc, cj], [...pb, "bj"])};\nlet acc = 0.0;\n` +
            "for (let t = 0; t < K; t++) {\nacc += a[oa + t * ak] * b[ob + t * bk];\n}\nreturn acc;\n",
        );
      },
      [A, B],
      [...cb.shape, m, n, K, ...cb.strides[0], ...cb.strides[1], ai, ak, bk, bj],
    );
  }

  // ---------------------------------------------------------------- data movement

  private copy(x: GpuBuffer, dtype: DType): GpuBuffer {
    return this.run("copy", "", x.size, dtype, () => kernelSource(["a"], "return a[i];\n"), [x]);
  }

  /** out[idx] = x[offset + Σ coord·strides] over outShape. */
  private strided(x: GpuBuffer, dtype: DType, outShape: Shape, strides: readonly number[], offset: number): GpuBuffer {
    const n = sizeOf(outShape);
    const { dims, st } = GpuBackend.axes(outShape, [[...strides]]);
    if (dims.length === 1 && st[0][0] === 1 && offset === 0 && n === x.size) return this.copy(x, dtype);
    const R = dims.length;
    return this.run(
      "strided",
      `${R}`,
      n,
      dtype,
      () => {
        const d = argNames("d", R),
          s = argNames("s", R);
        const { code, coords } = splitIndex("i", d, new Names());
        return kernelSource(["a", ...d, ...s, "off"], code + `return a[${offsetExpr(coords, s, "off")}];\n`);
      },
      [x],
      [...dims, ...st[0], offset],
    );
  }

  transpose(x: TensorInfo, perm: readonly number[]): Buffer {
    const st = stridesOf(x.shape);
    return this.strided(
      this.buf("transpose", x),
      x.dtype,
      perm.map((p) => x.shape[p]),
      perm.map((p) => st[p]),
      0,
    );
  }

  broadcastTo(x: TensorInfo, shape: Shape): Buffer {
    return this.strided(this.buf("broadcastTo", x), x.dtype, shape, broadcastStrides(x.shape, shape), 0);
  }

  slice(x: TensorInfo, begin: readonly number[], size: readonly number[], step: readonly number[]): Buffer {
    const st = stridesOf(x.shape);
    let off = 0;
    for (let i = 0; i < begin.length; i++) off += begin[i] * st[i];
    return this.strided(
      this.buf("slice", x),
      x.dtype,
      size,
      st.map((s, i) => s * step[i]),
      off,
    );
  }

  pad(x: TensorInfo, outShape: Shape, begin: readonly number[], step: readonly number[]): Buffer {
    const X = this.buf("pad", x);
    const n = sizeOf(outShape);
    if (X.size === 0) return this.fill(x.dtype, n, 0);
    // axes that x fills completely need no test; the others are kept as they are
    const dims: number[] = [],
      b: number[] = [],
      st: number[] = [],
      xs: number[] = [],
      xst: number[] = [];
    const xStrides = stridesOf(x.shape);
    outShape.forEach((dim, d) => {
      if (dim === 1 && x.shape[d] === 1) return;
      dims.push(dim);
      b.push(begin[d]);
      st.push(step[d]);
      xs.push(x.shape[d]);
      xst.push(xStrides[d]);
    });
    if (dims.length === 0) return this.copy(X, x.dtype);
    const R = dims.length;
    return this.run(
      "pad",
      `${R}`,
      n,
      x.dtype,
      () => {
        const names = new Names();
        const d = argNames("d", R),
          bg = argNames("b", R),
          sp = argNames("p", R),
          xd = argNames("x", R),
          xt = argNames("t", R);
        const { code, coords } = splitIndex("i", d, names);
        let body = code + "let ok = 1.0;\nlet src = 0.0;\n";
        coords.forEach((c, k) => {
          const t = names.next("t"),
            q = names.next("k");
          body += `let ${t} = ${c} - ${bg[k]};\n`;
          body += `let ${q} = Math.floor((${t} + 0.5) / ${sp[k]});\n`;
          body += `if (${t} < 0.0 || ${t} - ${q} * ${sp[k]} != 0.0 || ${q} >= ${xd[k]}) { ok = 0.0; }\n`;
          body += `src += ${q} * ${xt[k]};\n`;
        });
        body += "let res = 0.0;\nif (ok > 0.5) { res = a[src]; }\nreturn res;\n";
        return kernelSource(["a", ...d, ...bg, ...sp, ...xd, ...xt], body);
      },
      [X],
      [...dims, ...b, ...st, ...xs, ...xst],
    );
  }

  concat(xs: TensorInfo[], axis: number, outShape: Shape): Buffer {
    const parts = xs.filter((x) => sizeOf(x.shape) > 0);
    const bufs = parts.map((x) => this.buf("concat", x));
    const dtype = xs[0].dtype;
    if (parts.length === 0) return this.fill(dtype, sizeOf(outShape), 0);
    const MAX = 8;
    if (parts.length > MAX) {
      // concatenate groups (texture units per kernel are limited), then the groups
      const groups: TensorInfo[] = [];
      const temps: GpuBuffer[] = [];
      for (let g = 0; g < parts.length; g += MAX) {
        const grp = parts.slice(g, g + MAX);
        const gShape = [...outShape];
        gShape[axis] = grp.reduce((s, x) => s + x.shape[axis], 0);
        const gb = this.concat(grp, axis, gShape) as GpuBuffer;
        temps.push(gb);
        groups.push({ buf: gb, shape: gShape, dtype });
      }
      const out = this.concat(groups, axis, outShape);
      for (const t of temps) this.dispose(t);
      return out;
    }
    const inner = sizeOf(outShape.slice(axis + 1));
    const outer = sizeOf(outShape.slice(0, axis));
    const W = outShape[axis] * inner;
    const widths = parts.map((x) => x.shape[axis] * inner);
    const P = widths.length;
    const ends: number[] = [];
    widths.reduce((acc, w) => (ends.push(acc + w), acc + w), 0);
    return this.run(
      "concat",
      `${P}`,
      outer * W,
      dtype,
      () => {
        const { code, coords } = splitIndex("i", ["W", "W"], new Names());
        const [o, col] = coords;
        const w = argNames("w", P),
          e = argNames("e", P);
        let body = code + "let res = 0.0;\n";
        for (let k = 0; k < P; k++) {
          const start = k === 0 ? "0.0" : e[k - 1];
          const cond = k === P - 1 ? "" : `if (${col} < ${e[k]}) `;
          body += `${k === 0 ? "" : "else "}${cond}{ res = x${k}[${o} * ${w[k]} + ${col} - ${start}]; }\n`;
        }
        return kernelSource([...argNames("x", P), "W", ...w, ...e], body + "return res;\n");
      },
      bufs,
      [W, ...widths, ...ends],
    );
  }

  gather(x: TensorInfo, indices: TensorInfo, axis: number): Buffer {
    const X = this.buf("take", x),
      I = this.buf("take", indices);
    const idx = this.hostOf(indices, "take");
    const A = x.shape[axis];
    for (let j = 0; j < idx.length; j++) checkIndex("take", idx[j], A, x.shape, axis);
    const outer = sizeOf(x.shape.slice(0, axis));
    const inner = sizeOf(x.shape.slice(axis + 1));
    const nI = idx.length;
    return this.run(
      "gather",
      "",
      outer * nI * inner,
      x.dtype,
      () => {
        const { code, coords } = splitIndex("i", ["nI", "nI", "inner"], new Names());
        const [o, j, k] = coords;
        return kernelSource(
          ["a", "ix", "nI", "inner", "A"],
          code + `let t = Math.floor(ix[${j}] + 0.5);\nreturn a[(${o} * A + t) * inner + ${k}];\n`,
        );
      },
      [X, I],
      [nI, inner, A],
    );
  }

  scatterAdd(updates: TensorInfo, indices: TensorInfo, axis: number, outShape: Shape): Buffer {
    const U = this.buf("scatterAdd", updates);
    this.buf("scatterAdd", indices);
    const idx = this.hostOf(indices, "scatterAdd");
    const A = outShape[axis];
    for (let j = 0; j < idx.length; j++) checkIndex("scatterAdd", idx[j], A, outShape, axis);
    const inner = sizeOf(outShape.slice(axis + 1));
    const nI = idx.length;
    const total = sizeOf(outShape);
    // rows of the output as lists of the update rows that land there, in increasing order (CSR on the host)
    const counts = new Int32Array(A);
    for (let j = 0; j < nI; j++) counts[idx[j]]++;
    let maxCount = 0;
    const offs = new Float32Array(A + 1);
    for (let a = 0; a < A; a++) {
      offs[a + 1] = offs[a] + counts[a];
      if (counts[a] > maxCount) maxCount = counts[a];
    }
    if (maxCount === 0 || total === 0) return this.fill(updates.dtype, total, 0);
    const fillPos = Int32Array.from(offs.subarray(0, A));
    const rows = new Float32Array(nI);
    for (let j = 0; j < nI; j++) rows[fillPos[idx[j]]++] = j;
    const O = this.fromArray(offs, "float32") as GpuBuffer;
    const P = this.fromArray(rows, "float32") as GpuBuffer;
    const out = this.run(
      "scatter",
      "",
      total,
      updates.dtype,
      () => {
        const { code, coords } = splitIndex("i", ["A", "A", "inner"], new Names());
        const [o, a, k] = coords;
        return kernelSource(
          ["u", "offs", "rows", "A", "inner", "nI", "maxCount"],
          code +
            `let start = offs[${a}];\nlet cnt = offs[${a} + 1.0] - start;\nlet acc = 0.0;\n` +
            "for (let t = 0; t < maxCount; t++) {\n" +
            `if (t < cnt) { let j = Math.floor(rows[start + t] + 0.5); acc += u[(${o} * nI + j) * inner + ${k}]; }\n` +
            "}\nreturn acc;\n",
        );
      },
      [U, O, P],
      [A, inner, nI, maxCount],
    );
    this.dispose(O);
    this.dispose(P);
    return out;
  }

  // ---------------------------------------------------------------- softmax family

  /** Row maxima of a [rows, cols] matrix (a row of −inf gives 0, as on the cpu backend). */
  private rowMax(x: GpuBuffer, rows: number, cols: number): GpuBuffer {
    return this.run(
      "rowmax",
      "",
      rows,
      "float32",
      () =>
        kernelSource(
          ["x", "cols"],
          "let base = i * cols;\nlet m = x[base];\n" +
            "for (let t = 1; t < cols; t++) { let v = x[base + t]; if (v > m) { m = v; } }\n" +
            "if (m < -3.4028234663852886e38) { m = 0.0; }\nreturn m;\n",
        ),
      [x],
      [cols],
    );
  }

  /** Row sums of exp(x − m) for row maxima m. */
  private rowSumExp(x: GpuBuffer, m: GpuBuffer, rows: number, cols: number): GpuBuffer {
    return this.run(
      "rowsumexp",
      "",
      rows,
      "float32",
      () =>
        kernelSource(
          ["x", "m", "cols"],
          "let base = i * cols;\nlet mx = m[i];\nlet s = 0.0;\n" +
            "for (let t = 0; t < cols; t++) { s += Math.exp(x[base + t] - mx); }\nreturn s;\n",
        ),
      [x, m],
      [cols],
    );
  }

  softmax(x: TensorInfo, log: boolean): Buffer {
    const X = this.buf("softmax", x);
    this.checkDType("softmax", x.dtype);
    const cols = x.shape[x.shape.length - 1] ?? 1;
    const n = X.size;
    if (n === 0) return this.wrap(null, 0, x.dtype, allocArray(x.dtype, 0));
    const rows = n / cols;
    const M = this.rowMax(X, rows, cols);
    const S = this.rowSumExp(X, M, rows, cols);
    const out = this.run(
      "softmax",
      `${log}`,
      n,
      x.dtype,
      () => {
        const { code, coords } = splitIndex("i", ["cols", "cols"], new Names());
        const r = coords[0];
        return kernelSource(
          ["x", "m", "s", "cols"],
          code + (log ? `return (x[i] - m[${r}]) - Math.log(s[${r}]);\n` : `return Math.exp(x[i] - m[${r}]) / s[${r}];\n`),
        );
      },
      [X, M, S],
      [cols],
    );
    this.dispose(M);
    this.dispose(S);
    return out;
  }

  crossEntropy(logits: TensorInfo, targets: TensorInfo, ignoreIndex: number): { loss: Buffer; lse: Buffer } {
    const X = this.buf("crossEntropy", logits),
      T = this.buf("crossEntropy", targets);
    this.checkDType("crossEntropy", logits.dtype);
    // targets were validated by the op; a bad index here only reads a wrong texel, it cannot corrupt memory
    const [rows, cols] = logits.shape;
    if (rows === 0) return { loss: this.fill(logits.dtype, 0, 0), lse: this.fill(logits.dtype, 0, 0) };
    const M = this.rowMax(X, rows, cols);
    const S = this.rowSumExp(X, M, rows, cols);
    // loss = (m − x_t) + log s: no cancellation against a large log-sum-exp
    const loss = this.run(
      "ce",
      "",
      rows,
      logits.dtype,
      () =>
        kernelSource(
          ["x", "tg", "m", "s", "cols", "ignore"],
          "let c = Math.floor(tg[i] + 0.5);\nlet res = 0.0;\n" +
            "if (c != ignore) { res = (m[i] - x[i * cols + c]) + Math.log(s[i]); }\nreturn res;\n",
        ),
      [X, T, M, S],
      [cols, ignoreIndex],
    );
    const lse = this.run("celse", "", rows, logits.dtype, () => kernelSource(["m", "s"], "return m[i] + Math.log(s[i]);\n"), [M, S]);
    this.dispose(M);
    this.dispose(S);
    return { loss, lse };
  }

  crossEntropyBackward(logits: TensorInfo, targets: TensorInfo, lse: TensorInfo, g: TensorInfo, ignoreIndex: number): Buffer {
    const X = this.buf("crossEntropyBackward", logits),
      T = this.buf("crossEntropyBackward", targets);
    const L = this.buf("crossEntropyBackward", lse),
      G = this.buf("crossEntropyBackward", g);
    const [rows, cols] = logits.shape;
    return this.run(
      "ceb",
      "",
      rows * cols,
      logits.dtype,
      () => {
        const { code, coords } = splitIndex("i", ["cols", "cols"], new Names());
        const [r, c] = coords;
        return kernelSource(
          ["x", "tg", "l", "g", "cols", "ignore"],
          code +
            `let t = Math.floor(tg[${r}] + 0.5);\nlet res = 0.0;\n` +
            `if (t != ignore) {\nlet p = Math.exp(x[i] - l[${r}]);\nif (${c} == t) { p = p - 1.0; }\nres = g[${r}] * p;\n}\nreturn res;\n`,
        );
      },
      [X, T, L, G],
      [cols, ignoreIndex],
    );
  }

  // ---------------------------------------------------------------- layer norm, gelu backward

  /** Per-row mean of a [rows, cols] matrix. */
  private rowMean(x: GpuBuffer, rows: number, cols: number, dtype: DType): GpuBuffer {
    return this.run(
      "rowmean",
      "",
      rows,
      dtype,
      () =>
        kernelSource(
          ["x", "cols"],
          // shifted by the row's first value: a large common offset does not swamp the float32 sum
          "let base = i * cols;\nlet x0 = x[base];\nlet s = 0.0;\n" +
            "for (let t = 0; t < cols; t++) { s += x[base + t] - x0; }\nreturn x0 + s / cols;\n",
        ),
      [x],
      [cols],
    );
  }

  layerNorm(x: TensorInfo, gamma: TensorInfo | null, beta: TensorInfo | null, eps: number): { y: Buffer; mean: Buffer; rstd: Buffer } {
    const X = this.buf("layerNorm", x);
    this.checkDType("layerNorm", x.dtype);
    const { rows, cols } = lastAxisRows(x.shape);
    const n = X.size;
    const M = this.rowMean(X, rows, cols, x.dtype);
    // two-pass variance: no cancellation for rows with a large mean
    const R = this.run(
      "lnrstd",
      "",
      rows,
      x.dtype,
      () =>
        kernelSource(
          ["x", "m", "cols", "eps"],
          "let base = i * cols;\nlet mu = m[i];\nlet s = 0.0;\n" +
            "for (let t = 0; t < cols; t++) { let d = x[base + t] - mu; s += d * d; }\nreturn 1.0 / Math.sqrt(s / cols + eps);\n",
        ),
      [X, M],
      [cols, eps],
    );
    const G = gamma ? this.buf("layerNorm", gamma) : null;
    const B = beta ? this.buf("layerNorm", beta) : null;
    const args = ["x", "m", "rs", ...(G ? ["g"] : []), ...(B ? ["b"] : []), "cols"];
    const y = this.run(
      "ln",
      `${!!G}:${!!B}`,
      n,
      x.dtype,
      () => {
        const { code, coords } = splitIndex("i", ["cols", "cols"], new Names());
        const [r, c] = coords;
        return kernelSource(
          args,
          code +
            `let v = (x[i] - m[${r}]) * rs[${r}];\n` +
            (G ? `v = v * g[${c}];\n` : "") +
            (B ? `v = v + b[${c}];\n` : "") +
            "return v;\n",
        );
      },
      [X, M, R, ...(G ? [G] : []), ...(B ? [B] : [])],
      [cols],
    );
    return { y, mean: M, rstd: R };
  }

  layerNormBackward(
    x: TensorInfo,
    gamma: TensorInfo | null,
    mean: TensorInfo,
    rstd: TensorInfo,
    dy: TensorInfo,
    withParams: boolean,
  ): { dx: Buffer; dgamma: Buffer | null; dbeta: Buffer | null } {
    const X = this.buf("layerNormBackward", x),
      D = this.buf("layerNormBackward", dy);
    const M = this.buf("layerNormBackward", mean),
      R = this.buf("layerNormBackward", rstd);
    const G = gamma ? this.buf("layerNormBackward", gamma) : null;
    this.checkDType("layerNormBackward", x.dtype);
    const { rows, cols } = lastAxisRows(x.shape);
    const n = X.size;
    const gy = G ? "d[base + t] * g[t]" : "d[base + t]";
    const rowArgs = ["x", "d", "m", "rs", ...(G ? ["g"] : []), "cols"];
    const rowIn = [X, D, M, R, ...(G ? [G] : [])];
    // per row: mean(ĝ) and mean(ĝ·x̂)
    const A = this.run(
      "lnbA",
      `${!!G}`,
      rows,
      x.dtype,
      () =>
        kernelSource(
          rowArgs,
          "let base = i * cols;\nlet s = 0.0;\n" + `for (let t = 0; t < cols; t++) { s += ${gy}; }\nreturn s / cols;\n`,
        ),
      rowIn,
      [cols],
    );
    const Bm = this.run(
      "lnbB",
      `${!!G}`,
      rows,
      x.dtype,
      () =>
        kernelSource(
          rowArgs,
          "let base = i * cols;\nlet mu = m[i];\nlet r = rs[i];\nlet s = 0.0;\n" +
            `for (let t = 0; t < cols; t++) { s += ${gy} * (x[base + t] - mu) * r; }\nreturn s / cols;\n`,
        ),
      rowIn,
      [cols],
    );
    const dx = this.run(
      "lnbdx",
      `${!!G}`,
      n,
      x.dtype,
      () => {
        const { code, coords } = splitIndex("i", ["cols", "cols"], new Names());
        const [r, c] = coords;
        return kernelSource(
          ["x", "d", "m", "rs", ...(G ? ["g"] : []), "a", "bm", "cols"],
          code +
            `let xh = (x[i] - m[${r}]) * rs[${r}];\nlet gv = d[i]${G ? ` * g[${c}]` : ""};\n` +
            `return rs[${r}] * (gv - a[${r}] - xh * bm[${r}]);\n`,
        );
      },
      [...rowIn, A, Bm],
      [cols],
    );
    this.dispose(A);
    this.dispose(Bm);
    if (!withParams) return { dx, dgamma: null, dbeta: null };
    // column sums over rows
    const dgamma = this.run(
      "lnbdg",
      "",
      cols,
      x.dtype,
      () =>
        kernelSource(
          ["x", "d", "m", "rs", "rows", "cols"],
          "let s = 0.0;\n" + "for (let r = 0; r < rows; r++) { let k = r * cols + i; s += d[k] * (x[k] - m[r]) * rs[r]; }\nreturn s;\n",
        ),
      [X, D, M, R],
      [rows, cols],
    );
    const dbeta = this.run(
      "lnbdb",
      "",
      cols,
      x.dtype,
      () => kernelSource(["d", "rows", "cols"], "let s = 0.0;\n" + "for (let r = 0; r < rows; r++) { s += d[r * cols + i]; }\nreturn s;\n"),
      [D],
      [rows, cols],
    );
    return { dx, dgamma, dbeta };
  }

  geluBackward(x: TensorInfo, dy: TensorInfo): Buffer {
    const X = this.buf("geluBackward", x),
      D = this.buf("geluBackward", dy);
    return this.run(
      "gelub",
      "",
      X.size,
      x.dtype,
      () => kernelSource(["x", "d"], `let v = x[i];\nlet res = 0.0;\n${geluGradBody("v", "res", new Names())}return d[i] * res;\n`),
      [X, D],
    );
  }
}

function checkIndex(op: string, i: number, n: number, shape: Shape, axis: number): void {
  if (!(i >= 0 && i < n)) {
    throw new Error(`${op}: index ${i} is out of range for axis ${axis} of size ${n} (shape ${fmt(shape)}); expected 0 <= index < ${n}`);
  }
}

function availableList(): string {
  const modes: ResolvedGpuMode[] = ["headlessgl", "webgl2", "webgl", "webasm", "cpu"];
  return modes.filter((m) => isGpuModeSupported(m)).join(", ");
}
