/** The view of a language model the trainer works with (the @qkvflow/models `LanguageModel` contract). */
import type { Key, Tensor } from '@qkvflow/autograd';

/** Options of a forward pass. */
export interface ForwardOptions {
  key?: Key;
  training?: boolean;
}

/**
 * A model the trainer can train: named parameters swapped in by name, a mean cross-entropy loss over
 * int32 targets (targets equal to −100 are ignored), next-token logits and a state dict.
 */
export interface TrainableModel {
  readonly config: unknown;
  parameters(): Record<string, Tensor>;
  setParameters(p: Record<string, Tensor>): void;
  trainableNames(): string[];
  logits(inputs: Tensor, opts?: ForwardOptions): Tensor;
  loss(inputs: Tensor, targets: Tensor, opts?: ForwardOptions): Tensor;
  stateDict(): Record<string, Tensor>;
  loadStateDict(sd: Record<string, Tensor>, opts?: { strict?: boolean }): unknown;
}

/** Target id ignored by the loss (padding of the last evaluation window). */
export const IGNORE_INDEX = -100;
