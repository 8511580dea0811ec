import { isFloat } from "../dtype.js";
import { shapesEqual } from "../shape.js";
import { Tensor, type GradNode, type OutputGroup } from "../tensor.js";

/**
 * The autodiff engine.
 *
 * Reverse mode records a graph of `GradNode`s while at least one reverse level (a `vjp`/`grad` call) is active
 * and an op has a tracked input. Node ids increase with creation, so descending id order is a reverse
 * topological order: the backward pass is a max-heap walk that only visits nodes created after the
 * transform's inputs. VJP rules are written with ordinary ops, so when an outer level is active the backward
 * pass is itself recorded (grad-of-grad). Forward mode attaches tangents per level to tensors (tagged dual
 * numbers); the JVP rule of level L runs with only the levels outside L active, which gives nested forward
 * mode and forward-over-reverse without perturbation confusion.
 *
 * All mutable state (node counter, open levels, no-grad depth, the tracking probe) lives in one `TraceState`
 * object. Ops see a small API: `record` (rules written with ops), `recordComposite` (rules derived from the
 * same value written with ops: how fused kernels get rules of every order), `pullback` / `pushforward` (the
 * derivative of a composite, for rules that are such derivatives), `gradientRequested`, `tracked` and `detached`.
 * The transforms (`vjp`, `jvp`, `checkpoint`, `customVjp`) use the level functions below.
 */

/** An op as the engine sees it: a forward computing the output, and rules written with differentiable ops. */
export interface OpSpec {
  name: string;
  /** Cotangent of each input (null for non-differentiable inputs). */
  vjp?: (g: Tensor) => (Tensor | null)[];
  /** Output tangent given input tangents (null = zero tangent). */
  jvp?: (tangents: (Tensor | null)[]) => Tensor | null;
}

/** The engine's mutable state: one object, changed only through its methods. */
class TraceState {
  private nextNodeId = 1;
  private levelCounter = 0;
  private readonly reverseLevels: number[] = [];
  private readonly forwardLevels: number[] = [];
  private noGradDepth = 0;
  private probe: { touched: boolean } | null = null;

  /** Whether ops currently record reverse-mode nodes. */
  recording(): boolean {
    return this.reverseLevels.length > 0 && this.noGradDepth === 0;
  }

  peekNodeId(): number {
    return this.nextNodeId;
  }

  takeNodeId(): number {
    return this.nextNodeId++;
  }

  /** Marks the innermost probe (if any) as having seen a tracked tensor. */
  touch(): void {
    if (this.probe) this.probe.touched = true;
  }

  openReverse(): { level: number; minId: number } {
    const level = ++this.levelCounter;
    this.reverseLevels.push(level);
    return { level, minId: this.nextNodeId };
  }

  closeReverse(level: number): void {
    const top = this.reverseLevels.pop();
    if (top !== level) throw new Error("autodiff: reverse levels closed out of order");
  }

  openForward(): number {
    const level = ++this.levelCounter;
    this.forwardLevels.push(level);
    return level;
  }

  closeForward(level: number): void {
    const top = this.forwardLevels.pop();
    if (top !== level) throw new Error("autodiff: forward levels closed out of order");
  }

  /** Open forward levels, outermost first (a copy). */
  openForwardLevels(): number[] {
    return [...this.forwardLevels];
  }

  /** Runs `fn` with only the forward levels outside `level` open (where a JVP rule of `level` runs). */
  outsideForward<T>(level: number, fn: () => T): T {
    const at = this.forwardLevels.indexOf(level);
    const saved = this.forwardLevels.splice(at);
    try {
      return fn();
    } finally {
      this.forwardLevels.push(...saved);
    }
  }

  withNoGrad<T>(fn: () => T): T {
    this.noGradDepth++;
    try {
      return fn();
    } finally {
      this.noGradDepth--;
    }
  }

  /** Runs `fn` with reverse recording forced on in a fresh level (checkpoint recomputation inside a backward pass). */
  withRecording<T>(fn: () => T): T {
    const savedNoGrad = this.noGradDepth;
    this.noGradDepth = 0;
    const { level } = this.openReverse();
    try {
      return fn();
    } finally {
      this.closeReverse(level);
      this.noGradDepth = savedNoGrad;
    }
  }

