/**
 * The contract between models and the trainer, and the parts shared by every language model here: token and
 * position embeddings, the final LayerNorm, the tied unembedding and the loss.
 */
import {
  add,
  cast,
  layerNorm,
  linearCrossEntropy,
  matmulT,
  mul,
  noGrad,
  random,
  reshape,
  slice,
  take,
  tensor,
  type Key,
  type Tensor,
} from "@qkvflow/autograd";
import {
  attentionProbs,
  blockFns,
  blockUpdate,
  castBlockWeights,
  type BlockArch,
  type BlockWeights,
  type LayerNormWeights,
} from "./block.js";
import type { ModelConfig, ModelKind } from "./config.js";
import { Embedding, LayerNorm, maybeDropout } from "./layers.js";
import { Initializer, Module, matchesAny, type LoadReport } from "./module.js";

/** Options of a forward pass. */
export interface ForwardOptions {
  /** RNG key for dropout (required when training with dropout > 0). */
  key?: Key;
  /** Dropout on (default: the module's train / eval mode). */
  training?: boolean;
}

/** What a trainer needs from a model (functional: parameters are swapped in by name, then the loss is evaluated). */
export interface LanguageModel {
  readonly config: ModelConfig;
  parameters(): Record<string, Tensor>;
  setParameters(p: Record<string, Tensor>): void;
  trainableNames(): string[];
  logits(inputs: Tensor, opts?: ForwardOptions): Tensor;
  loss(inputs: Tensor, targets: Tensor, opts?: ForwardOptions): Tensor;
  stateDict(): Record<string, Tensor>;
  loadStateDict(sd: Record<string, Tensor>, opts?: { strict?: boolean }): LoadReport | void;
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Resolved forward options. */
export interface ForwardState {
  key: Key | null;
  training: boolean;
}

/**
 * One step of the forward pass seen as dynamics over depth, X_{i+1} = X_i + dt·g_i(X_i): its index i, the time
 * t_i its weights belong to, and its Euler factor dt.
 */
export interface DepthStep {
  index: number;
  t: number;
  dt: number;
}

/** Options of `TransformerLM.dynamics`. */
export interface DynamicsOptions {
  /** DiffEqFormer only: number of Euler steps n of the grid (default: the model's solver steps, else nLayer). */
  steps?: number;
  /** Cast all weights and embeddings to this dtype (default 'float64', for accurate Jacobians and spectra). */
  dtype?: "float32" | "float64";
}

/**
 * A model's forward pass as a discrete dynamical system over depth, X_{i+1} = X_i + dt_i·g_i(X_i), with the
 * weights of every step read once (LoRA adapters folded in) and cast to one dtype. Everything is evaluated by the
 * model's own block, embedding and head; the members are plain closures (the object can be spread and
 * overridden).
 */
export interface DepthDynamics {
  /** Architecture of the source model. */
  readonly kind: ModelKind;
  /** Width E. */
  readonly nEmbd: number;
  /** Number of heads H. */
  readonly nHead: number;
  /** LayerNorm epsilon of the blocks. */
  readonly layerNormEps: number;
  /** Vocabulary size V. */
  readonly vocabSize: number;
  /** Longest sequence the model accepts. */
  readonly blockSize: number;
  /** How a block updates the residual stream. */
  readonly arch: BlockArch;
  /** The forward pass's steps, in order. */
  readonly steps: readonly DepthStep[];
  /** The block weights used by each step (same order as `steps`). */
  stepWeights(): BlockWeights[];
  /** Weights generated at arbitrary times (continuous-depth models only). */
  weightsAt?: (ts: readonly number[]) => BlockWeights[];
  /** X_0 = token + position embedding of one sequence: [1, T, E] (no dropout). */
  embed(ids: readonly number[]): Tensor;
  /** ln_f then the tied unembedding: hidden [1, T, E] → logits [T, V]. */
  head(h: Tensor): Tensor;
  /** The residual update g(x) of a block with weights `w` on x [B, T, E] (the vector field f(X, t) for the ODE). */
  update(x: Tensor, w: BlockWeights): Tensor;
  /** Attention probabilities [B, H, T, T] of a block with weights `w` at the state x [B, T, E]. */
  attentionProbs(x: Tensor, w: BlockWeights): Tensor;
  /** X_0 … X_n from X_0 [B, T, E] along `steps` (recorded by autodiff unless the caller turns it off). */
  trajectory(x0: Tensor): Tensor[];
}

/** X(0) = wte[ids] + wpe[0..T) for int32 ids [..., T]: [..., T, E]. */
function embedTokens(wte: Tensor, wpe: Tensor, ids: Tensor): Tensor {
  const T = ids.shape[ids.rank - 1],
    E = wte.shape[1];
  return add(take(wte, ids, 0), slice(wpe, [0, 0], [T, E]));
}

/** ln_f of the hidden state [..., E], flattened to [N, E]. */
function finalNorm(h: Tensor, lnF: LayerNormWeights, eps: number): Tensor {
  return reshape(layerNorm(h, lnF.weight, lnF.bias, eps), [-1, lnF.weight.shape[0]]);
}

/** The tied unembedding of already-normalised rows x [N, E]: x·wteᵀ [N, V], the transpose done by the GEMM. */
function unembed(x: Tensor, wte: Tensor): Tensor {
  return matmulT(x, wte, false, true);
}

/** Base class of the three models: embeddings, final norm, tied head, loss and LoRA bookkeeping. */
export abstract class TransformerLM extends Module implements LanguageModel {
  protected _config: ModelConfig;
  protected wte!: Embedding;
  protected wpe!: Embedding;
  protected lnF!: LayerNorm;

