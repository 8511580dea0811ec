/**
 * What the browser example computes, shared with the test that checks it: the micro DiffEqFormer preset
 * built from a fixed key, applied to fixed token ids.
 */

/** Preset name, RNG seed and input size of the demo forward pass. */
export const DEMO = { preset: "diffeqformer-micro", seed: 7, batch: 1, length: 12 } as const;

/** The demo's int32 token ids [batch, length] (flat), in [0, vocabSize). */
export function demoTokens(vocabSize: number): Int32Array {
  return Int32Array.from({ length: DEMO.batch * DEMO.length }, (_, i) => (i * 11 + 5) % vocabSize);
}

/** What the page publishes as `window.__qkvflow` when it is done. */
export interface DemoResult {
  done: true;
  ok: boolean;
  error?: string;
  /** The gpu.js mode that ran (the backend reports it; a mismatch with the requested mode is an error). */
  mode?: string;
  renderer?: string;
  shape?: number[];
  logits?: number[];
  ms?: number;
}
