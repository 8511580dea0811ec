/** Turns a Butcher tableau into a Solver: one step written once over a vector space (space.ts). */
import type { Tensor } from "@qkvflow/autograd";
import { tensorSpace } from "./space.js";
import { polyEval, validateTableau, type ButcherTableau, type NormalizedTableau } from "./tableau.js";
import type { FlatField, Solver, StepResult, VectorSpace } from "./types.js";

/** A step with the method's continuous extension (a class, so a step allocates no closure). */
class DenseRKStep<V> implements StepResult<V> {
  /** f evaluations so far: the step's, plus the extra dense stages once an output needed them. */
  nfev: number;
  // the stage derivatives, then the extra dense stages (evaluated on the first interpolation)
  private ksAll: V[] | null = null;

  constructor(
    readonly y1: V,
    readonly err: V | null,
    readonly err2: V | null,
    readonly f0: V | null,
    readonly f1: V | null,
    nfev: number,
    private readonly space: VectorSpace<V>,
    private readonly f: (t: number, y: V) => V,
    private readonly t: number,
    private readonly y: V,
    private readonly h: number,
    private readonly ks: V[],
    private readonly polys: readonly (readonly number[])[],
    private readonly extra: NormalizedTableau["denseStages"],
    readonly temporaries: readonly V[] | undefined,
  ) {
    this.nfev = nfev;
  }

  interpolate(theta: number): V {
    const w = new Array<number>(this.polys.length);
    for (let i = 0; i < w.length; i++) w[i] = polyEval(this.polys[i], theta);
    return this.space.combine(this.y, this.h, w, this.stagesForOutput());
  }

  private stagesForOutput(): V[] {
    if (this.ksAll) return this.ksAll;
    const { extra, space, y, h, t } = this;
    if (!extra) return (this.ksAll = this.ks);
    const all = this.ks.slice();
    for (let m = 0; m < extra.c.length; m++) {
      all.push(this.f(t + extra.c[m] * h, space.combine(y, h, extra.a[m], all)));
      this.nfev++;
    }
    return (this.ksAll = all);
  }
}

/** A Solver for an explicit Runge–Kutta method given as a Butcher tableau (validated here). */
export function explicitRK(tableau: ButcherTableau): Solver {
  const T = validateTableau(tableau, "explicitRK");
  const s = T.stages;
  const NZ = T.nonzero;
  const interpPolys = T.interp ? T.interp.map((p) => [0, ...p]) : null;
  const stepOn = <V>(
    space: VectorSpace<V>,
    f: (t: number, y: V) => V,
    t: number,
    y: V,
    h: number,
    f0: V | null,
    needError = true,
  ): StepResult<V> => {
    let nfev = 0;
    const ks: V[] = new Array<V>(s);
    if (f0) ks[0] = f0;
    else {
      ks[0] = f(t, y);
      nfev++;
    }
    let y1: V | null = null;
    for (let i = 1; i < s; i++) {
      const last = T.fsal && i === s - 1;
      // a stage argument is only read by f (a reusable buffer on plain arrays); the FSAL one is y1 itself
      const yi = last || !space.stage ? space.combine(y, h, T.a[i], ks, NZ.a[i]) : space.stage(y, h, T.a[i], ks, NZ.a[i]);
      if (last) y1 = yi;
      ks[i] = f(t + T.c[i] * h, yi);
      nfev++;
    }
    if (!y1) y1 = space.combine(y, h, T.b, ks, NZ.b);
    const bErr = T.bErr;
    // the error estimate only feeds the controller: computed from the values, outside autodiff
    const err = needError && bErr ? space.hostIncrement(h, bErr, ks, NZ.bErr ?? undefined) : null;
    const err2 = needError && T.bErr2 ? space.hostIncrement(h, T.bErr2, ks, NZ.bErr2 ?? undefined) : null;
    // the stage derivatives other than f0 and the FSAL one are not kept after the step
    const temporaries = space.release ? ks : undefined;
    const f1 = T.fsal ? ks[s - 1] : null;
    if (interpPolys) return new DenseRKStep(y1, err, err2, ks[0], f1, nfev, space, f, t, y, h, ks, interpPolys, T.denseStages, temporaries);
    return { y1, err, err2, f0: ks[0], f1, nfev, temporaries };
  };
  return {
    name: T.name,
    order: T.order,
    errorOrder: T.bErr ? T.errorOrder : undefined,
    adaptive: T.bErr !== null,
    fsal: T.fsal,
    dense: T.interp !== null,
    step(f: FlatField, t: number, y: readonly Tensor[], h: number, f0: readonly Tensor[] | null, needError = true): StepResult {
      return stepOn(tensorSpace, f as (t: number, y: Tensor[]) => Tensor[], t, [...y], h, f0 ? [...f0] : null, needError);
    },
    stepOn,
  };
}
