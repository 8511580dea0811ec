/** Turns a Butcher tableau into a Solver. */
import type { Tensor } from "@qkvflow/autograd";
import { combine, hostIncrement } from "./state.js";
import { polyEval, validateTableau, type ButcherTableau } from "./tableau.js";
import type { FlatField, Solver, StepResult } from "./types.js";

/** A Solver for an explicit Runge–Kutta method given as a Butcher tableau (validated here). */
export function explicitRK(tableau: ButcherTableau): Solver {
  const T = validateTableau(tableau, "explicitRK");
  const s = T.stages;
  const interpPolys = T.interp ? T.interp.map((p) => [0, ...p]) : null;
  return {
    name: T.name,
    order: T.order,
    errorOrder: T.bErr ? T.errorOrder : undefined,
    adaptive: T.bErr !== null,
    fsal: T.fsal,
    dense: T.interp !== null,
    step(f: FlatField, t: number, y: readonly Tensor[], h: number, f0: readonly Tensor[] | null, needError = true): StepResult {
      let nfev = 0;
      const ks: Tensor[][] = [];
      if (f0) ks.push([...f0]);
      else {
        ks.push(f(t, y));
        nfev++;
      }
      let y1: Tensor[] | null = null;
      for (let i = 1; i < s; i++) {
        const yi = combine(y, h, T.a[i], ks);
        if (T.fsal && i === s - 1) y1 = yi;
        ks.push(f(t + T.c[i] * h, yi));
        nfev++;
      }
      if (!y1) y1 = combine(y, h, T.b, ks);
      const bErr = T.bErr;
      // the error estimate only feeds the controller: computed from the values, outside autodiff
      const err = needError && bErr ? hostIncrement(h, bErr, ks) : null;
      const res: StepResult = { y1, err, f0: ks[0], f1: T.fsal ? ks[s - 1] : null, nfev };
      if (interpPolys) {
        res.interpolate = (theta: number) =>
          combine(
            y,
            h,
            interpPolys.map((p) => polyEval(p, theta)),
            ks,
          );
      }
      return res;
    },
  };
}
