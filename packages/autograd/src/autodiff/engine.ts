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
 */

/** An op as the engine sees it: a forward computing the output, and rules written with differentiable ops. */
export interface OpSpec {
  name: string;
  /** Cotangent of each input (null for non-differentiable inputs). */
  vjp?: (g: Tensor) => (Tensor | null)[];
  /** Output tangent given input tangents (null = zero tangent). */
  jvp?: (tangents: (Tensor | null)[]) => Tensor | null;
}

let nextNodeId = 1;
let levelCounter = 0;
const reverseLevels: number[] = [];
const forwardLevels: number[] = [];
let noGradDepth = 0;
let probe: { touched: boolean } | null = null;

/** Internal: whether ops currently record reverse-mode nodes. */
export function isRecording(): boolean {
  return reverseLevels.length > 0 && noGradDepth === 0;
}

/** Internal: the id the next node will get (used to bound a backward walk). */
export function peekNodeId(): number {
  return nextNodeId;
}

/** Internal: tangent of `x` at a forward level, if any. */
export function tangentOf(x: Tensor, level: number): Tensor | null {
  return x._tangents?.get(level) ?? null;
}

/** Internal: sets the tangent of `x` at a level. */
export function setTangent(x: Tensor, level: number, t: Tensor): void {
  if (!x._tangents) x._tangents = new Map();
  x._tangents.set(level, t);
}

/**
 * Records autodiff information for `out = op(inputs)`. Kernels have already produced `out`; `spec` supplies
 * the rules, closed over the inputs and output.
 */
export function record(out: Tensor, inputs: readonly Tensor[], spec: OpSpec): Tensor {
  let tracked = false;
  for (const x of inputs) if (x._node) { tracked = true; break; }
  if (tracked) {
    if (probe) probe.touched = true;
    if (spec.vjp && isRecording()) {
      out._node = { id: nextNodeId++, name: spec.name, parents: inputs, vjp: spec.vjp };
    }
  }
  if (forwardLevels.length > 0 && spec.jvp) {
    for (let li = forwardLevels.length - 1; li >= 0; li--) {
      const level = forwardLevels[li];
      let any = false;
      const ts = inputs.map((x) => {
        const t = tangentOf(x, level);
        if (t) any = true;
        return t;
      });
      if (!any) continue;
      const saved = forwardLevels.splice(li);
      try {
        const t = spec.jvp(ts);
        if (t) setTangent(out, level, t);
      } finally {
        forwardLevels.push(...saved);
      }
    }
  }
  return out;
}

/** Runs `fn` without recording reverse-mode nodes (forward-mode tangents still propagate). */
export function noGrad<T>(fn: () => T): T {
  noGradDepth++;
  try {
    return fn();
  } finally {
    noGradDepth--;
  }
}

/** Internal: opens a reverse level. Returns the bound below which the backward walk stops. */
export function pushReverse(): { level: number; minId: number } {
  const level = ++levelCounter;
  reverseLevels.push(level);
  return { level, minId: nextNodeId };
}

/** Internal: closes the innermost reverse level. */
export function popReverse(level: number): void {
  const top = reverseLevels.pop();
  if (top !== level) throw new Error("autodiff: reverse levels closed out of order");
}

/** Internal: opens a forward level. */
export function pushForward(): number {
  const level = ++levelCounter;
  forwardLevels.push(level);
  return level;
}

/** Internal: closes the innermost forward level. */
export function popForward(level: number): void {
  const top = forwardLevels.pop();
  if (top !== level) throw new Error("autodiff: forward levels closed out of order");
}

/** Internal: whether `x` carries a tangent of an open forward level. */
export function hasActiveTangent(x: Tensor): boolean {
  if (!x._tangents) return false;
  for (const l of forwardLevels) if (x._tangents.has(l)) return true;
  return false;
}

/** Internal: marks `leaf` as a tracked leaf of the current reverse level whose cotangent flows to `source`. */
export function makeLeaf(leaf: Tensor, source: Tensor): void {
  leaf._node = {
    id: nextNodeId++,
    name: "leaf",
    parents: source._node ? [source] : [],
    vjp: (g) => (source._node ? [g] : []),
  };
}

/** Internal: attaches one group node per output; the group's rule runs once for all outputs. */
export function makeGroupNodes(name: string, outputs: Tensor[], run: OutputGroup["run"]): void {
  const group: OutputGroup = { members: outputs, run };
  for (const o of outputs) {
    o._node = { id: nextNodeId++, name, parents: [], vjp: () => [], group };
  }
}

/** Internal: attaches checkpoint nodes to outputs computed without recording. */
export function makeCheckpointNodes(outputs: Tensor[], recompute: () => Tensor[]): void {
  makeGroupNodes("checkpoint", outputs, (cts) => {
    const fresh = withRecording(recompute);
    const out: { tensor: Tensor; ct: Tensor }[] = [];
    fresh.forEach((f, i) => {
      const c = cts[i];
      if (c) out.push({ tensor: f, ct: c });
    });
    return out;
  });
}

/** Internal: runs `fn` with a probe telling whether any tracked tensor was used. */
export function probeTracked<T>(fn: () => T): { value: T; touched: boolean } {
  const saved = probe;
  const p = { touched: false };
  probe = p;
  try {
    return { value: fn(), touched: p.touched };
  } finally {
    probe = saved;
    if (saved && p.touched) saved.touched = true;
  }
}

/** Internal: runs `fn` with reverse recording forced on (checkpoint recomputation inside a backward pass). */
function withRecording<T>(fn: () => T): T {
  const savedNoGrad = noGradDepth;
  noGradDepth = 0;
  const { level } = pushReverse();
  try {
    return fn();
  } finally {
    popReverse(level);
    noGradDepth = savedNoGrad;
  }
}

/**
 * The backward walk: propagates cotangents from `roots` through nodes with id >= minId, and returns the
 * accumulated cotangent of every visited node by id. `add` sums two cotangents (an op, so it is recorded
 * when an outer level is active).
 */
export function backward(
  roots: readonly { tensor: Tensor; ct: Tensor }[],
  minId: number,
  keep: ReadonlySet<number>,
  add: (a: Tensor, b: Tensor) => Tensor,
): Map<number, Tensor> {
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
        const l = 2 * i + 1, r = l + 1;
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
  const accumulate = (t: Tensor, ct: Tensor) => {
    const node = t._node;
    if (!node || node.id < minId) return;
    if (ct.dtype !== t.dtype || ct.size !== t.size) {
      throw new Error(`autodiff: rule of '${node.name}' produced a cotangent ${ct} for a tensor ${t}; expected matching dtype and shape`);
    }
    const prev = grads.get(node.id);
    if (prev) grads.set(node.id, add(prev, ct));
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

/** Internal: makes a tensor sharing `x`'s storage with no autodiff information. */
export function detached(x: Tensor): Tensor {
  return new Tensor(x._buf, x.shape, x.dtype, x._backend);
}
