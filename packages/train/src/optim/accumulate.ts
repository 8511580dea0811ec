/**
 * Gradient accumulation on the model's backend: the losses and gradients of the micro-batches of one update
 * are summed as tensors (in float64 where the backend has it, see `updateDType`), and `mean()` divides by
 * their number and rounds back to each gradient's dtype. Only the mean loss comes back to the host, as one
 * number. With a single micro-batch the gradients pass through untouched.
 *
 * The sums are elementwise in micro-batch order, so the mean is what a float64 loop `acc[i] += g_j[i]` followed
 * by `acc[i] / count` (rounded to the gradient's dtype) gives, bit for bit (up to the sign of an all-zero sum).
 */
import { add, cast, div, tidy, type Tensor } from '@qkvflow/autograd';
import { updateDType, type UpdatePrecision } from './adamw.js';

/** Mean loss and gradients of the micro-batches added since the last `mean()`. */
export interface AccumulatedGradients {
  /** Mean loss (host number). */
  loss: number;
  /** Mean gradient per name, in the dtype of the gradients added. */
  grads: Record<string, Tensor>;
  /** Number of micro-batches averaged. */
  count: number;
}

/** Sums micro-batch losses and gradients as tensors (see the module comment). */
export class GradientAccumulator {
  private first: { loss: Tensor; grads: Record<string, Tensor> } | null = null;
  private lossSum: Tensor | null = null;
  private sums: Record<string, Tensor> | null = null;
  private dtypes: Record<string, Tensor['dtype']> = {};
  private n = 0;

  constructor(readonly precision: UpdatePrecision = 'auto') {}

  /** Number of micro-batches added since the last `mean()`. */
  get count(): number {
    return this.n;
  }

  /** Adds one micro-batch's scalar loss and gradients (the same names every time). */
  add(loss: Tensor, grads: Record<string, Tensor>): void {
    if (loss.size !== 1) throw new Error(`GradientAccumulator.add: the loss has shape [${loss.shape.join(', ')}]; expected a scalar`);
    if (this.n === 0) {
      this.first = { loss, grads };
      this.dtypes = Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, g.dtype]));
      this.n = 1;
      return;
    }
    const want = Object.keys(this.dtypes);
    const got = Object.keys(grads);
    if (want.length !== got.length || got.some((k) => !(k in this.dtypes))) {
      throw new Error(`GradientAccumulator.add: gradients for ${got.join(', ')}; expected the names of the first micro-batch (${want.join(', ')})`);
    }
    if (this.n === 1) {
      // the first sum is a new tensor, so every tensor held in `sums` belongs to the accumulator
      const f = this.first!;
      this.first = null;
      this.lossSum = tidy(() => add(this.widen(f.loss), this.widen(loss)));
      this.sums = Object.fromEntries(Object.entries(f.grads).map(([k, g]) => [k, tidy(() => add(this.widen(g), this.widen(grads[k]!)))]));
    } else {
      const prevLoss = this.lossSum!;
      this.lossSum = tidy(() => add(prevLoss, this.widen(loss)));
      prevLoss.dispose();
      for (const [k, g] of Object.entries(grads)) {
        const prev = this.sums![k]!;
        this.sums![k] = tidy(() => add(prev, this.widen(g)));
        prev.dispose();
      }
    }
    this.n++;
  }

  /** The mean loss (read back) and mean gradients of what was added; starts over. */
  mean(): AccumulatedGradients {
    const count = this.n;
    if (count === 0) throw new Error('GradientAccumulator.mean: nothing was added; expected at least one micro-batch');
    this.n = 0;
    if (count === 1) {
      const f = this.first!;
      this.first = null;
      return { loss: f.loss.item(), grads: f.grads, count };
    }
    const loss = this.lossSum!.item() / count;
    const grads: Record<string, Tensor> = {};
    for (const [k, s] of Object.entries(this.sums!)) {
      grads[k] = tidy(() => cast(div(s, count), this.dtypes[k]!));
      s.dispose();
    }
    this.lossSum!.dispose();
    this.lossSum = null;
    this.sums = null;
    return { loss, grads, count };
  }

  private widen(t: Tensor): Tensor {
    return cast(t, updateDType(t.dtype, this.precision));
  }
}
