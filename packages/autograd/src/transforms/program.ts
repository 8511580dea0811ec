/**
 * Running a traced program. Two executors:
 *
 * - `interpretProgram`: calls the backend's kernel for each node in order (any backend; also when the inputs are
 *   themselves staged, e.g. a jitted function called inside vmap).
 * - `compileProgram` (CPU backend, plain typed-array inputs): elementwise kernels (unary, binary, where, float
 *   casts) whose operands have the output's element count, one element, or broadcast as a row or a column
 *   (`readPattern`) are grouped into clusters, and each
 *   cluster becomes one generated JavaScript loop: intermediates stay in registers, and only values used outside
 *   the cluster are written out — into buffers allocated once per compiled program and reused on every call,
 *   except for the program's outputs, which get fresh buffers. The scalar expressions are the CPU backend's
 *   (backend/cpu/elementwise.ts), and float32 values are rounded after every operation as the backend's stores
 *   round them, so fused results are bit-identical to op-by-op execution. Other kernels run as backend calls.
 */
import type { Backend, BinaryOp, Buffer, TensorInfo, UnaryOp } from "../backend/backend.js";
import { allocArray, type DType } from "../dtype.js";
import type { KernelName } from "./staging.js";
import { TraceBuf, type TraceInterpreter, type TraceNode } from "./trace.js";
import { originalKernel, StagedBuf } from "./staging.js";

/** A compiled program: inputs in, outputs out (plain buffers of the backend). */
export interface Executable {
  run(inputs: readonly Buffer[]): Buffer[];
  /** Number of generated loops and of kernels called per run (for tests and benchmarks). */
  readonly loops: number;
  readonly calls: number;
}

type Env = Buffer[];

function isInfo(a: unknown): a is TensorInfo {
  return a !== null && typeof a === "object" && !Array.isArray(a) && "buf" in (a as object);
}

/** Builds the argument list of a node from the environment. */
function argBuilder(interp: TraceInterpreter, args: readonly unknown[]): (env: Env) => unknown[] {
  const part = (a: unknown): ((env: Env) => unknown) => {
    if (isInfo(a) && a.buf instanceof TraceBuf && a.buf.interp === interp) {
      const id = a.buf.id;
      const { shape, dtype } = a;
      return (env) => ({ buf: env[id], shape, dtype });
    }
    if (Array.isArray(a) && a.some((e) => isInfo(e))) {
      const parts = a.map(part);
      return (env) => parts.map((p) => p(env));
    }
    return () => a;
  };
  const parts = args.map(part);
  return (env) => parts.map((p) => p(env));
}

function bindOut(node: TraceNode, env: Env, r: unknown): void {
  if (node.out instanceof TraceBuf) {
    env[node.out.id] = r;
    return;
  }
  const res = r as Record<string, Buffer | null>;
  for (const [k, v] of Object.entries(node.out)) if (v) env[v.id] = res[k];
}

type OutputRef = { slot: number } | { buf: Buffer };

function outputRefs(interp: TraceInterpreter, outputs: readonly Buffer[]): OutputRef[] {
  return outputs.map((b) => (b instanceof TraceBuf && b.interp === interp ? { slot: b.id } : { buf: b }));
}

/** Runs every node as a call of the backend's (dispatching) kernel. */
export function interpretProgram(
  be: Backend,
  interp: TraceInterpreter,
  inputs: readonly TraceBuf[],
  outputs: readonly Buffer[],
): Executable {
  const steps = interp.nodes.map((n) => ({ node: n, build: argBuilder(interp, n.args) }));
  const outs = outputRefs(interp, outputs);
  return {
    loops: 0,
    calls: steps.length,
    run(bufs) {
      const env: Env = new Array(interp.slots);
      inputs.forEach((t, i) => (env[t.id] = bufs[i]));
      for (const { node, build } of steps) {
        const f = (be as unknown as Record<string, (...a: unknown[]) => unknown>)[node.method];
        bindOut(node, env, f.apply(be, build(env)));
      }
      return outs.map((o) => ("slot" in o ? env[o.slot] : o.buf));
    },
  };
}

// ---------------------------------------------------------------- fusion (CPU)

