/**
 * Layers: Linear (weight stored [in, out], y = x·W + b, optional LoRA adapter), Embedding, LayerNorm, and the
 * functional pieces they share (affine map, dropout). The transformer block built from them is in block.ts.
 */
import { add, dropout, layerNorm, matmul, mul, noGrad, reshape, sub, take, type Key, type Tensor } from "@qkvflow/autograd";
import { Initializer, Module } from "./module.js";

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** y = x·W + b over the last axis of x (any leading shape); W is [in, out], b is [out] or null. */
export function linear(x: Tensor, W: Tensor, b: Tensor | null): Tensor {
  const inF = W.shape[0],
    outF = W.shape[1];
  if (W.rank !== 2 || x.rank < 1 || x.shape[x.rank - 1] !== inF) {
    throw new Error(`linear: input ${fmt(x.shape)} and weight ${fmt(W.shape)}; expected weight [in, out] with in = the input's last axis`);
  }
  const x2 = x.rank === 2 ? x : reshape(x, [-1, inF]);
  let y = matmul(x2, W);
  if (b) y = add(y, b);
  return x.rank === 2 ? y : reshape(y, [...x.shape.slice(0, -1), outF]);
}

/** State of a LoRA adapter attached to a Linear layer. */
interface AdapterState {
  scale: number;
  merged: boolean;
  /** The base weight before merging and the merged weight, to restore the base exactly on unmerge. */
  stash: { base: Tensor; merged: Tensor } | null;
}

/** Affine layer with weight [in, out] (the GPT-2 / Hugging Face Conv1D layout) and optional bias [out]. */
export class Linear extends Module {
  private adapter: AdapterState | null = null;

  constructor(
    init: Initializer,
    path: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean; std?: number } = {},
  ) {
    super();
    this.registerParam("weight", init.make(`${path}.weight`, [inFeatures, outFeatures], { kind: "normal", std: opts.std ?? 0.02 }));
    if (opts.bias ?? true) this.registerParam("bias", init.make(`${path}.bias`, [outFeatures], { kind: "zeros" }));
  }

  /** x·W + b, plus (alpha/r)·(x·A)·B when an unmerged adapter is attached. */
  forward(x: Tensor): Tensor {
    const y = linear(x, this.param("weight"), this.hasParam("bias") ? this.param("bias") : null);
    if (!this.adapter || this.adapter.merged) return y;
    const low = linear(linear(x, this.param("lora_A"), null), this.param("lora_B"), null);
    return add(y, mul(low, this.adapter.scale));
  }

  /** Whether a LoRA adapter is attached. */
  get hasAdapter(): boolean {
    return this.adapter !== null;
  }

  /** Attaches a rank-r adapter: A [in, r] ~ N(0, initStd²), B [r, out] = 0, output scale alpha / r. */
  attachAdapter(init: Initializer, path: string, rank: number, alpha: number, initStd: number): void {
    if (this.adapter) throw new Error(`applyLoRA: '${path}' already has an adapter`);
    this.registerParam("lora_A", init.make(`${path}.lora_A`, [this.inFeatures, rank], { kind: "normal", std: initStd }));
    this.registerParam("lora_B", init.make(`${path}.lora_B`, [rank, this.outFeatures], { kind: "zeros" }));
    this.adapter = { scale: alpha / rank, merged: false, stash: null };
  }

  /**
   * The weight this layer applies: W, or W + (alpha/r)·A·B while an unmerged adapter is attached (the forward
   * pass computes the same map as x·W + (alpha/r)·(x·A)·B).
   */
  effectiveWeight(): Tensor {
    const W = this.param("weight"),
      a = this.adapter;
    if (!a || a.merged) return W;
    return add(W, mul(matmul(this.param("lora_A"), this.param("lora_B")), a.scale));
  }

  /** Adds (alpha/r)·A·B into the weight; the adapter path is then skipped. */
  mergeAdapter(): void {
    const a = this.adapter;
    if (!a || a.merged) return;
    const base = this.param("weight");
    const merged = noGrad(() => this.effectiveWeight());
    this.registerParam("weight", merged);
    a.merged = true;
    a.stash = { base, merged };
  }

  /** Undoes mergeAdapter (restoring the exact previous weight when it was not changed meanwhile). */
  unmergeAdapter(): void {
    const a = this.adapter;
    if (!a || !a.merged) return;
    const cur = this.param("weight");
    const restored =
      a.stash && a.stash.merged === cur
        ? a.stash.base
        : noGrad(() => sub(cur, mul(matmul(this.param("lora_A"), this.param("lora_B")), a.scale)));
    this.registerParam("weight", restored);
    a.merged = false;
    a.stash = null;
  }

  /** Marks the adapter as merged without touching the weight (used when loading a merged checkpoint). */
  setAdapterMerged(merged: boolean): void {
    if (this.adapter) {
      this.adapter.merged = merged;
      this.adapter.stash = null;
    }
  }
}

/** Token or position embedding table [count, dim]. */
export class Embedding extends Module {
  constructor(
    init: Initializer,
    path: string,
    readonly count: number,
    readonly dim: number,
    std: number,
  ) {
    super();
    this.registerParam("weight", init.make(`${path}.weight`, [count, dim], { kind: "normal", std }));
  }

  /** Rows of the table at int32 indices (any shape): out shape = indices.shape + [dim]. */
  forward(ids: Tensor): Tensor {
    return take(this.param("weight"), ids, 0);
  }
}

/** LayerNorm over the last axis with learned scale `weight` and shift `bias`. */
export class LayerNorm extends Module {
  constructor(
    init: Initializer,
    path: string,
    readonly dim: number,
    readonly eps: number,
  ) {
    super();
    this.registerParam("weight", init.make(`${path}.weight`, [dim], { kind: "ones" }));
    this.registerParam("bias", init.make(`${path}.bias`, [dim], { kind: "zeros" }));
  }

  /** (x − μ)/√(σ² + eps)·weight + bias. */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.param("weight"), this.param("bias"), this.eps);
  }
}

/** Inverted dropout when training with rate > 0; the identity otherwise. */
export function maybeDropout(x: Tensor, rate: number, key: Key | null, training: boolean): Tensor {
  if (!training || rate === 0) return x;
  if (!key) throw new Error("dropout: training with a dropout rate > 0 needs an RNG key; pass opts.key (e.g. random.key(seed))");
  return dropout(x, rate, key, true);
}
