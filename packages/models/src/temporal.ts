/**
 * Time-dependent layers of DiffEqFormer. Each owns a private hypernetwork h(t) = lin2(silu(lin1(e(t)))):
 * - TemporalLinear: W(t) = B_W + Σ_k h_k(t)·A_k, b(t) = h(t)·F_b, y = x·W(t) + b(t);
 * - TemporalLayerNorm: γ(t) = 1 + Γ·h(t), β(t) = B·h(t).
 * Everything is batched over times: given e for n times [n, 2S+1], one matmul of h [n, d] with A reshaped
 * [d, in·out] gives every W(t).
 */
import { add, matmul, matmulT, reshape, silu, type Tensor } from "@qkvflow/autograd";
import { Linear } from "./layers.js";
import { Initializer, Module } from "./module.js";

/** A leaf module holding named parameters (used for `f_W`, whose weight is 3-D). */
export class ParamGroup extends Module {
  constructor(params: Record<string, Tensor>) {
    super();
    for (const [n, p] of Object.entries(params)) this.registerParam(n, p);
  }
}

/** The per-module hypernetwork h = lin2(silu(lin1(e))): (2S+1) → d → d. */
abstract class Hyper extends Module {
  readonly lin1: Linear;
  readonly lin2: Linear;
  protected constructor(
    init: Initializer,
    path: string,
    readonly embedWidth: number,
    readonly d: number,
    std: number,
  ) {
    super();
    this.lin1 = this.registerModule("lin1", new Linear(init, `${path}.lin1`, embedWidth, d, { std }));
    this.lin2 = this.registerModule("lin2", new Linear(init, `${path}.lin2`, d, d, { std }));
  }

  /** h for a batch of embedded times e [n, 2S+1] → [n, d]. */
  hyper(e: Tensor): Tensor {
    if (e.rank !== 2 || e.shape[1] !== this.embedWidth) {
      throw new Error(`hypernetwork: time embedding [${e.shape.join(", ")}]; expected [n, ${this.embedWidth}]`);
    }
    return this.lin2.forward(silu(this.lin1.forward(e)));
  }
}

/** Linear layer with weights generated from t. Parameters: lin1, lin2, f_W.weight A [d, in, out], f_W.bias B_W [in, out], f_b [d, out]. */
export class TemporalLinear extends Hyper {
  readonly f_W: ParamGroup;

  /** Init (reference code): lin1, lin2 and A ~ N(0, std²), biases and B_W = 0, F_b ~ N(0, 1e-4²). */
  constructor(
    init: Initializer,
    path: string,
    embedWidth: number,
    d: number,
    readonly inFeatures: number,
    readonly outFeatures: number,
    std: number,
  ) {
    super(init, path, embedWidth, d, std);
    this.f_W = this.registerModule(
      "f_W",
      new ParamGroup({
        weight: init.make(`${path}.f_W.weight`, [d, inFeatures, outFeatures], { kind: "normal", std }),
        bias: init.make(`${path}.f_W.bias`, [inFeatures, outFeatures], { kind: "zeros" }),
      }),
    );
    this.registerParam("f_b", init.make(`${path}.f_b`, [d, outFeatures], { kind: "normal", std: 1e-4 }));
  }

  /** W(t) [n, in, out] and b(t) [n, out] for embedded times e [n, 2S+1]. */
  weightsAt(e: Tensor): { W: Tensor; b: Tensor } {
    const h = this.hyper(e);
    const n = e.shape[0],
      io = this.inFeatures * this.outFeatures;
    const A = reshape(this.f_W.param("weight"), [this.d, io]);
    const W = reshape(add(matmul(h, A), reshape(this.f_W.param("bias"), [io])), [n, this.inFeatures, this.outFeatures]);
    const b = matmul(h, this.param("f_b"));
    return { W, b };
  }
}

/** LayerNorm whose scale and shift are generated from t. Parameters: lin1, lin2, gamma Γ [E, d], beta B [E, d]. */
export class TemporalLayerNorm extends Hyper {
  /** Init: hypernetwork as TemporalLinear; Γ = B = 0, so it starts as the plain LayerNorm. */
  constructor(
    init: Initializer,
    path: string,
    embedWidth: number,
    d: number,
    readonly dim: number,
    readonly eps: number,
    std: number,
  ) {
    super(init, path, embedWidth, d, std);
    this.registerParam("gamma", init.make(`${path}.gamma`, [dim, d], { kind: "zeros" }));
    this.registerParam("beta", init.make(`${path}.beta`, [dim, d], { kind: "zeros" }));
  }

  /** γ(t) = 1 + Γ·h(t) and β(t) = B·h(t), each [n, E], for embedded times e [n, 2S+1]. */
  paramsAt(e: Tensor): { scale: Tensor; shift: Tensor } {
    const h = this.hyper(e);
    return { scale: add(matmulT(h, this.param("gamma"), false, true), 1), shift: matmulT(h, this.param("beta"), false, true) };
  }
}