/** The CPU backend's scalar expressions (backend/cpu/elementwise.ts), over operand expressions. */
const UNARY: Partial<Record<UnaryOp, (x: string) => string>> = {
  neg: (x) => `-${x}`,
  exp: (x) => `Math.exp(${x})`,
  log: (x) => `Math.log(${x})`,
  log1p: (x) => `Math.log1p(${x})`,
  sqrt: (x) => `Math.sqrt(${x})`,
  rsqrt: (x) => `1 / Math.sqrt(${x})`,
  abs: (x) => `Math.abs(${x})`,
  sin: (x) => `Math.sin(${x})`,
  cos: (x) => `Math.cos(${x})`,
  tanh: (x) => `Math.tanh(${x})`,
  sigmoid: (x) => `1 / (1 + Math.exp(-${x}))`,
  relu: (x) => `(${x} > 0 ? ${x} : 0)`,
  silu: (x) => `${x} / (1 + Math.exp(-${x}))`,
  sign: (x) => `(${x} > 0 ? 1 : ${x} < 0 ? -1 : 0)`,
  square: (x) => `${x} * ${x}`,
  reciprocal: (x) => `1 / ${x}`,
  step: (x) => `(${x} > 0 ? 1 : 0)`,
  floor: (x) => `Math.floor(${x})`,
  isfinite: (x) => `(Number.isFinite(${x}) ? 1 : 0)`,
};

const BINARY: Record<BinaryOp, (x: string, y: string) => string> = {
  add: (x, y) => `${x} + ${y}`,
  sub: (x, y) => `${x} - ${y}`,
  mul: (x, y) => `${x} * ${y}`,
  div: (x, y) => `${x} / ${y}`,
  pow: (x, y) => `Math.pow(${x}, ${y})`,
  maximum: (x, y) => `Math.max(${x}, ${y})`,
  minimum: (x, y) => `Math.min(${x}, ${y})`,
  eq: (x, y) => `(${x} === ${y} ? 1 : 0)`,
  ne: (x, y) => `(${x} !== ${y} ? 1 : 0)`,
  lt: (x, y) => `(${x} < ${y} ? 1 : 0)`,
  le: (x, y) => `(${x} <= ${y} ? 1 : 0)`,
  gt: (x, y) => `(${x} > ${y} ? 1 : 0)`,
  ge: (x, y) => `(${x} >= ${y} ? 1 : 0)`,
};

const FLOAT = (d: DType) => d === "float32" || d === "float64";

/** The tensor operands of an elementwise node. */
function operands(node: TraceNode): TensorInfo[] {
  switch (node.method) {
    case "unary":
      return [node.args[1] as TensorInfo];
    case "cast":
      return [node.args[0] as TensorInfo];
    case "binary":
      return [node.args[1] as TensorInfo, node.args[2] as TensorInfo];
    case "where":
      return [node.args[0] as TensorInfo, node.args[1] as TensorInfo, node.args[2] as TensorInfo];
    default:
      return [];
  }
}

/**
 * How a loop over the output's flat index i reads an operand: every element (i), one element, a trailing block
 * repeated (i mod s: a row broadcast down leading axes), or a leading block repeated (⌊i / r⌋: a column
 * broadcast along trailing axes); null for other broadcasts (the node then runs as a kernel call).
 */
type Pattern = { kind: "full" } | { kind: "scalar" } | { kind: "mod"; s: number } | { kind: "div"; r: number };
function readPattern(shape: readonly number[], out: readonly number[]): Pattern | null {
  const size = shape.reduce((a, b) => a * b, 1);
  const total = out.reduce((a, b) => a * b, 1);
  if (size === total)
    return shape.length <= out.length && shape.every((v, i) => v === out[out.length - shape.length + i]) ? { kind: "full" } : null;
  if (size === 1) return { kind: "scalar" };
  if (shape.length > out.length) return null;
  const x = [...new Array<number>(out.length - shape.length).fill(1), ...shape];
  // a trailing block: leading ones, then the output's own sizes
  let d = 0;
  while (d < x.length && x[d] === 1) d++;
  if (x.slice(d).every((v, i) => v === out[d + i])) return { kind: "mod", s: size };
  // a leading block: the output's own sizes, then ones
  let e = x.length;
  while (e > 0 && x[e - 1] === 1) e--;
  if (x.slice(0, e).every((v, i) => v === out[i])) return { kind: "div", r: total / size };
  return null;
}

