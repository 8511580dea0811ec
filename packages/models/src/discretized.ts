/**
 * A plain M-layer parallel-block transformer with Euler-scaled residuals,
 * x ← x + dt·(attn(ln_a(x)) + mlp(ln_m(x))), and `discretize(model, M)`, which turns a DiffEqFormer into one:
 * layer i gets the generated weights of t_i = (i+1)/M (LayerNorms through their own h_ln(t)) and dt = 1/M.
 */
import { checkpoint, noGrad, random, tensor, type Key, type Tensor } from "@qkvflow/autograd";
import { blockForward, type BlockArch, type BlockWeights } from "./block.js";
import type { DiscretizedConfig } from "./config.js";
import type { DiffEqFormer } from "./diffeqformer.js";
import { Attention, Mlp, StaticBlock } from "./gpt2.js";
import { LayerNorm } from "./layers.js";
import { TransformerLM, type DepthStep, type ForwardOptions } from "./language-model.js";
import { Initializer, ModuleList } from "./module.js";
import { checkDiscretizable } from "./state-check.js";
import { eulerGrid } from "./time-embedding.js";

/** One layer: ln_a, attn (c_attn, c_proj), ln_m, mlp (c_fc, c_proj), all ordinary (time-independent). */
export class DiscretizedBlock extends StaticBlock {
  readonly arch = "parallel" as const;
  readonly ln_a: LayerNorm;
  readonly attn: Attention;
  readonly ln_m: LayerNorm;
  readonly mlp: Mlp;
  constructor(init: Initializer, path: string, c: DiscretizedConfig) {
    super();
    this.ln_a = this.registerModule("ln_a", new LayerNorm(init, `${path}.ln_a`, c.nEmbd, c.layerNormEps));
    this.attn = this.registerModule("attn", new Attention(init, `${path}.attn`, c.nEmbd, c.nHead, c.initStd, c.initStd));
    this.ln_m = this.registerModule("ln_m", new LayerNorm(init, `${path}.ln_m`, c.nEmbd, c.layerNormEps));
    this.mlp = this.registerModule("mlp", new Mlp(init, `${path}.mlp`, c.nEmbd, c.initStd, c.initStd));
  }

  protected get normAttn(): LayerNorm {
    return this.ln_a;
  }

  protected get normMlp(): LayerNorm {
    return this.ln_m;
  }
}

/** The discretised (or directly trained) parallel-block model; parameter names `h.{i}.ln_a.weight`, … */
export class DiscretizedModel extends TransformerLM {
  readonly blocks: DiscretizedBlock[] = [];

  /** Builds the model; parameters are random from `key` (N(0, initStd²) weights), or zeros when `key` is null. */
  constructor(config: DiscretizedConfig, key: Key | null) {
    super(config);
    const init = new Initializer(key, config.dtype);
    this.initEmbeddings(init);
    const h = this.registerModule("h", new ModuleList<DiscretizedBlock>());
    for (let i = 0; i < config.nLayer; i++) this.blocks.push(h.append(new DiscretizedBlock(init, `h.${i}`, config)));
    this.initFinalNorm(init);
  }

  override get config(): DiscretizedConfig {
    return this._config as DiscretizedConfig;
  }

  get blockArch(): BlockArch {
    return "parallel";
  }

  /** Layer i at t_i = (i+1)/M with the model's dt. */
  depthSteps(steps?: number): DepthStep[] {
    this.checkFixedDepth("depthSteps", steps);
    const dt = this.config.dt;
    return eulerGrid(this.blocks.length).map((t, index) => ({ index, t, dt }));
  }

  /** Each layer's weights (unmerged LoRA adapters folded in). */
  depthWeights(steps?: number): BlockWeights[] {
    this.checkFixedDepth("depthWeights", steps);
    return this.blocks.map((b) => b.weights());
  }

  /** Runs x ← x + dt·f_i(x) through the layers. */
  hidden(x0: Tensor, opts?: ForwardOptions): Tensor {
    const s = this.state(opts);
    const c = this.config;
    let x = x0;
    this.blocks.forEach((b, i) => {
      const k = s.key ? random.foldIn(s.key, i) : null;
      const o = { nHead: c.nHead, arch: "parallel" as const, dt: c.dt, rate: c.residPdrop, key: k, training: s.training };
      const step = (v: Tensor) => blockForward(v, b.fns(), o);
      x = c.gradientCheckpointing ? checkpoint(step)(x) : step(x);
    });
    return x;
  }
}

function copyOf(x: Tensor): Tensor {
  const d = x.data();
  const a = x.dtype === "float64" ? Float64Array.from(d) : Float32Array.from(d);
  return tensor(a, { shape: [...x.shape], dtype: x.dtype });
}

function copyWeights(w: BlockWeights): BlockWeights {
  const c = (t: Tensor | null) => (t === null ? null : copyOf(t));
  return {
    lnAttn: { weight: copyOf(w.lnAttn.weight), bias: copyOf(w.lnAttn.bias) },
    lnMlp: { weight: copyOf(w.lnMlp.weight), bias: copyOf(w.lnMlp.bias) },
    qkvW: copyOf(w.qkvW),
    qkvB: c(w.qkvB),
    attnProjW: copyOf(w.attnProjW),
    attnProjB: c(w.attnProjB),
    fcW: copyOf(w.fcW),
    fcB: c(w.fcB),
    mlpProjW: copyOf(w.mlpProjW),
    mlpProjB: c(w.mlpProjB),
  };
}

/**
 * The M-layer discretisation of a DiffEqFormer: layer i has the weights generated at t_i = (i+1)/M (one batched
 * generation) and the Euler factor dt = 1/M. The result is independent of the source (copied tensors, no
 * hypernetworks, no LoRA) and can be trained, saved or given LoRA adapters. With M = L its output equals the
 * source's Euler forward pass.
 */
export function discretize(model: DiffEqFormer, M: number): DiscretizedModel {
  checkDiscretizable(model);
  if (!Number.isInteger(M) || M <= 0) throw new Error(`discretize: M = ${M}; expected a positive integer number of layers`);
  const c = model.config;
  const config: DiscretizedConfig = {
    kind: "discretized",
    vocabSize: c.vocabSize,
    blockSize: c.blockSize,
    nEmbd: c.nEmbd,
    nHead: c.nHead,
    nLayer: M,
    embdPdrop: c.embdPdrop,
    residPdrop: c.residPdrop,
    layerNormEps: c.layerNormEps,
    initStd: c.initStd,
    dtype: c.dtype,
    gradientCheckpointing: c.gradientCheckpointing,
    dt: 1 / M,
  };
  const out = new DiscretizedModel(config, null);
  const sd: Record<string, Tensor> = {};
  const src = model.parameters();
  for (const n of ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"]) sd[n] = copyOf(src[n]);
  out.loadStateDict(sd, { strict: false });
  const ws = noGrad(() => model.weightsAt(eulerGrid(M)));
  ws.forEach((w, i) => out.blocks[i].loadWeights(copyWeights(w)));
  out.train(model.training);
  return out;
}
