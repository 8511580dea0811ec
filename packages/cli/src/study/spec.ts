/**
 * Sizes of the study: `smoke` (the test suite, well under two minutes), `cpu` (the numbers in docs/results.md,
 * about an hour on two cores) and `full` (the paper's tiny-to-small configurations, for a machine with the time).
 * Every size runs the same code; only these numbers differ.
 */

/** Study sizes. */
export const STUDY_SIZES = ["smoke", "cpu", "full"] as const;
export type StudySize = (typeof STUDY_SIZES)[number];

/** Width of the models compared (shared by GPT-2 and DiffEqFormer). */
export interface Width {
  nEmbd: number;
  nHead: number;
  /** DiffEqFormer's hypernetwork width d_emb. */
  timeEmbedDim: number;
  /** DiffEqFormer's sinusoidal embedding size S. */
  sinusoidalDim: number;
}

/** Training schedule of one run. */
export interface Schedule {
  steps: number;
  batchSize: number;
  /** Validation evaluation every N updates (and after the last). */
  evalEvery: number;
  /** Batches of the validation split per evaluation (null: the whole split). */
  evalBatches: number | null;
  checkpointEvery: number;
}

/** Everything a size fixes. */
export interface StudySpec {
  size: StudySize;
  seeds: number;
  width: Width;
  /** Depth of the main comparison (GPT layers = DiffEqFormer Euler steps). */
  layers: number;
  seqLen: number;
  evalBatchSize: number;
  /** Batches of each test split scored for the reported perplexities (null: the whole split). */
  testBatches: number | null;
  lr: number;
  beta2: number;
  warmupRatio: number;
  main: Schedule;
  spectra: { times: number };
  /** Corpus sequences for the DiffEqFormer and (fewer, for comparison) for GPT-2 (0: none). */
  lyapunov: { sentences: number; sequences: number; gptSequences: number; maxTokens: number };
  depth: {
    pretrainLayers: number;
    layers: number[];
    pretrain: Schedule;
    finetune: Schedule;
    gptLayers: number[];
    loraRank: number;
    /** The paper's LoRA scale alpha / r = 8 / 200 = 0.04. */
    loraScale: number;
    loraInitStd: number;
    scratchLayers: number;
  };
  beyond: {
    euler: number[];
    midpoint: number[];
    rk4: number[];
    dopri5: number[];
    /** Random-grid DiffEqFormers trained (seeds 0..n-1, same schedule as the main comparison). */
    seeds: number;
    zeroShot: number[];
  };
}

const SMOKE: StudySpec = {
  size: "smoke",
  seeds: 2,
  width: { nEmbd: 16, nHead: 2, timeEmbedDim: 4, sinusoidalDim: 8 },
  layers: 3,
  seqLen: 16,
  evalBatchSize: 4,
  testBatches: 2,
  lr: 1e-2,
  beta2: 0.95,
  warmupRatio: 0.1,
  main: { steps: 4, batchSize: 2, evalEvery: 2, evalBatches: 2, checkpointEvery: 2 },
  spectra: { times: 5 },
  lyapunov: { sentences: 2, sequences: 4, gptSequences: 3, maxTokens: 6 },
  depth: {
    pretrainLayers: 4,
    layers: [2, 4, 8],
    pretrain: { steps: 4, batchSize: 2, evalEvery: 0, evalBatches: 2, checkpointEvery: 2 },
    finetune: { steps: 2, batchSize: 2, evalEvery: 0, evalBatches: 2, checkpointEvery: 0 },
    gptLayers: [2, 4],
    loraRank: 4,
    loraScale: 0.04,
    loraInitStd: 0.02,
    scratchLayers: 2,
  },
  beyond: { euler: [1, 3], midpoint: [1, 2], rk4: [1], dopri5: [1e-2], seeds: 1, zeroShot: [1, 3, 6] },
};

const CPU: StudySpec = {
  size: "cpu",
  seeds: 3,
  width: { nEmbd: 64, nHead: 4, timeEmbedDim: 8, sinusoidalDim: 16 },
  layers: 4,
  seqLen: 64,
  evalBatchSize: 16,
  testBatches: 12,
  lr: 1e-2,
  beta2: 0.95,
  warmupRatio: 0.1,
  main: { steps: 100, batchSize: 8, evalEvery: 25, evalBatches: 6, checkpointEvery: 50 },
  spectra: { times: 11 },
  lyapunov: { sentences: 4, sequences: 200, gptSequences: 40, maxTokens: 10 },
  depth: {
    pretrainLayers: 8,
    layers: [4, 6, 8, 12, 16],
    pretrain: { steps: 100, batchSize: 8, evalEvery: 0, evalBatches: 6, checkpointEvery: 50 },
    finetune: { steps: 20, batchSize: 8, evalEvery: 0, evalBatches: null, checkpointEvery: 0 },
    gptLayers: [4, 8],
    loraRank: 16,
    loraScale: 0.04,
    loraInitStd: 0.02,
    scratchLayers: 4,
  },
  beyond: { euler: [1, 2, 4, 8, 16], midpoint: [1, 2, 4], rk4: [1, 2], dopri5: [1e-1, 1e-2], seeds: 2, zeroShot: [1, 2, 3, 4, 6, 8, 12] },
};

const FULL: StudySpec = {
  size: "full",
  seeds: 3,
  width: { nEmbd: 128, nHead: 4, timeEmbedDim: 20, sinusoidalDim: 16 },
  layers: 6,
  seqLen: 128,
  evalBatchSize: 16,
  testBatches: null,
  lr: 6e-4,
  beta2: 0.999,
  warmupRatio: 0.01,
  main: { steps: 10000, batchSize: 16, evalEvery: 500, evalBatches: 64, checkpointEvery: 1000 },
  spectra: { times: 21 },
  lyapunov: { sentences: 8, sequences: 500, gptSequences: 500, maxTokens: 32 },
  depth: {
    pretrainLayers: 8,
    layers: [4, 6, 8, 12, 16],
    pretrain: { steps: 10000, batchSize: 16, evalEvery: 0, evalBatches: 64, checkpointEvery: 1000 },
    finetune: { steps: 2000, batchSize: 16, evalEvery: 0, evalBatches: null, checkpointEvery: 500 },
    gptLayers: [4, 6, 8, 12, 16],
    loraRank: 32,
    loraScale: 0.04,
    loraInitStd: 0.02,
    scratchLayers: 8,
  },
  beyond: {
    euler: [1, 2, 4, 8, 16, 32],
    midpoint: [1, 2, 4, 8, 16],
    rk4: [1, 2, 4, 8],
    dopri5: [1e-1, 1e-2, 1e-3, 1e-4],
    seeds: 3,
    zeroShot: [1, 2, 3, 4, 6, 8, 12, 16, 24],
  },
};

const SPECS: Record<StudySize, StudySpec> = { smoke: SMOKE, cpu: CPU, full: FULL };

/** The specification of a size (a deep copy), with the number of seeds optionally replaced. */
export function studySpec(size: string, seeds?: number): StudySpec {
  if (!(STUDY_SIZES as readonly string[]).includes(size)) {
    throw new Error(`study: --size is '${size}'; expected one of ${STUDY_SIZES.join(", ")}`);
  }
  const s = structuredClone(SPECS[size as StudySize]);
  if (seeds !== undefined) {
    if (!Number.isInteger(seeds) || seeds < 1) throw new Error(`study: --seeds is ${seeds}; expected an integer >= 1`);
    s.seeds = seeds;
    s.beyond.seeds = Math.min(s.beyond.seeds, seeds);
  }
  return s;
}