/** Whether a node can join a fused loop: an elementwise kernel with a float (or comparison mask) result whose operands are full-size or one element. */
function fusable(node: TraceNode): boolean {
  const d = node.dtype;
  if (!d) return false;
  if (node.method === "unary") {
    const op = node.args[0] as UnaryOp;
    if (!UNARY[op] || !(FLOAT(d) || (op === "isfinite" && d === "bool"))) return false;
  } else if (node.method === "binary") {
    const op = node.args[0] as BinaryOp;
    if (!(FLOAT(d) || (d === "bool" && /^(eq|ne|lt|le|gt|ge)$/.test(op)))) return false;
  } else if (node.method === "cast" || node.method === "where") {
    if (!FLOAT(d)) return false;
  } else return false;
  for (const x of operands(node)) {
    if (x.buf instanceof StagedBuf && !(x.buf instanceof TraceBuf)) return false;
    if (readPattern(x.shape, node.shape!) === null) return false;
  }
  return true;
}

interface Cluster {
  size: number;
  members: TraceNode[];
  produced: Set<number>;
}

type Step =
  | { kind: "call"; node: TraceNode; build: (env: Env) => unknown[]; kernel: (...a: unknown[]) => unknown }
  | { kind: "loop"; run: (env: Env) => void };

/**
 * Compiles a program for the CPU backend: fused loops for clusters of elementwise nodes, kernel calls for the
 * rest. Returns null when the program's constants are not all plain buffers (then it is interpreted).
 */
export function compileProgram(be: Backend, interp: TraceInterpreter, inputs: readonly TraceBuf[], outputs: readonly Buffer[]): Executable {
  const outs = outputRefs(interp, outputs);
  const outputSlots = new Set(outs.flatMap((o) => ("slot" in o ? [o.slot] : [])));
  const own = (b: unknown): b is TraceBuf => b instanceof TraceBuf && b.interp === interp;
  // consumers of each value, by node index
  const usedBy = new Map<number, Set<number>>();
  interp.nodes.forEach((n, i) => {
    const see = (a: unknown) => {
      if (isInfo(a) && own(a.buf)) {
        let s = usedBy.get(a.buf.id);
        if (!s) usedBy.set(a.buf.id, (s = new Set()));
        s.add(i);
      }
    };
    for (const a of n.args) (Array.isArray(a) ? a : [a]).forEach(see);
  });
  // schedule: clusters are emitted when something outside them needs their values (or at the end)
  const schedule: (TraceNode | Cluster)[] = [];
  const aliases = new Map<number, Alias>();
  const open = new Map<number, Cluster>();
  const producer = new Map<number, Cluster>();
  const close = (c: Cluster) => {
    if (open.get(c.size) !== c) return;
    open.delete(c.size);
    schedule.push(c);
  };
  for (const node of interp.nodes) {
    const ins = node.args.flatMap((a) => (Array.isArray(a) ? a : [a])).filter((a): a is TensorInfo => isInfo(a) && own(a.buf));
    if (fusable(node)) {
      for (const x of ins) {
        const c = producer.get((x.buf as TraceBuf).id);
        if (c && c.size !== node.size) close(c);
      }
      let c = open.get(node.size);
      if (!c) open.set(node.size, (c = { size: node.size, members: [], produced: new Set() }));
      c.members.push(node);
      const id = (node.out as TraceBuf).id;
      c.produced.add(id);
      producer.set(id, c);
    } else {
      for (const x of ins) {
        const c = producer.get((x.buf as TraceBuf).id);
        if (c) close(c);
      }
      schedule.push(node);
    }
  }
  for (const c of [...open.values()]) close(c);
  const nodeIndex = new Map(interp.nodes.map((n, i) => [n, i]));
  // contiguous slices read by loops only are not materialised: the loops read their source at an offset
  for (const n of interp.nodes) {
    if (n.method !== "slice") continue;
    const off = contiguousSliceOffset(n);
    const src = n.args[0] as TensorInfo;
    if (off === null || (src.buf instanceof StagedBuf && !own(src.buf))) continue;
    const id = (n.out as TraceBuf).id;
    const users = [...(usedBy.get(id) ?? [])].map((u) => interp.nodes[u]);
    const inPlace = (u: TraceNode) => fusable(u) || (u.method === "concat" && isBlockConcat(u));
    if (outputSlots.has(id) || users.length === 0 || !users.every(inPlace)) continue;
    aliases.set(id, { src, offset: off });
  }
  let loops = 0,
    calls = 0;
  const steps: Step[] = schedule.flatMap((s): Step[] => {
    if ("method" in s && s.method === "slice" && aliases.has((s.out as TraceBuf).id)) return [];
    if ("method" in s && s.method === "concat") {
      const block = isBlockConcat(s) ? blockConcat(s, own, aliases) : null;
      if (block) {
        calls++;
        return [{ kind: "loop", run: block }];
      }
    }
    if ("method" in s) {
      calls++;
      const kernel = originalKernel(be, s.method as KernelName);
      if (!kernel) throw new Error(`jit: backend ${be.name} has no kernel '${s.method}'`);
      return [{ kind: "call", node: s, build: argBuilder(interp, s.args), kernel }];
    }
    loops++;
    const memberIdx = new Set(s.members.map((m) => nodeIndex.get(m)!));
    const written = [...s.produced].filter((id) => outputSlots.has(id) || [...(usedBy.get(id) ?? [])].some((u) => !memberIdx.has(u)));
    return [{ kind: "loop", run: loopStep(s, written, outputSlots, own, aliases) }];
  });
  return {
    loops,
    calls,
    run(bufs) {
      const env: Env = new Array(interp.slots);
      inputs.forEach((t, i) => (env[t.id] = bufs[i]));
      for (const st of steps) {
        if (st.kind === "loop") st.run(env);
        else bindOut(st.node, env, st.kernel.apply(be, st.build(env)));
      }
      return outs.map((o) => ("slot" in o ? env[o.slot] : o.buf));
    },
  };
}

