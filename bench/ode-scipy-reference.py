"""Reference figures from scipy's solve_ivp for the ODE tests and benchmarks of @qkvflow/ode.

Prints, as JSON, the evaluation counts of scipy's RK45 / RK23 / DOP853 (Dormand-Prince 5(4), Bogacki-Shampine 3(2)
and Dormand-Prince 8(5,3), with the I controller, no step growth after a rejection and Hairer's first-step
selection) on the problems of
packages/ode/test, and tight-tolerance Radau reference solutions of the stiff test problems (Robertson's
kinetics, Van der Pol with mu = 1000). The tests record these numbers as published reference values.
Run: python3 bench/ode-scipy-reference.py
With --bench, instead times scipy's Radau and BDF on the stiff problems at the tolerances of bench/ode.bench.ts
(which runs it as its peer in the same run) and prints counts, errors against the references and ms per solve.
"""
import json
import sys
import time

import numpy as np
import scipy
from scipy.integrate import solve_ivp

MU = 0.012277471
T_ARENSTORF = 17.0652165601579625588917206249
Y_ARENSTORF = [0.994, 0.0, 0.0, -2.00158510637908252240537862224]


def arenstorf(_t, y):
    mup = 1 - MU
    d1 = ((y[0] + MU) ** 2 + y[1] ** 2) ** 1.5
    d2 = ((y[0] - mup) ** 2 + y[1] ** 2) ** 1.5
    return [
        y[2],
        y[3],
        y[0] + 2 * y[3] - mup * (y[0] + MU) / d1 - MU * (y[0] - mup) / d2,
        y[1] - 2 * y[2] - mup * y[1] / d1 - MU * y[1] / d2,
    ]


def oscillator(_t, y):  # x'' = -4x
    return [y[1], -4.0 * y[0]]


def counts(method, f, t1, y0, tol):
    s = solve_ivp(f, (0.0, t1), y0, method=method, rtol=tol, atol=tol)
    per_step = {"RK45": 6, "RK23": 3, "DOP853": 12}[method]
    attempts = (s.nfev - 2) // per_step
    accepted = len(s.t) - 1
    return {"nfev": int(s.nfev), "accepted": accepted, "rejected": attempts - accepted, "y": s.y[:, -1].tolist()}


def robertson(_t, y):
    return [-0.04 * y[0] + 1e4 * y[1] * y[2], 0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2, 3e7 * y[1] ** 2]


def robertson_jac(_t, y):
    return [[-0.04, 1e4 * y[2], 1e4 * y[1]], [0.04, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]], [0.0, 6e7 * y[1], 0.0]]


VDP_MU = 1000.0


def vdp(_t, y):
    return [y[1], VDP_MU * ((1 - y[0] ** 2) * y[1]) - y[0]]


def vdp_jac(_t, y):
    return [[0.0, 1.0], [-2 * VDP_MU * y[0] * y[1] - 1.0, VDP_MU * (1 - y[0] ** 2)]]


ROB_T = [0.0, 40.0, 4e5, 1e11]
VDP_T = [0.0, 1000.0, 3000.0]


def bench():
    ref_rob = [[0.7158270687193865, 9.185534764556822e-06, 0.28416374574584735],
               [0.004938274520980869, 1.984994087954802e-08, 0.9950617056290774],
               [2.0833401438845025e-08, 8.333360747067619e-14, 0.9999999791665148]]
    ref_vdp = [-1.8636462548108763, -1.5106069367599941]
    cases = [
        ("robertson", robertson, robertson_jac, [1.0, 0.0, 0.0], ROB_T, 1e-6, [1e-10, 1e-14, 1e-10]),
        ("vdp1000", vdp, vdp_jac, [2.0, 0.0], VDP_T, 1e-6, 1e-6),
    ]
    rows = []
    for name, f, jac, y0, ts, rtol, atol in cases:
        for method in ("Radau", "BDF"):
            def solve():
                return solve_ivp(f, (ts[0], ts[-1]), y0, method=method, rtol=rtol, atol=atol, jac=jac, t_eval=ts)
            s = solve()
            if name == "robertson":
                err = max(abs(s.y[k, i + 1] - ref_rob[i][k]) / abs(ref_rob[i][k]) for i in range(3) for k in range(3))
            else:
                err = max(abs(s.y[0, i + 1] - ref_vdp[i]) for i in range(2))
            reps, t0 = 0, time.perf_counter()
            while reps < 3 or time.perf_counter() - t0 < 1.0:
                solve()
                reps += 1
            ms = (time.perf_counter() - t0) * 1000 / reps
            rows.append({"problem": name, "method": method, "nfev": int(s.nfev), "njev": int(s.njev), "nlu": int(s.nlu),
                         "error": err, "ms": ms,
                         "success": bool(s.success)})
    print(json.dumps({"scipy": scipy.__version__, "rows": rows}))


if "--bench" in sys.argv:
    bench()
    sys.exit(0)

out = {"scipy": scipy.__version__, "numpy": np.__version__, "explicit": {}, "stiff": {}}
for tol in (1e-4, 1e-6):
    out["explicit"][f"oscillator RK45 {tol:g}"] = counts("RK45", oscillator, 10.0, [1.0, 0.5], tol)
    out["explicit"][f"oscillator RK23 {tol:g}"] = counts("RK23", oscillator, 10.0, [1.0, 0.5], tol)
for tol in (1e-6, 1e-9):
    out["explicit"][f"arenstorf RK45 {tol:g}"] = counts("RK45", arenstorf, T_ARENSTORF, Y_ARENSTORF, tol)
    out["explicit"][f"arenstorf DOP853 {tol:g}"] = counts("DOP853", arenstorf, T_ARENSTORF, Y_ARENSTORF, tol)
    # the dense output at ten interior times (scipy evaluates the interpolant for the end points too)
    s = solve_ivp(arenstorf, (0.0, T_ARENSTORF), Y_ARENSTORF, method="DOP853", rtol=tol, atol=tol,
                  t_eval=np.linspace(0.0, T_ARENSTORF, 11))
    out["explicit"][f"arenstorf DOP853 {tol:g} dense at i*T/10"] = {"y": s.y.T.tolist()}

s = solve_ivp(robertson, (0.0, ROB_T[-1]), [1.0, 0.0, 0.0], method="Radau", rtol=1e-12,
              atol=[1e-14, 1e-20, 1e-14], jac=robertson_jac, t_eval=ROB_T)
out["stiff"]["robertson Radau rtol 1e-12 atol [1e-14, 1e-20, 1e-14]"] = {"t": ROB_T, "y": s.y.T.tolist(), "nfev": int(s.nfev)}
s = solve_ivp(vdp, (0.0, VDP_T[-1]), [2.0, 0.0], method="Radau", rtol=1e-12, atol=1e-12, jac=vdp_jac, t_eval=VDP_T)
out["stiff"]["vdp1000 Radau rtol 1e-12 atol 1e-12"] = {"t": VDP_T, "y": s.y.T.tolist(), "nfev": int(s.nfev)}
print(json.dumps(out, indent=1))
