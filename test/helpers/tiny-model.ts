/**
 * A tiny language model for trainer tests: embedding wte [V, E] → dropout → tanh → head [E, V] + bias.
 * It implements the TrainableModel contract (functional parameter swapping, mean cross-entropy ignoring −100,
 * state dict) without depending on @qkvflow/models.
 */
import { add, crossEntropy, dropout, matmul, random, reshape, take, tanh, type Key, type Tensor } from "@qkvflow/autograd";
import type { ForwardOptions, ModelBackend, TrainableModel } from "@qkvflow/train";

export interface TinyConfig {
  kind: "tiny";
  vocabSize: number;
  nEmbd: number;
  blockSize: number;
  nLayer: number;
  dropout: number;
  dtype: "float32" | "float64";
}

export class TinyLM implements TrainableModel {
  private p: Record<string, Tensor>;
  /** When set, loss() returns NaN from the given call count on (to test the non-finite stop). */
  nanAfterCalls: number | null = null;
  private calls = 0;
  constructor(
    readonly config: TinyConfig,
    key: Key,
  ) {
    const [k1, k2] = random.split(key, 2) as [Key, Key];
    const { vocabSize: V, nEmbd: E, dtype } = config;
    this.p = {
      "wte.weight": random.normal(k1, [V, E], { std: 0.5, dtype }),
      "head.weight": random.normal(k2, [E, V], { std: 0.5, dtype }),
      "head.bias": random.normal(random.foldIn(k2, 7), [V], { std: 0, dtype }),
    };
  }
  parameters(): Record<string, Tensor> {
    return { ...this.p };
  }
  setParameters(p: Record<string, Tensor>): void {
    for (const [n, t] of Object.entries(p)) {
      const cur = this.p[n];
      if (cur === undefined) throw new Error(`TinyLM.setParameters: unknown parameter '${n}'`);
      if (cur.shape.join(",") !== t.shape.join(","))
        throw new Error(`TinyLM.setParameters: '${n}' has shape [${t.shape}] not [${cur.shape}]`);
      this.p[n] = t;
    }
  }
  trainableNames(): string[] {
    return Object.keys(this.p);
  }
  logits(inputs: Tensor, opts: ForwardOptions = {}): Tensor {
    const [B, T] = inputs.shape as [number, number];
    const e = take(this.p["wte.weight"]!, reshape(inputs, [-1]), 0);
    const h = tanh(dropout(e, this.config.dropout, opts.key ?? null, opts.training ?? false));
    const out = add(matmul(h, this.p["head.weight"]!), this.p["head.bias"]!);
    return reshape(out, [B, T, this.config.vocabSize]);
  }
  loss(inputs: Tensor, targets: Tensor, opts: ForwardOptions = {}): Tensor {
    this.calls++;
    const l = crossEntropy(this.logits(inputs, opts), targets);
    if (this.nanAfterCalls !== null && this.calls > this.nanAfterCalls) return l.mul(Number.NaN);
    return l;
  }
  stateDict(): Record<string, Tensor> {
    return this.parameters();
  }
  loadStateDict(sd: Record<string, Tensor>): void {
    const want = Object.keys(this.p).sort().join(",");
    const got = Object.keys(sd).sort().join(",");
    if (want !== got) throw new Error(`TinyLM.loadStateDict: keys ${got}; expected ${want}`);
    this.setParameters(sd);
  }
}

export const tinyConfig = (over: Partial<TinyConfig> = {}): TinyConfig => ({
  kind: "tiny",
  vocabSize: 32,
  nEmbd: 8,
  blockSize: 64,
  nLayer: 1,
  dropout: 0.1,
  dtype: "float32",
  ...over,
});

/** A ModelBackend building TinyLM models (discretise / LoRA unsupported). */
export const tinyBackend: ModelBackend = {
  resolveConfig: (section) => tinyConfig(section as Partial<TinyConfig>),
  create: (config, key) => new TinyLM(config as unknown as TinyConfig, key),
  fromState: (config, state) => {
    const m = new TinyLM(config as TinyConfig, random.key(0));
    m.loadStateDict(state);
    return m;
  },
  discretize: () => {
    throw new Error("tinyBackend: discretize is not supported");
  },
  applyLoRA: () => {
    throw new Error("tinyBackend: LoRA is not supported");
  },
};

/** A deterministic token stream with learnable structure: a noisy cycle through the vocabulary. */
export function syntheticTokens(n: number, vocab: number, seed = 1): Uint16Array {
  const out = new Uint16Array(n);
  let s = seed >>> 0;
  let cur = 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    cur = s % 10 === 0 ? s % vocab : (cur * 7 + 3) % vocab;
    out[i] = cur;
  }
  return out;
}
