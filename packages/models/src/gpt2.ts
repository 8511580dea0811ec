/**
 * The GPT-2 baseline: sequential pre-LN blocks x ← x + attn(ln_1(x)); x ← x + mlp(ln_2(x)), learned positions,
 * tied unembedding. Parameter names are those of Hugging Face's GPT2Model (`h.{i}.attn.c_attn.weight`, ...).
 */
import { checkpoint, random, type Key, type Tensor } from "@qkvflow/autograd";
import { blockForward, causalSelfAttention, mlpForward, type BlockArch, type BlockFns, type BlockWeights } from "./block.js";
import type { Gpt2Config } from "./config.js";
import { LayerNorm, Linear } from "./layers.js";
import { TransformerLM, type DepthStep, type ForwardOptions } from "./language-model.js";
import { Initializer, Module, ModuleList } from "./module.js";
import { eulerGrid } from "./time-embedding.js";

/** Causal self-attention with a fused q|k|v projection `c_attn` [E, 3E] and output projection `c_proj` [E, E]. */
export class Attention extends Module {
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  constructor(
    init: Initializer,
    path: string,
    readonly nEmbd: number,
    readonly nHead: number,
    projStd: number,
    std: number,
  ) {
    super();
    this.c_attn = this.registerModule("c_attn", new Linear(init, `${path}.c_attn`, nEmbd, 3 * nEmbd, { std }));
    this.c_proj = this.registerModule("c_proj", new Linear(init, `${path}.c_proj`, nEmbd, nEmbd, { std: projStd }));
  }

  /** Attention output [B, T, E]. */
  forward(x: Tensor): Tensor {
    return causalSelfAttention(
      x,
      this.nHead,
      (v) => this.c_attn.forward(v),
      (v) => this.c_proj.forward(v),
    );
  }
}

/** The GPT-2 MLP: `c_fc` E → 4E, tanh-GELU, `c_proj` 4E → E. */
export class Mlp extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  constructor(init: Initializer, path: string, nEmbd: number, projStd: number, std: number) {
    super();
    this.c_fc = this.registerModule("c_fc", new Linear(init, `${path}.c_fc`, nEmbd, 4 * nEmbd, { std }));
    this.c_proj = this.registerModule("c_proj", new Linear(init, `${path}.c_proj`, 4 * nEmbd, nEmbd, { std: projStd }));
  }

  /** MLP output [B, T, E]. */
  forward(x: Tensor): Tensor {
    return mlpForward(
      x,
      (v) => this.c_fc.forward(v),
      (v) => this.c_proj.forward(v),
    );
  }
}

/**
 * A block with ordinary (time-independent) weights: a LayerNorm, attention, a LayerNorm and the MLP. The GPT-2
 * layer and the discretised model's layer differ only in their LayerNorm names and in `arch`.
 */
export abstract class StaticBlock extends Module {
  /** How the block updates the residual stream. */
  abstract readonly arch: BlockArch;
  abstract readonly attn: Attention;
  abstract readonly mlp: Mlp;
  /** The LayerNorm in front of attention. */
  protected abstract get normAttn(): LayerNorm;
  /** The LayerNorm in front of the MLP. */
  protected abstract get normMlp(): LayerNorm;

  /** The sub-layers as functions (module forwards, so an unmerged LoRA adapter runs as its own path). */
  fns(): BlockFns {
    return {
      lnAttn: (v) => this.normAttn.forward(v),
      lnMlp: (v) => this.normMlp.forward(v),
      qkv: (v) => this.attn.c_attn.forward(v),
      attnProj: (v) => this.attn.c_proj.forward(v),
      fc: (v) => this.mlp.c_fc.forward(v),
      mlpProj: (v) => this.mlp.c_proj.forward(v),
    };
  }

  /** The weights the block applies, with unmerged LoRA adapters folded in (W + (alpha/r)·A·B). */
  weights(): BlockWeights {
    const bias = (l: Linear) => (l.hasParam("bias") ? l.param("bias") : null);
    const { c_attn, c_proj } = this.attn,
      { c_fc, c_proj: mlpProj } = this.mlp;
    return {
      lnAttn: { weight: this.normAttn.param("weight"), bias: this.normAttn.param("bias") },
      lnMlp: { weight: this.normMlp.param("weight"), bias: this.normMlp.param("bias") },
      qkvW: c_attn.effectiveWeight(),
      qkvB: bias(c_attn),
      attnProjW: c_proj.effectiveWeight(),
      attnProjB: bias(c_proj),
      fcW: c_fc.effectiveWeight(),
      fcB: bias(c_fc),
      mlpProjW: mlpProj.effectiveWeight(),
      mlpProjB: bias(mlpProj),
    };
  }

