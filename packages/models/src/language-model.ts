/**
 * The contract between models and the trainer, and the parts shared by every language model here: token and
 * position embeddings, the final LayerNorm, the tied unembedding and the loss.
 */
import { add, linearCrossEntropy, matmulT, random, reshape, slice, type Key, type Tensor } from "@qkvflow/autograd";
import type { ModelConfig } from "./config.js";
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
    if (inputs.dtype !== "int32" || inputs.rank !== 2) throw new Error(`${fn}: inputs are ${inputs.dtype} ${fmt(inputs.shape)}; expected int32 token ids [B, T]`);
    const T = inputs.shape[1];
    if (T < 1 || T > c.blockSize) throw new Error(`${fn}: sequence length ${T} is outside 1..${c.blockSize} (the model's blockSize)`);
    const d = inputs.data();
    for (let i = 0; i < d.length; i++) {
      if (d[i] < 0 || d[i] >= c.vocabSize) throw new Error(`${fn}: token id ${d[i]} at flat position ${i} is outside [0, ${c.vocabSize}) (the vocabulary)`);
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
    const T = inputs.shape[1];
    const pos = slice(this.wpe.param("weight"), [0, 0], [T, this._config.nEmbd]);
    const x = add(this.wte.forward(inputs), pos);
    return maybeDropout(x, this._config.embdPdrop, s.key ? random.foldIn(s.key, 0) : null, s.training);
  }

  /** The body: maps X(0) [B, T, E] to the final hidden state (before ln_f). */
  abstract hidden(x0: Tensor, opts?: ForwardOptions): Tensor;

  /**
   * ln_f then the tied unembedding: hidden [B, T, E] → logits [B·T, V] = x·wteᵀ, with the transpose done by the
   * GEMM (packing) rather than materialised.
   */
  protected headFlat(h: Tensor): Tensor {
    return matmulT(this.finalFlat(h), this.wte.param("weight"), false, true);
  }

  /** ln_f of the hidden state, flattened to [B·T, E]. */
  private finalFlat(h: Tensor): Tensor {
    return reshape(this.lnF.forward(h), [-1, this._config.nEmbd]);
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
