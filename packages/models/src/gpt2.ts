/**
 * The GPT-2 baseline: sequential pre-LN blocks x ← x + attn(ln_1(x)); x ← x + mlp(ln_2(x)), learned positions,
 * tied unembedding. Parameter names are those of Hugging Face's GPT2Model (`h.{i}.attn.c_attn.weight`, ...).
 */
import { add, checkpoint, random, type Key, type Tensor } from "@qkvflow/autograd";
import type { Gpt2Config } from "./config.js";
import { LayerNorm, Linear, causalSelfAttention, maybeDropout, mlpForward } from "./layers.js";
import { TransformerLM, type ForwardOptions } from "./language-model.js";
import { Initializer, Module, ModuleList } from "./module.js";

/** Causal self-attention with a fused q|k|v projection `c_attn` [E, 3E] and output projection `c_proj` [E, E]. */
export class Attention extends Module {
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  constructor(init: Initializer, path: string, readonly nEmbd: number, readonly nHead: number, projStd: number, std: number) {
    super();
    this.c_attn = this.registerModule("c_attn", new Linear(init, `${path}.c_attn`, nEmbd, 3 * nEmbd, { std }));
    this.c_proj = this.registerModule("c_proj", new Linear(init, `${path}.c_proj`, nEmbd, nEmbd, { std: projStd }));
  }

  /** Attention output [B, T, E]. */
  forward(x: Tensor): Tensor {
    return causalSelfAttention(x, this.nHead, (v) => this.c_attn.forward(v), (v) => this.c_proj.forward(v));
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
    return mlpForward(x, (v) => this.c_fc.forward(v), (v) => this.c_proj.forward(v));
  }
}

/** One pre-LN GPT-2 block. */
export class Gpt2Block extends Module {
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

  /** x + drop(attn(ln_1(x))), then + drop(mlp(ln_2(·))). */
  forward(x: Tensor, rate: number, key: Key | null, training: boolean): Tensor {
    const [ka, km] = key ? random.split(key, 2) : [null, null];
    const h = add(x, maybeDropout(this.attn.forward(this.ln_1.forward(x)), rate, ka, training));
    return add(h, maybeDropout(this.mlp.forward(this.ln_2.forward(h)), rate, km, training));
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