/** A slice read in place: element i of the slice is element offset + i of `src`. */
interface Alias {
  src: TensorInfo;
  offset: number;
}

/** The flat offset of a slice that is one contiguous block of its input (unit steps; full trailing axes), else null. */
function contiguousSliceOffset(n: TraceNode): number | null {
  const [x, begin, size, step] = n.args as [TensorInfo, number[], number[], number[]];
  const shape = x.shape;
  let d = 0;
  while (d < shape.length && size[d] === 1) d++;
  // axes before d have size 1; axis d may be partial; axes after d must be whole
  for (let k = d + 1; k < shape.length; k++) if (begin[k] !== 0 || size[k] !== shape[k]) return null;
  if (d < shape.length && step[d] !== 1) return null;
  let off = 0,
    stride = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    off += begin[k] * stride;
    stride *= shape[k];
  }
  return off;
}

/** Whether a concat's pieces are contiguous blocks of the output (the axes before the concat axis have size 1) of plain buffers. */
function isBlockConcat(n: TraceNode): boolean {
  const [xs, axis, outShape] = n.args as [TensorInfo[], number, number[]];
  return outShape.slice(0, axis).every((d) => d === 1) && xs.every((x) => !(x.buf instanceof StagedBuf) || x.buf instanceof TraceBuf);
}

/** A block concat as copies of its pieces (aliased slices are copied from their source). */
function blockConcat(n: TraceNode, own: (b: unknown) => b is TraceBuf, aliases: Map<number, Alias>): (env: Env) => void {
  const [xs, , outShape] = n.args as [TensorInfo[], number, number[]];
  const dtype = xs[0].dtype;
  const pieces = xs.map((x) => {
    const a = own(x.buf) ? aliases.get(x.buf.id) : undefined;
    const len = x.shape.reduce((p, q) => p * q, 1);
    return a ? { ref: a.src, offset: a.offset, len } : { ref: x, offset: 0, len };
  });
  const size = outShape.reduce((a, b) => a * b, 1);
  const id = (n.out as TraceBuf).id;
  return (env) => {
    const out = allocArray(dtype, size) as Float64Array;
    let off = 0;
    for (const p of pieces) {
      const b = (own(p.ref.buf) ? env[p.ref.buf.id] : p.ref.buf) as Float64Array;
      if (p.len === 1) out[off] = b[p.offset];
      else out.set(p.offset === 0 && b.length === p.len ? b : b.subarray(p.offset, p.offset + p.len), off);
      off += p.len;
    }
    env[id] = out;
  };
}

