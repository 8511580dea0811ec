/**
 * Learning-rate schedules, step-indexed as optax / Levanter do: the update with index `step`
 * (0-based, the number of updates already applied) uses `lr(step)`.
 *
 * `warmup + cosine` (the paper's schedule, Levanter v1.1 `OptimizerConfig`):
 *   W = floor(warmupRatio · totalSteps), D = totalSteps − W (decay steps)
 *   step < W:  lr · step / W                                   (linear from 0; the first update has lr 0)
 *   step ≥ W:  lr · ((1 − α) · ½(1 + cos(π · min(step − W, D) / D)) + α),  α = minLrRatio
 * (optax `join_schedules([linear_schedule(0, lr, W), cosine_decay_schedule(lr, D, α)], [W])`), so the
 * rate falls from `lr` at step W towards `minLrRatio · lr`, reached at step totalSteps (one past the last
 * update). `linear` decays linearly over the same span; `constant` keeps `lr` after the warmup.
 */

/** Schedule shapes after the warmup. */
export type ScheduleKind = "cosine" | "linear" | "constant";

/** The schedule kinds accepted by `makeSchedule`. */
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ["cosine", "linear", "constant"];

/** Options of a warmup-then-decay schedule. */
export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Total number of updates of the run. */
  totalSteps: number;
  /** Fraction of totalSteps spent warming up linearly from 0 (default 0.01). */
  warmupRatio?: number;
  /** Final learning rate as a fraction of `lr` (default 0.1). */
  minLrRatio?: number;
  /** Decay after the warmup (default cosine). */
  kind?: ScheduleKind;
}

/** A learning rate per 0-based update index. */
export type Schedule = (step: number) => number;

/** Number of warmup updates: floor(warmupRatio · totalSteps). */
export function warmupSteps(totalSteps: number, warmupRatio: number): number {
  return Math.floor(warmupRatio * totalSteps);
}

/** Builds the warmup + cosine / linear / constant schedule described in the module comment. */
export function makeSchedule(opts: ScheduleOptions): Schedule {
  const who = "makeSchedule";
  const { lr, totalSteps } = opts;
  const warmupRatio = opts.warmupRatio ?? 0.01;
  const alpha = opts.minLrRatio ?? 0.1;
  const kind = opts.kind ?? "cosine";
  if (!(Number.isFinite(lr) && lr >= 0)) throw new Error(`${who}: lr must be a finite number >= 0, got ${lr}`);
  if (!Number.isInteger(totalSteps) || totalSteps <= 0) throw new Error(`${who}: totalSteps must be a positive integer, got ${totalSteps}`);
  if (!(warmupRatio >= 0 && warmupRatio <= 1)) throw new Error(`${who}: warmupRatio must be in [0, 1], got ${warmupRatio}`);
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`${who}: minLrRatio must be in [0, 1], got ${alpha}`);
  if (!SCHEDULE_KINDS.includes(kind))
    throw new Error(`${who}: kind '${String(kind)}' is unknown; expected one of ${SCHEDULE_KINDS.join(", ")}`);
  const W = warmupSteps(totalSteps, warmupRatio);
  const D = totalSteps - W;
  return (step: number): number => {
    if (!Number.isInteger(step) || step < 0) throw new Error(`schedule: step must be a non-negative integer, got ${step}`);
    if (step < W) return (lr * step) / W;
    if (kind === "constant" || D <= 0) return lr;
    const frac = Math.min(step - W, D) / D;
    const shape = kind === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * frac)) : 1 - frac;
    return lr * ((1 - alpha) * shape + alpha);
  };
}