  protected constructor(config: ModelConfig) {
    super();
    this._config = config;
  }

  /** The model's configuration (JSON-serialisable; includes `lora` once adapters are applied). */
  get config(): ModelConfig {
    return this._config;
  }

  /** @internal replaces the configuration (LoRA bookkeeping). */
  _setConfig(c: ModelConfig): void {
    this._config = c;
  }

  /** Registers wte [V, E] ~ N(0, std²) and wpe [P, E] ~ N(0, (std/2)²); call first in a subclass constructor. */
  protected initEmbeddings(init: Initializer): void {
    const c = this._config;
    this.wte = this.registerModule("wte", new Embedding(init, "wte", c.vocabSize, c.nEmbd, c.initStd));
    this.wpe = this.registerModule("wpe", new Embedding(init, "wpe", c.blockSize, c.nEmbd, c.initStd / 2));
  }

  /** Registers the final LayerNorm `ln_f`; call last in a subclass constructor. */
  protected initFinalNorm(init: Initializer): void {
    this.lnF = this.registerModule("ln_f", new LayerNorm(init, "ln_f", this._config.nEmbd, this._config.layerNormEps));
  }

  /** Checks int32 token ids [B, T] with T ≤ blockSize and ids in [0, V). */
  protected checkInputs(fn: string, inputs: Tensor): void {
    const c = this._config;
    if (inputs.dtype !== "int32" || inputs.rank !== 2)
      throw new Error(`${fn}: inputs are ${inputs.dtype} ${fmt(inputs.shape)}; expected int32 token ids [B, T]`);
    const T = inputs.shape[1];
    if (T < 1 || T > c.blockSize) throw new Error(`${fn}: sequence length ${T} is outside 1..${c.blockSize} (the model's blockSize)`);
    const d = inputs.data();
    for (let i = 0; i < d.length; i++) {
      if (d[i] < 0 || d[i] >= c.vocabSize)
        throw new Error(`${fn}: token id ${d[i]} at flat position ${i} is outside [0, ${c.vocabSize}) (the vocabulary)`);
    }
  }

  /** Resolves forward options against the module's mode. */
  protected state(opts: ForwardOptions | undefined): ForwardState {
    return { key: opts?.key ?? null, training: opts?.training ?? this.training };
  }

  /** X(0) = wte[ids] + wpe[0..T), with embedding dropout when training: [B, T, E]. */
  embed(inputs: Tensor, opts?: ForwardOptions): Tensor {
    this.checkInputs("embed", inputs);
    const s = this.state(opts);
    const x = embedTokens(this.wte.param("weight"), this.wpe.param("weight"), inputs);
    return maybeDropout(x, this._config.embdPdrop, s.key ? random.foldIn(s.key, 0) : null, s.training);
  }

  /** The body: maps X(0) [B, T, E] to the final hidden state (before ln_f). */
  abstract hidden(x0: Tensor, opts?: ForwardOptions): Tensor;

  /** How this model's blocks update the residual stream. */
  abstract get blockArch(): BlockArch;

  /**
   * The steps of the forward pass over depth: GPT-2 layer i at t_i = (i+1)/L with dt = 1, discretised layer i at
   * t_i = (i+1)/M with the model's dt, DiffEqFormer step i of the Euler grid (`eulerGrid(steps)`, dt = 1/steps).
   * `steps` applies to the DiffEqFormer only (default: its solver steps, else nLayer).
   */
  abstract depthSteps(steps?: number): DepthStep[];

  /**
   * The block weights of each of `depthSteps(steps)`: the layers' weights with unmerged LoRA adapters folded in,
   * or the DiffEqFormer's weights generated at the steps' times.
   */
  abstract depthWeights(steps?: number): BlockWeights[];

  /** Continuous-depth models: the block weights generated at arbitrary times. */
  weightsAt?(ts: readonly number[]): BlockWeights[];

  /** @internal the error for a `steps` option given to a model with fixed layers. */
  protected checkFixedDepth(fn: string, steps: number | undefined): void {
    if (steps !== undefined) {
      throw new Error(
        `${fn}: option steps = ${steps} applies only to a DiffEqFormer; this model is '${this._config.kind}' with fixed layers`,
      );
    }
  }