  withProbe<T>(fn: () => T): { value: T; touched: boolean } {
    const saved = this.probe;
    const p = { touched: false };
    this.probe = p;
    try {
      return { value: fn(), touched: p.touched };
    } finally {
      this.probe = saved;
      if (saved && p.touched) saved.touched = true;
    }
  }
}

const state = new TraceState();

// ---------------------------------------------------------------- the API ops use

/** Whether a tensor takes part in the current reverse pass (has a node). */
export function tracked(x: Tensor): boolean {
  return x._node !== undefined;
}

/**
 * Whether a reverse pass is recording through any of `inputs`: an op may then choose a forward that also
 * produces what its backward needs (a fused loss returning its gradients in the same pass).
 */
export function gradientRequested(...inputs: Tensor[]): boolean {
  return state.recording() && inputs.some(tracked);
}

/** Tangent of `x` at a forward level, if any. */
export function tangentOf(x: Tensor, level: number): Tensor | null {
  return x._tangents?.get(level) ?? null;
}

/** Sets the tangent of `x` at a level. */
export function setTangent(x: Tensor, level: number, t: Tensor): void {
  if (!x._tangents) x._tangents = new Map();
  x._tangents.set(level, t);
}

/**
 * Records autodiff information for `out = op(inputs)`. Kernels have already produced `out`; `spec` supplies
 * the rules, closed over the inputs and output.
 */
export function record(out: Tensor, inputs: readonly Tensor[], spec: OpSpec): Tensor {
  if (inputs.some(tracked)) {
    state.touch();
    if (spec.vjp && state.recording()) {
      out._node = { id: state.takeNodeId(), name: spec.name, parents: inputs, vjp: spec.vjp };
    }
  }
  if (spec.jvp) {
    const levels = state.openForwardLevels();
    for (let li = levels.length - 1; li >= 0; li--) {
      const level = levels[li];
      const ts = inputs.map((x) => tangentOf(x, level));
      if (!ts.some((t) => t !== null)) continue;
      const t = state.outsideForward(level, () => spec.jvp!(ts));
      if (t) setTangent(out, level, t);
    }
  }
  return out;
}

/**
 * Records `out` — computed by a kernel — as the value of `f(...inputs)`, where `f` computes the same value with
 * ordinary differentiable ops: the rules differentiate `f` (a nested reverse pass for the VJP, a nested forward
 * level for the JVP), so derivatives of every order follow from `f`'s ops. Used for the outputs of fused
 * backward kernels, whose own derivatives are rarely needed.
 */
export function recordComposite(out: Tensor, inputs: readonly Tensor[], name: string, f: (...xs: Tensor[]) => Tensor): Tensor {
  return record(out, inputs, {
    name,
    vjp: (u) => cotangentsOf(f, inputs, u),
    jvp: (ts) => pushforward(f, inputs, ts),
  });
}

/**
 * Cotangents of `inputs` for the cotangent `u` of `f(...inputs)` (zeros where none flows), computed by a nested
 * reverse pass; recorded at the enclosing levels like any ops, so it can itself be differentiated. For rules that
 * are gradients of a composite.
 */
export function pullback(f: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[], u: Tensor): Tensor[] {
  return cotangentsOf(f, inputs, u).map((c, i) => c ?? zerosOf(inputs[i]));
}

function zerosOf(x: Tensor): Tensor {
  return new Tensor(x._backend.zeros(x.dtype, x.size), x.shape, x.dtype, x._backend);
}

/** Cotangents of `inputs` for the cotangent `u` of `f(...inputs)` (null where none flows). */
function cotangentsOf(f: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[], u: Tensor): (Tensor | null)[] {
  const { level, minId } = state.openReverse();
  let leaves: Tensor[];
  let out: Tensor;
  try {
    leaves = inputs.map((x) => leafOf(x));
    out = f(...leaves);
  } finally {
    state.closeReverse(level);
  }
  const keep = new Set<number>();
  for (const l of leaves) if (l._node) keep.add(l._node.id);
  const grads = backward([{ tensor: out, ct: u }], minId, keep);
  return leaves.map((l) => (l._node ? (grads.get(l._node.id) ?? null) : null));
}

