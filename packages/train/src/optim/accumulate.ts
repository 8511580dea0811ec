/**
 * Gradient accumulation on the model's backend: the losses and gradients of the micro-batches of one update
 * are summed as tensors (in float64 where the backend has it, see `updateDType`), and `mean()` divides by
 * their number and rounds back to each gradient's dtype. Only the mean loss comes back to the host, as one
 * number. With a single micro-batch the gradients pass through untouched. On the CPU backend (host memory)
 * the sums are one fused loop per gradient into float64 arrays instead of a cast and an add per micro-batch
 * (`kernel: 'ops'` uses the tensor ops there too); both give the same bits.
 *
 * The sums are elementwise in micro-batch order, so the mean is what a float64 loop `acc[i] += g_j[i]` followed
 * by `acc[i] / count` (rounded to the gradient's dtype) gives, bit for bit (up to the sign of an all-zero sum).
 */
import { add, cast, div, tensor, tidy, type DType, type Tensor } from "@qkvflow/autograd";
import { updateDType, type OptimizerKernel, type UpdatePrecision } from "./adamw.js";
import { hostMemoryBackend } from "./host-kernels.js";

/** Mean loss and gradients of the micro-batches added since the last `mean()`. */
export interface AccumulatedGradients {
  /** Mean loss (host number). */
  loss: number;
  /** Mean gradient per name, in the dtype of the gradients added. */
  grads: Record<string, Tensor>;
  /** Number of micro-batches averaged. */
  count: number;
}

/** Running sums of two or more micro-batches. */
interface Sums {
  add(loss: Tensor, grads: Record<string, Tensor>): void;
  mean(count: number, dtypes: Record<string, DType>): { loss: number; grads: Record<string, Tensor> };
}

/** Sums as tensors on the backend (float64 where it has it); every tensor held belongs to the accumulator. */
class TensorSums implements Sums {
  private loss: Tensor;
  private grads: Record<string, Tensor>;

  constructor(
    private readonly precision: UpdatePrecision,
    first: { loss: Tensor; grads: Record<string, Tensor> },
    loss: Tensor,
    grads: Record<string, Tensor>,
  ) {
    // the first sum is a new tensor, so the accumulator never disposes a caller's tensor
    this.loss = tidy(() => add(this.widen(first.loss), this.widen(loss)));
    this.grads = Object.fromEntries(
      Object.entries(first.grads).map(([k, g]) => [k, tidy(() => add(this.widen(g), this.widen(grads[k]!)))]),
    );
  }

  add(loss: Tensor, grads: Record<string, Tensor>): void {
    const prevLoss = this.loss;
    this.loss = tidy(() => add(prevLoss, this.widen(loss)));
    prevLoss.dispose();
    for (const [k, g] of Object.entries(grads)) {
      const prev = this.grads[k]!;
      this.grads[k] = tidy(() => add(prev, this.widen(g)));
      prev.dispose();
    }
  }

  mean(count: number, dtypes: Record<string, DType>): { loss: number; grads: Record<string, Tensor> } {
    const loss = this.loss.item() / count;
    this.loss.dispose();
    const grads: Record<string, Tensor> = {};
    for (const [k, s] of Object.entries(this.grads)) {
      grads[k] = tidy(() => cast(div(s, count), dtypes[k]!));
      s.dispose();
    }
    return { loss, grads };
  }

  private widen(t: Tensor): Tensor {
    return cast(t, updateDType(t.dtype, this.precision));
  }
}

/** Sums as float64 arrays in host memory (the CPU backend), one loop per gradient and micro-batch. */
class HostSums implements Sums {
  private loss: number;
  private readonly grads: Record<string, { acc: Float64Array; shape: number[] }> = {};

  constructor(first: { loss: Tensor; grads: Record<string, Tensor> }, loss: Tensor, grads: Record<string, Tensor>) {
    this.loss = first.loss.item();
    for (const [k, g] of Object.entries(first.grads)) this.grads[k] = { acc: Float64Array.from(g.data()), shape: [...g.shape] };
    this.add(loss, grads);
  }

  add(loss: Tensor, grads: Record<string, Tensor>): void {
    this.loss += loss.item();
    for (const [k, g] of Object.entries(grads)) {
      const acc = this.grads[k]!.acc;
      const d = g.data();
      for (let i = 0; i < acc.length; i++) acc[i] += d[i]!;
    }
  }

  mean(count: number, dtypes: Record<string, DType>): { loss: number; grads: Record<string, Tensor> } {
    const grads: Record<string, Tensor> = {};
    for (const [k, { acc, shape }] of Object.entries(this.grads)) {
      const dtype = dtypes[k]!;
      const out = dtype === "float64" ? new Float64Array(acc.length) : new Float32Array(acc.length);
      for (let i = 0; i < acc.length; i++) out[i] = acc[i]! / count;
      grads[k] = tensor(out, { shape, dtype });
    }
    return { loss: this.loss / count, grads };
  }
}

/** Sums micro-batch losses and gradients on the backend (see the module comment). */
export class GradientAccumulator {
  private first: { loss: Tensor; grads: Record<string, Tensor> } | null = null;
  private sums: Sums | null = null;
  private dtypes: Record<string, DType> = {};
  private n = 0;

  constructor(
    readonly precision: UpdatePrecision = "auto",
    readonly kernel: OptimizerKernel = "auto",
  ) {}

  /** Number of micro-batches added since the last `mean()`. */
  get count(): number {
    return this.n;
  }

  /** Adds one micro-batch's scalar loss and gradients (the same names every time). */
  add(loss: Tensor, grads: Record<string, Tensor>): void {
    if (loss.size !== 1) throw new Error(`GradientAccumulator.add: the loss has shape [${loss.shape.join(", ")}]; expected a scalar`);
    if (this.n === 0) {
      this.first = { loss, grads };
      this.dtypes = Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, g.dtype]));
      this.n = 1;
      return;
    }
    const want = Object.keys(this.dtypes);
    const got = Object.keys(grads);
    if (want.length !== got.length || got.some((k) => !(k in this.dtypes))) {
      throw new Error(
        `GradientAccumulator.add: gradients for ${got.join(", ")}; expected the names of the first micro-batch (${want.join(", ")})`,
      );
    }
    if (this.sums === null) {
      const host = this.kernel === "auto" && this.precision === "auto" && hostMemoryBackend();
      this.sums = host ? new HostSums(this.first!, loss, grads) : new TensorSums(this.precision, this.first!, loss, grads);
      this.first = null;
    } else this.sums.add(loss, grads);
    this.n++;
  }

  /** The mean loss (read back) and mean gradients of what was added; starts over. */
  mean(): AccumulatedGradients {
    const count = this.n;
    if (count === 0) throw new Error("GradientAccumulator.mean: nothing was added; expected at least one micro-batch");
    this.n = 0;
    if (count === 1) {
      const f = this.first!;
      this.first = null;
      return { loss: f.loss.item(), grads: f.grads, count };
    }
    const r = this.sums!.mean(count, this.dtypes);
    this.sums = null;
    return { ...r, count };
  }
}