  /**
   * The forward pass as a dynamical system over depth (see DepthDynamics), for analysis: weights are read now,
   * once, and cast to `opts.dtype` (default float64). For GPT-2 a step is written x + g(x) with g = a + m (the
   * layer itself computes (x + a) + m: equal up to rounding).
   */
  dynamics(opts: DynamicsOptions = {}): DepthDynamics {
    const c = this._config;
    const dtype = opts.dtype ?? "float64";
    const castT = (t: Tensor): Tensor => (t.dtype === dtype ? t : cast(t, dtype));
    const steps = this.depthSteps(opts.steps);
    const E = c.nEmbd,
      eps = c.layerNormEps;
    const { wte, wpe, lnF } = noGrad(() => ({
      wte: castT(this.wte.param("weight")),
      wpe: castT(this.wpe.param("weight")),
      lnF: { weight: castT(this.lnF.param("weight")), bias: castT(this.lnF.param("bias")) },
    }));
    const ws = noGrad(() => this.depthWeights(opts.steps).map((w) => castBlockWeights(w, dtype)));
    const o = { nHead: c.nHead, arch: this.blockArch };
    const update = (x: Tensor, w: BlockWeights): Tensor => blockUpdate(x, blockFns(w, eps), o);
    const gen = this.weightsAt?.bind(this);
    return {
      kind: c.kind,
      nEmbd: E,
      nHead: c.nHead,
      layerNormEps: eps,
      vocabSize: c.vocabSize,
      blockSize: c.blockSize,
      arch: this.blockArch,
      steps,
      stepWeights: () => ws,
      ...(gen ? { weightsAt: (ts: readonly number[]) => noGrad(() => gen(ts).map((w) => castBlockWeights(w, dtype))) } : {}),
      embed: (ids) => {
        const T = ids.length;
        if (T < 1 || T > c.blockSize) throw new Error(`embed: sequence length ${T} is outside 1..${c.blockSize} (the model's blockSize)`);
        ids.forEach((id, i) => {
          if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize)
            throw new Error(`embed: token id ${id} at position ${i} is outside [0, ${c.vocabSize})`);
        });
        return noGrad(() => embedTokens(wte, wpe, tensor(Int32Array.from(ids), { shape: [1, T], dtype: "int32" })));
      },
      head: (h) => unembed(finalNorm(h, lnF, eps), wte),
      update,
      attentionProbs: (x, w) => {
        const f = blockFns(w, eps);
        return attentionProbs(f.lnAttn(x), c.nHead, f.qkv);
      },
      trajectory: (x0) => {
        const xs = [x0];
        steps.forEach((s, i) => {
          const x = xs[xs.length - 1];
          xs.push(add(x, mul(update(x, ws[i]), s.dt)));
        });
        return xs;
      },
    };
  }

  /** The final LayerNorm's weights. */
  private finalNormWeights(): LayerNormWeights {
    return { weight: this.lnF.param("weight"), bias: this.lnF.param("bias") };
  }

  /**
   * ln_f then the tied unembedding: hidden [B, T, E] → logits [B·T, V] = x·wteᵀ, with the transpose done by the
   * GEMM (packing) rather than materialised.
   */
  protected headFlat(h: Tensor): Tensor {
    return unembed(this.finalFlat(h), this.wte.param("weight"));
  }

  /** ln_f of the hidden state, flattened to [B·T, E]. */
  private finalFlat(h: Tensor): Tensor {
    return finalNorm(h, this.finalNormWeights(), this._config.layerNormEps);
  }

  /** The final hidden state [B, T, E] for int32 inputs [B, T] (before ln_f). */
  private body(inputs: Tensor, opts?: ForwardOptions): Tensor {
    const s = this.state(opts);
    const x0 = this.embed(inputs, opts);
    return this.hidden(x0, { key: s.key ? random.foldIn(s.key, 1) : undefined, training: s.training });
  }

  private run(inputs: Tensor, opts?: ForwardOptions): Tensor {
    return this.headFlat(this.body(inputs, opts));
  }

  /** Next-token logits [B, T, V] for int32 inputs [B, T]. */
  logits(inputs: Tensor, opts?: ForwardOptions): Tensor {
    const [B, T] = inputs.shape;
    return reshape(this.run(inputs, opts), [B, T, this._config.vocabSize]);
  }

  /**
   * Mean cross-entropy of int32 targets [B, T] (entries equal to −100 are ignored). The tied unembedding and the
   * cross-entropy run as one fused op (`linearCrossEntropy`), so the [B·T, V] logits are never materialised.
   */
  loss(inputs: Tensor, targets: Tensor, opts?: ForwardOptions): Tensor {
    if (targets.dtype !== "int32" || targets.rank !== 2 || targets.shape[0] !== inputs.shape[0] || targets.shape[1] !== inputs.shape[1]) {
      throw new Error(`loss: targets are ${targets.dtype} ${fmt(targets.shape)}; expected int32 ${fmt(inputs.shape)} like the inputs`);
    }
    const x = this.finalFlat(this.body(inputs, opts));
    return linearCrossEntropy(x, this.wte.param("weight"), reshape(targets, [-1]));
  }

  /** Names the trainer should update: every parameter, or only the LoRA adapters (plus `lora.trainable`). */
  trainableNames(): string[] {
    const names = Object.keys(this.parameters());
    const lora = this._config.lora;
    if (!lora) return names;
    return names.filter((n) => n.endsWith(".lora_A") || n.endsWith(".lora_B") || matchesAny(n, lora.trainable));
  }
}
