/**
 * Butcher tableaux of the built-in explicit Runge–Kutta methods. Coefficients are the published ones
 * (Butcher's book; Bogacki & Shampine 1989; Dormand & Prince 1980 with Shampine's 1986 dense output;
 * Tsitouras 2011).
 */
import { interpFromPolys, polyAdd, polyMul, type ButcherTableau, type Poly } from "./tableau.js";

/** Forward Euler, order 1. */
export const EULER: ButcherTableau = { name: "euler", order: 1, c: [0], a: [[]], b: [1] };

/** Explicit midpoint rule, order 2. */
export const MIDPOINT: ButcherTableau = { name: "midpoint", order: 2, c: [0, 1 / 2], a: [[], [1 / 2]], b: [0, 1] };

/** Heun's method (explicit trapezoidal rule), order 2. */
export const HEUN: ButcherTableau = { name: "heun", order: 2, c: [0, 1], a: [[], [1]], b: [1 / 2, 1 / 2] };

/** The classic fourth-order Runge–Kutta method. */
export const RK4: ButcherTableau = {
  name: "rk4",
  order: 4,
  c: [0, 1 / 2, 1 / 2, 1],
  a: [[], [1 / 2], [0, 1 / 2], [0, 0, 1]],
  b: [1 / 6, 1 / 3, 1 / 3, 1 / 6],
};

/** Bogacki–Shampine 3(2): order 3 with an embedded order-2 error estimate, first same as last. */
export const BOSH3: ButcherTableau = {
  name: "bosh3",
  order: 3,
  errorOrder: 2,
  c: [0, 1 / 2, 3 / 4, 1],
  a: [[], [1 / 2], [0, 3 / 4], [2 / 9, 1 / 3, 4 / 9]],
  b: [2 / 9, 1 / 3, 4 / 9, 0],
  // b̂ = [7/24, 1/4, 1/3, 1/8]
  bErr: [2 / 9 - 7 / 24, 1 / 3 - 1 / 4, 4 / 9 - 1 / 3, -1 / 8],
};

const DP_B = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0];
// Shampine's (1986) coefficients for the fourth-order continuous extension of Dormand–Prince 5(4).
const DP_D = [
  -12715105075 / 11282082432,
  0,
  87487479700 / 32700410799,
  -10690763975 / 1880347072,
  701980252875 / 199316789632,
  -1453857185 / 822651844,
  69997945 / 29380423,
];

/**
 * b_i(θ) of the Dormand–Prince dense output, from the Hermite-like form
 * y(θ) = y0 + θ r1 + θ(1−θ) r2 + θ²(1−θ) r3 + θ²(1−θ)² r4 with r1 = y1 − y0, r2 = h k1 − r1,
 * r3 = 2 r1 − h k1 − h k7 and r4 = h Σ d_i k_i.
 */
function dopri5Interp(): number[][] {
  const th: Poly = [0, 1];
  const omt: Poly = [1, -1];
  const p1 = th;
  const p2 = polyMul(th, omt);
  const p3 = polyMul(th, th, omt);
  const p4 = polyMul(th, th, omt, omt);
  const polys: Poly[] = [];
  for (let i = 0; i < 7; i++) {
    const d1 = i === 0 ? 1 : 0;
    const d7 = i === 6 ? 1 : 0;
    polys.push(polyAdd([DP_B[i], p1], [d1 - DP_B[i], p2], [2 * DP_B[i] - d1 - d7, p3], [DP_D[i], p4]));
  }
  return interpFromPolys(polys);
}

/** Dormand–Prince 5(4): order 5, embedded order 4, first same as last, fourth-order dense output. */
export const DOPRI5: ButcherTableau = {
  name: "dopri5",
  order: 5,
  errorOrder: 4,
  c: [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1],
  a: [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
  ],
  b: DP_B,
  // b̂ = [5179/57600, 0, 7571/16695, 393/640, −92097/339200, 187/2100, 1/40]
  bErr: [71 / 57600, 0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40],
  interp: dopri5Interp(),
};

