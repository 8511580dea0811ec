/** The view of a language model the trainer works with: the @qkvflow/models `LanguageModel` contract. */
import type { ForwardOptions, LanguageModel } from "@qkvflow/models";

export type { ForwardOptions };

/**
 * A model the trainer can train: the `LanguageModel` contract (named parameters swapped in by name, a mean
 * cross-entropy loss over int32 targets with −100 ignored, next-token logits, a state dict) with any config, so
 * that models from elsewhere (or a test's tiny model) fit as well.
 */
export type TrainableModel = Omit<LanguageModel, "config" | "loadStateDict"> & {
  readonly config: unknown;
  loadStateDict(sd: Parameters<LanguageModel["loadStateDict"]>[0], opts?: { strict?: boolean }): unknown;
};

/** Target id ignored by the loss (padding of the last evaluation window). */
export const IGNORE_INDEX = -100;