  /** Loads concrete weights into the block's parameters (every bias must be given; adapters are not touched). */
  loadWeights(w: BlockWeights): void {
    const lin = (l: Linear, W: Tensor, b: Tensor | null) => l.loadStateDict(b === null ? { weight: W } : { weight: W, bias: b });
    this.normAttn.loadStateDict({ ...w.lnAttn });
    lin(this.attn.c_attn, w.qkvW, w.qkvB);
    lin(this.attn.c_proj, w.attnProjW, w.attnProjB);
    this.normMlp.loadStateDict({ ...w.lnMlp });
    lin(this.mlp.c_fc, w.fcW, w.fcB);
    lin(this.mlp.c_proj, w.mlpProjW, w.mlpProjB);
  }
}

/** One pre-LN GPT-2 block. */
export class Gpt2Block extends StaticBlock {
  readonly arch = "sequential" as const;
  readonly ln_1: LayerNorm;
  readonly attn: Attention;
  readonly ln_2: LayerNorm;
  readonly mlp: Mlp;
  constructor(init: Initializer, path: string, c: Gpt2Config) {
    super();
    const projStd = c.initStd / Math.sqrt(2 * c.nLayer);
    this.ln_1 = this.registerModule("ln_1", new LayerNorm(init, `${path}.ln_1`, c.nEmbd, c.layerNormEps));
    this.attn = this.registerModule("attn", new Attention(init, `${path}.attn`, c.nEmbd, c.nHead, projStd, c.initStd));
    this.ln_2 = this.registerModule("ln_2", new LayerNorm(init, `${path}.ln_2`, c.nEmbd, c.layerNormEps));
    this.mlp = this.registerModule("mlp", new Mlp(init, `${path}.mlp`, c.nEmbd, projStd, c.initStd));
  }

  protected get normAttn(): LayerNorm {
    return this.ln_1;
  }

  protected get normMlp(): LayerNorm {
    return this.ln_2;
  }

  /** x + drop(attn(ln_1(x))), then + drop(mlp(ln_2(·))). */
  forward(x: Tensor, rate: number, key: Key | null, training: boolean): Tensor {
    return blockForward(x, this.fns(), { nHead: this.attn.nHead, arch: this.arch, rate, key, training });
  }
}

/**
 * GPT-2. Init: every Linear weight and the token embedding ~ N(0, initStd²), positions ~ N(0, (initStd/2)²) (the
 * Levanter convention used by the reference code), biases 0, LayerNorms 1 / 0; the two residual projections
 * (`attn.c_proj`, `mlp.c_proj`) use initStd/√(2·nLayer), as in GPT-2.
 */
export class Gpt2Model extends TransformerLM {
  readonly blocks: Gpt2Block[] = [];

  /** Builds the model; parameters are random from `key`, or zeros when `key` is null (before loading). */
  constructor(config: Gpt2Config, key: Key | null) {
    super(config);
    const init = new Initializer(key, config.dtype);
    this.initEmbeddings(init);
    const h = this.registerModule("h", new ModuleList<Gpt2Block>());
    for (let i = 0; i < config.nLayer; i++) this.blocks.push(h.append(new Gpt2Block(init, `h.${i}`, config)));
    this.initFinalNorm(init);
  }

  get blockArch(): BlockArch {
    return "sequential";
  }

  /** Layer i at the normalised depth t_i = (i+1)/L with dt = 1 (GPT-2 residuals are not scaled). */
  depthSteps(steps?: number): DepthStep[] {
    this.checkFixedDepth("depthSteps", steps);
    return eulerGrid(this.blocks.length).map((t, index) => ({ index, t, dt: 1 }));
  }

  /** Each layer's weights (unmerged LoRA adapters folded in). */
  depthWeights(steps?: number): BlockWeights[] {
    this.checkFixedDepth("depthWeights", steps);
    return this.blocks.map((b) => b.weights());
  }

  /** Runs the blocks on X(0) [B, T, E]. */
  hidden(x0: Tensor, opts?: ForwardOptions): Tensor {
    const s = this.state(opts);
    const c = this._config;
    let x = x0;
    this.blocks.forEach((b, i) => {
      const k = s.key ? random.foldIn(s.key, i) : null;
      const step = (v: Tensor) => b.forward(v, c.residPdrop, k, s.training);
      x = c.gradientCheckpointing ? checkpoint(step)(x) : step(x);
    });
    return x;
  }
}