const TS_B = [
  0.09646076681806522951816731316512876333711995238157997181903319145764851595234062815396, 0.01,
  0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509,
  1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331,
  -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677,
  2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841, 0,
];
const TS_BHAT = [
  0.09468075576583945807478876255758922856117527357724631226139574065785592789071067303271,
  0.00918356554034325309677636393664531375981374624098409523890593953292295524725360868727,
  0.4877705284247615707855642599631228241516691959761363774365216240304071651579571959813,
  1.234297566930478985655109673884237654035539930748192848315425833500484878378061439761,
  -2.707712349983525454881109975059321670689605166938197378763992255714444407154902012702,
  1.866628418170587035753719399566211498666255505244122593996591602841258328965767580089,
  1 / 66,
];

/** Tsitouras' interpolation polynomials b_i(θ), given in factored form in the 2011 paper. */
function tsit5Interp(): number[][] {
  const th: Poly = [0, 1];
  const th2 = polyMul(th, th);
  const lin = (r: number): Poly => [-r, 1]; // θ − r
  const quad = (p: number, q: number): Poly => [q, p, 1]; // θ² + pθ + q
  const polys: Poly[] = [
    polyAdd([-1.0530884977290216, polyMul(th, lin(1.3299890189751412), quad(-1.4364028541716351, 0.7139816917074209))]),
    polyAdd([0.1017, polyMul(th2, quad(-2.1966568338249754, 1.2949852507374631))]),
    polyAdd([2.490627285651252793, polyMul(th2, quad(-2.38535645472061657, 1.57803468208092486))]),
    polyAdd([-16.54810288924490272, polyMul(th2, lin(1.21712927295533244), lin(0.61620406037800089))]),
    polyAdd([47.37952196281928122, polyMul(th2, lin(1.203071208372362603), lin(0.658047292653547382))]),
    polyAdd([-34.87065786149660974, polyMul(th2, lin(1.2), lin(0.666666666666666667))]),
    polyAdd([2.5, polyMul(th2, lin(1), lin(0.6))]),
  ];
  return interpFromPolys(polys);
}

/** Tsitouras 5(4): order 5, embedded order 4, first same as last, dense output. */
export const TSIT5: ButcherTableau = {
  name: "tsit5",
  order: 5,
  errorOrder: 4,
  c: [0, 0.161, 0.327, 0.9, 0.9800255409045096857298102862870245954942137979563024768854764293221195950761080302604, 1, 1],
  a: [
    [],
    [0.161],
    [
      -0.008480655492356988544426874250230774675121177393430391537369234245294192976164141156943,
      0.3354806554923569885444268742502307746751211773934303915373692342452941929761641411569,
    ],
    [
      2.897153057105493432130432594192938764924887287701866490314866693455023795137503079289,
      -6.359448489975074843148159912383825625952700647415626703305928850207288721235210244366,
      4.362295432869581411017727318190886861027813359713760212991062156752264926097707165077,
    ],
    [
      5.325864828439256604428877920840511317836476253097040101202360397727981648835607691791,
      -11.74888356406282787774717033978577296188744178259862899288666928009020615663593781589,
      7.495539342889836208304604784564358155658679161518186721010132816213648793440552049753,
      -0.09249506636175524925650207933207191611349983406029535244034750452930469056411389539635,
    ],
    [
      5.861455442946420028659251486982647890394337666164814434818157239052507339770711679748,
      -12.92096931784710929170611868178335939541780751955743459166312250439928519268343184452,
      8.159367898576158643180400794539253485181918321135053305748355423955009222648673734986,
      -0.07158497328140099722453054252582973869127213147363544882721139659546372402303777878835,
      -0.02826905039406838290900305721271224146717633626879770007617876201276764571291579142206,
    ],
    TS_B.slice(0, 6),
  ],
  b: TS_B,
  bErr: TS_B.map((v, i) => v - TS_BHAT[i]),
  interp: tsit5Interp(),
};

/** All built-in tableaux. */
export const BUILTIN_TABLEAUS: readonly ButcherTableau[] = [EULER, MIDPOINT, HEUN, RK4, BOSH3, DOPRI5, TSIT5];