/**
 * Tangent of `f(...inputs)` for input tangents `ts` (null = zero) by a nested forward level; like `pullback`,
 * differentiable again. For JVP rules written as the derivative of a composite.
 */
export function pushforward(f: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[], ts: readonly (Tensor | null)[]): Tensor | null {
  const level = state.openForward();
  let out: Tensor;
  try {
    const xs = inputs.map((x, i) => {
      const w = identity(x);
      const t = ts[i];
      if (t && isFloat(x.dtype)) setTangent(w, level, t);
      return w;
    });
    out = f(...xs);
  } finally {
    state.closeForward(level);
  }
  return tangentOf(out, level);
}

/** Makes a tensor sharing `x`'s storage with no autodiff information. */
export function detached(x: Tensor): Tensor {
  return new Tensor(x._buf, x.shape, x.dtype, x._backend);
}

// ---------------------------------------------------------------- the engine's own ops

/** The same tensor seen through an identity op (records autodiff information when its input is tracked). */
export function identity(x: Tensor): Tensor {
  return record(detached(x), [x], { name: "identity", vjp: (g) => [g], jvp: ([t]) => t });
}

/** `x` viewed with another shape of the same size (used to line up cotangents of equal size). */
function view(x: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(x.shape, shape)) return x;
  const y = new Tensor(x._buf, shape, x.dtype, x._backend);
  return record(y, [x], { name: "reshape", vjp: (g) => [view(g, x.shape)], jvp: ([t]) => (t ? view(t, shape) : null) });
}

/** a + b for two cotangents of one dtype and size (recorded, so accumulation is differentiable again). */
function addCotangents(a: Tensor, b: Tensor): Tensor {
  if (a._backend !== b._backend)
    throw new Error(
      `autodiff: cotangents ${a} and ${b} live on different backends (${a._backend.name} and ${b._backend.name}); expected one backend`,
    );
  const bb = view(b, a.shape);
  const y = new Tensor(a._backend.binary("add", a.info, bb.info, a.shape, a.dtype), a.shape, a.dtype, a._backend);
  return record(y, [a, bb], {
    name: "add",
    vjp: (g) => [g, g],
    jvp: ([ta, tb]) => (ta && tb ? addCotangents(ta, tb) : (ta ?? tb)),
  });
}

// ---------------------------------------------------------------- the API transforms use

/** Runs `fn` without recording reverse-mode nodes (forward-mode tangents still propagate). */
export function noGrad<T>(fn: () => T): T {
  return state.withNoGrad(fn);
}

/** Whether ops currently record reverse-mode nodes. */
export function isRecording(): boolean {
  return state.recording();
}

/** The id the next node will get (used to bound a backward walk). */
export function peekNodeId(): number {
  return state.peekNodeId();
}

/** Opens a reverse level. Returns the bound below which the backward walk stops. */
export function pushReverse(): { level: number; minId: number } {
  return state.openReverse();
}

/** Closes the innermost reverse level. */
export function popReverse(level: number): void {
  state.closeReverse(level);
}

/** Opens a forward level. */
export function pushForward(): number {
  return state.openForward();
}

/** Closes the innermost forward level. */
export function popForward(level: number): void {
  state.closeForward(level);
}

/** Whether `x` carries a tangent of an open forward level. */
export function hasActiveTangent(x: Tensor): boolean {
  if (!x._tangents) return false;
  for (const l of state.openForwardLevels()) if (x._tangents.has(l)) return true;
  return false;
}

/** A fresh tracked leaf of the current reverse level sharing `x`'s storage (and tangents); cotangents flow on to `x`. */
export function leafOf(x: Tensor): Tensor {
  const l = detached(x);
  if (x._tangents) l._tangents = new Map(x._tangents);
  if (isFloat(x.dtype)) makeLeaf(l, x);
  return l;
}

/** Marks `leaf` as a tracked leaf of the current reverse level whose cotangent flows to `source`. */
export function makeLeaf(leaf: Tensor, source: Tensor): void {
  leaf._node = {
    id: state.takeNodeId(),
    name: "leaf",
    parents: source._node ? [source] : [],
    vjp: (g) => (source._node ? [g] : []),
  };
}