/** Generates the loop of a cluster and returns the step running it. */
function loopStep(
  c: Cluster,
  written: number[],
  outputSlots: Set<number>,
  own: (b: unknown) => b is TraceBuf,
  aliases: Map<number, Alias>,
): (env: Env) => void {
  const external: { ref: TensorInfo; key: string }[] = [];
  const extIndex = new Map<unknown, number>();
  const head: string[] = [];
  const body: string[] = [];
  const operand = (x0: TensorInfo, out: readonly number[]): string => {
    if (own(x0.buf) && c.produced.has(x0.buf.id)) return `v${x0.buf.id}`;
    let p = readPattern(x0.shape, out)!;
    if (p.kind === "scalar" && c.size === 1) p = { kind: "full" };
    const alias = own(x0.buf) ? aliases.get(x0.buf.id) : undefined;
    const x = alias ? alias.src : x0;
    const offset = alias ? alias.offset : 0;
    const how = p.kind === "mod" ? `m${p.s}` : p.kind === "div" ? `d${p.r}` : p.kind;
    const key = `${own(x.buf) ? `s${x.buf.id}` : "c"}:${offset}:${how}`;
    let k = own(x.buf) ? extIndex.get(key) : external.findIndex((e) => e.ref.buf === x.buf && e.key === key);
    if (k === undefined || k < 0) {
      k = external.length;
      if (own(x.buf)) extIndex.set(key, k);
      external.push({ ref: x, key });
      if (p.kind === "scalar") head.push(`const e${k} = I${k}[${offset}];`);
      else if (p.kind === "full") body.push(`const e${k} = I${k}[i + ${offset}];`);
      else if (p.kind === "mod") body.push(`const e${k} = I${k}[${offset} + (i % ${p.s})];`);
      else body.push(`const e${k} = I${k}[${offset} + ((i / ${p.r}) | 0)];`);
    }
    return `e${k}`;
  };
  const lines: string[] = [];
  for (const n of c.members) {
    const id = (n.out as TraceBuf).id;
    let expr: string;
    const sh = n.shape!;
    const opd = (x: TensorInfo) => operand(x, sh);
    if (n.method === "unary") expr = UNARY[n.args[0] as UnaryOp]!(opd(n.args[1] as TensorInfo));
    else if (n.method === "binary") expr = BINARY[n.args[0] as BinaryOp](opd(n.args[1] as TensorInfo), opd(n.args[2] as TensorInfo));
    else if (n.method === "where") {
      const [cond, a, b] = operands(n);
      expr = `(${opd(cond)} !== 0 ? ${opd(a)} : ${opd(b)})`;
    } else {
      const src = opd(n.args[0] as TensorInfo);
      expr = (n.args[0] as TensorInfo).dtype === "bool" ? `(${src} !== 0 ? 1 : 0)` : src;
    }
    lines.push(`const v${id} = ${n.dtype === "float32" ? `Math.fround(${expr})` : expr};`);
  }
  const stores = written.map((id, k) => `O${k}[i] = v${id};`);
  const params = [...external.map((_, k) => `I${k}`), ...written.map((_, k) => `O${k}`), "n"];
  const src = `${head.join(" ")} for (let i = 0; i < n; i++) { ${body.join(" ")} ${lines.join(" ")} ${stores.join(" ")} }`;
  const fn = new Function(...params, src) as (...a: unknown[]) => void;
  const dtypes = written.map((id) => c.members.find((m) => (m.out as TraceBuf).id === id)!.dtype!);
  // intermediates read only by later steps of this program get a buffer allocated once and reused
  const persistent = written.map((id, k) => (outputSlots.has(id) ? null : allocArray(dtypes[k], c.size)));
  const size = c.size;
  const ext = external.map((e) => e.ref);
  return (env) => {
    const args: unknown[] = [];
    for (const x of ext) args.push(own(x.buf) ? env[x.buf.id] : x.buf);
    const outBufs = written.map((_, k) => persistent[k] ?? allocArray(dtypes[k], size));
    fn(...args, ...outBufs, size);
    written.forEach((id, k) => (env[id] = outBufs[k]));
  };
}