/** Attaches one group node per output; the group's rule runs once for all outputs. */
export function makeGroupNodes(name: string, outputs: Tensor[], run: OutputGroup["run"]): void {
  const group: OutputGroup = { members: outputs, run };
  for (const o of outputs) {
    o._node = { id: state.takeNodeId(), name, parents: [], vjp: () => [], group };
  }
}

/** Attaches checkpoint nodes to outputs computed without recording. */
export function makeCheckpointNodes(outputs: Tensor[], recompute: () => Tensor[]): void {
  makeGroupNodes("checkpoint", outputs, (cts) => {
    const fresh = state.withRecording(recompute);
    const out: { tensor: Tensor; ct: Tensor }[] = [];
    fresh.forEach((f, i) => {
      const c = cts[i];
      if (c) out.push({ tensor: f, ct: c });
    });
    return out;
  });
}

/** Runs `fn` with a probe telling whether any tracked tensor was used. */
export function probeTracked<T>(fn: () => T): { value: T; touched: boolean } {
  return state.withProbe(fn);
}

/** A hook the transforms that stage values (vmap) use to fit a cotangent to the tensor it reaches. */
let cotangentAdapter: ((t: Tensor, ct: Tensor) => Tensor) | null = null;

/** Installs the cotangent hook (see `backward`): `adapt(t, ct)` returns the cotangent `t` receives. */
export function setCotangentAdapter(adapt: (t: Tensor, ct: Tensor) => Tensor): void {
  cotangentAdapter = adapt;
}

/**
 * The backward walk: propagates cotangents from `roots` through nodes with id >= minId, and returns the
 * accumulated cotangent of every visited node by id. Cotangents reaching one tensor twice are summed with a
 * recorded add, so the walk is itself differentiable when an outer level is active.
 */
export function backward(roots: readonly { tensor: Tensor; ct: Tensor }[], minId: number, keep: ReadonlySet<number>): Map<number, Tensor> {
  const grads = new Map<number, Tensor>();
  const nodes = new Map<number, GradNode>();
  const heap: number[] = [];
  const push = (id: number) => {
    heap.push(id);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p] >= heap[i]) break;
      [heap[p], heap[i]] = [heap[i], heap[p]];
      i = p;
    }
  };
  const pop = (): number => {
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < heap.length && heap[l] > heap[m]) m = l;
        if (r < heap.length && heap[r] > heap[m]) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i], heap[m]];
        i = m;
      }
    }
    return top;
  };
  const accumulate = (t: Tensor, c: Tensor) => {
    const node = t._node;
    if (!node || node.id < minId) return;
    const ct = cotangentAdapter ? cotangentAdapter(t, c) : c;
    if (ct.dtype !== t.dtype || ct.size !== t.size) {
      throw new Error(`autodiff: rule of '${node.name}' produced a cotangent ${ct} for a tensor ${t}; expected matching dtype and shape`);
    }
    const prev = grads.get(node.id);
    if (prev) grads.set(node.id, addCotangents(prev, ct));
    else {
      grads.set(node.id, ct);
      nodes.set(node.id, node);
      push(node.id);
    }
  };
  const handled = new Set<number>();
  for (const r of roots) accumulate(r.tensor, r.ct);
  while (heap.length > 0) {
    const id = pop();
    if (handled.has(id)) continue;
    const node = nodes.get(id)!;
    const g = grads.get(id)!;
    if (node.group) {
      // All members were created together after every consumer's inputs, so their cotangents are complete now.
      const group = node.group;
      const cts = group.members.map((m) => (m._node ? grads.get(m._node.id) : undefined));
      for (const m of group.members) {
        if (!m._node) continue;
        if (m._node.id !== id) handled.add(m._node.id);
        if (!keep.has(m._node.id)) grads.delete(m._node.id);
      }
      for (const { tensor, ct } of group.run(cts)) accumulate(tensor, ct);
      continue;
    }
    const pg = node.vjp(g);
    for (let i = 0; i < node.parents.length; i++) {
      const c = pg[i];
      if (c) accumulate(node.parents[i], c);
    }
    if (!keep.has(id)) grads.delete(id);
  }
  return grads;
}
