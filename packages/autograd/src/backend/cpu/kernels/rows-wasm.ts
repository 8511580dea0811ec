/**
 * Code generator for the float32 row kernels (WebAssembly SIMD).
 *
 * Every kernel walks rows of a row-major [rows, cols] matrix; within a row, columns are processed four
 * at a time with f32x4 and the last cols % 4 columns with the same code on one lane (load32_zero /
 * store32_lane, sums masked to lane 0), so odd widths need no separate scalar path.
 *
 * Numerics:
 *  - exp(x) = 2^(x·log2 e) = 2^n·2^f with |f| ≤ 1/2: a degree-5 polynomial fitted to 2^f (2.4e-7
 *    relative in float32) and 2^n added into the exponent bits; the float32 rounding of x·log2 e
 *    adds up to |x|·5e-8 relative (≤ 1e-6 for |x| ≤ 20, where softmax mass lives; ≤ 4.3e-6 at the
 *    clamp). Arguments below -86 are clamped, so exp gives 4e-38 instead of underflowing to 0 (a
 *    -Infinity logit gets probability ~4e-38/Σ, not exactly 0); NaN stays NaN. Callers only pass
 *    arguments ≤ ~0. Row maxima use f32x4.pmax (one instruction) and so skip NaNs, but a NaN element
 *    still turns its row's sum, and hence the row's outputs, into NaN.
 *  - row sums are accumulated in float32 lanes over blocks of 256 columns and then in float64, so
 *    their relative error stays near 1e-7 for rows of any width.
 *  - log (for log-sum-exp) is evaluated in float64 (atanh series, error < 1e-15).
 *
 * Exports (addresses in bytes; all counts are i32):
 *   softmax_f32(x, out, rows, cols)          logsoftmax_f32(x, out, rows, cols)
 *   ce_fwd_f32(x, targets, rows, cols, ignore, loss, lse)
 *   ce_bwd_f32(x, targets, lse, g, out, rows, cols, ignore)
 *   ln_fwd_f32(x, gamma, beta, out, mean, rstd, rows, cols, eps:f32)
 *   ln_bwd_f32(x, gamma, mean, rstd, dy, dx, dgamma64, dbeta64, rows, cols)
 *   gelu_f32(x, out, n)                      gelu_bwd_f32(x, dy, dx, n)
 */
import { GELU_CUBIC, GELU_TANH_SCALE } from "../../../gelu.js";
import type { FunctionBuilder, Local, ModuleBuilder } from "./wasm-emitter.js";

/** Degree-5 polynomial for 2^f on [-1/2, 1/2] (coefficients of f^0..f^5), fitted for relative error. */
export const EXP2_POLY = [
  1.0000001192092896, 0.6931469440460205, 0.24022120237350464, 0.05550713464617729, 0.009675540030002594, 0.0013276454992592335,
] as const;
const EXP_LO = -86; // keeps n ≥ -125 so 2^n·p(f) stays a normal float
const MAGIC = 12582912; // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits
/** Columns per float32 partial sum before it is added into a float64 total. */
const SUM_BLOCK = 256;

interface ExpConsts {
  log2e: Local;
  magic: Local;
  p: Local[];
  lo: Local;
}

function splatConst(f: FunctionBuilder, v: number, name: string): Local {
  const l = f.local("v128", name);
  f.f32x4Const(v, v, v, v).set(l);
  return l;
}

function expConsts(f: FunctionBuilder): ExpConsts {
  return {
    log2e: splatConst(f, Math.LOG2E, "log2e"),
    magic: splatConst(f, MAGIC, "magic"),
    p: EXP2_POLY.map((c, i) => splatConst(f, c, `exp2_c${i}`)),
    lo: splatConst(f, EXP_LO, "exp_lo"),
  };
}

/**
 * Emit `out = exp(x)` for a v128 local (x ≤ ~88) as 2^y, y = x·log2(e) = n + f with n an integer and
 * |f| ≤ 1/2: 2^f from a degree-5 polynomial, 2^n added into the exponent bits. 17 vector
 * instructions on x64. Arguments below EXP_LO are clamped to it (exp gives 4e-38 rather than 0); NaN
 * stays NaN. Error: the polynomial in float32 contributes ≤ 2.4e-7 relative, the rounding of
 * x·log2(e) another ≤ |x|·5e-8 (1e-6 at |x| = 20, 4.3e-6 at the clamp).
 */
function emitExp(f: FunctionBuilder, K: ExpConsts, x: Local, out: Local): void {
  const y = f.local("v128", "y");
  const t = f.local("v128", "t");
  const r = f.local("v128", "r");
  // pmax is one maxps (f32x4.max's NaN rules cost eight instructions on x64); pmax(x, lo) keeps a NaN x
  f.get(x).get(K.lo).f32x4PMax().get(K.log2e).f32x4Mul().set(y);
  // t = y + 1.5·2^23 holds n = round(y) in its low mantissa bits; f = y - n exactly
  f.get(y).get(K.magic).f32x4Add().set(t);
  f.get(y).get(t).get(K.magic).f32x4Sub().f32x4Sub().set(r);
  f.get(K.p[5]!);
  for (let i = 4; i >= 0; i--) f.get(r).f32x4Mul().get(K.p[i]!).f32x4Add();
  // p(f) ∈ [0.7, 1.42]: multiply by 2^n by adding n to the exponent field (t << 23 == n << 23 mod 2^32)
  f.get(t).i32Const(23).i32x4Shl().i32x4Add().set(out);
}

/** How a row body accesses memory: four lanes at a time, or one lane for the tail columns. */
interface Mode {
  tail: boolean;
  /** push v128 loaded from base + j (j = byte offset of the current column) */
  load(base: Local): void;
  /** store the v128 produced by `val` at base + j */
  store(base: Local, val: () => void): void;
  /** acc += val (only lane 0 in tail mode) */
  acc(a: Local, val: () => void): void;
}

class RowIter {
  readonly j: Local;
  private readonly vend: Local;
  private readonly bend: Local;
  private readonly lane0: Local;

  constructor(private readonly f: FunctionBuilder) {
    this.j = f.local("i32", "j");
    this.vend = f.local("i32", "vend");
    this.bend = f.local("i32", "bend");
    this.lane0 = f.local("v128", "lane0");
    f.i32x4Const(-1, 0, 0, 0).set(this.lane0);
  }

  private mode(tail: boolean): Mode {
    const { f, j, lane0 } = this;
    return {
      tail,
      load: (base) => {
        f.get(base).get(j).i32Add();
        if (tail) f.v128Load32Zero();
        else f.v128Load();
      },
      store: (base, val) => {
        f.get(base).get(j).i32Add();
        val();
        if (tail) f.v128Store32Lane(0);
        else f.v128Store();
      },
      acc: (a, val) => {
        f.get(a);
        val();
        if (tail) f.get(lane0).v128And();
        f.f32x4Add().set(a);
      },
    };
  }

  /**
   * Iterate the columns of one row of width `cols`. With `flush`, the body's accumulators are
   * drained every SUM_BLOCK columns and once at the end.
   */
  run(cols: Local, body: (m: Mode) => void, flush?: () => void): void {
    const { f, j, vend, bend } = this;
    f.get(cols).i32Const(-4).i32And().i32Const(4).i32Mul().set(vend);
    f.i32Const(0).set(j);
    f.block((exit) => {
      f.loop((outer) => {
        f.get(j).get(vend).i32GeS().brIf(exit);
        if (flush) {
          f.get(j)
            .i32Const(SUM_BLOCK * 4)
            .i32Add()
            .set(bend);
          f.get(bend).get(vend).get(bend).get(vend).i32LtS().select().set(bend);
        } else {
          f.get(vend).set(bend);
        }
        f.loop((inner) => {
          body(this.mode(false));
          f.get(j).i32Const(16).i32Add().tee(j).get(bend).i32LtS().brIf(inner);
        });
        if (flush) flush();
        f.br(outer);
      });
    });
    f.block((exit) => {
      f.loop((top) => {
        f.get(j).get(cols).i32Const(4).i32Mul().i32GeS().brIf(exit);
        body(this.mode(true));
        f.get(j).i32Const(4).i32Add().set(j);
        f.br(top);
      });
    });
    if (flush) flush();
  }
}

/** Push the byte address of row `r` of the row-major float32 [rows, cols] matrix at `base`. */
function rowAddr(f: FunctionBuilder, base: Local, r: Local, cols: Local): FunctionBuilder {
  return f.get(base).get(r).get(cols).i32Mul().i32Const(4).i32Mul().i32Add();
}

/** Push the byte address of 4-byte element `i` of the array at `base`. */
function elemAddr(f: FunctionBuilder, base: Local, i: Local): FunctionBuilder {
  return f.get(base).get(i).i32Const(4).i32Mul().i32Add();
}

/** sum += f64(lane0 + lane1 + lane2 + lane3) of a v128 accumulator, then zero it. */
function flushInto(f: FunctionBuilder, acc: Local, sum: Local): void {
  f.get(sum);
  for (let l = 0; l < 4; l++) {
    f.get(acc).f32x4ExtractLane(l).f64PromoteF32();
    if (l > 0) f.f64Add();
  }
  f.f64Add().set(sum);
  f.f32x4Const(0, 0, 0, 0).set(acc);
}

/** Emit the row kernels into a module. */
export function emitRows(mb: ModuleBuilder): void {
  // natural log in float64 (positive finite input; 0 gives -Infinity, NaN or negative give NaN)
  const log64 = mb.func({ name: "log64" }, { s: "f64" }, ["f64"], (f, s) => {
    const bits = f.local("i64", "bits");
    const e = f.local("i32", "e");
    const m = f.local("f64", "m");
    const z = f.local("f64", "z");
    const z2 = f.local("f64", "z2");
    f.get(s!).i64ReinterpretF64().set(bits);
    f.get(bits).i64Const(52n).i64ShrU().i32WrapI64().i32Const(0x7ff).i32And().i32Const(1023).i32Sub().set(e);
    f.get(bits).i64Const(0xfffffffffffffn).i64And().i64Const(0x3ff0000000000000n).i64Or().f64ReinterpretI64().set(m);
    f.get(m)
      .f64Const(Math.SQRT2)
      .f64Gt()
      .if(() => {
        f.get(m).f64Const(0.5).f64Mul().set(m);
        f.get(e).i32Const(1).i32Add().set(e);
      });
    f.get(m).f64Const(1).f64Sub().get(m).f64Const(1).f64Add().f64Div().set(z);
    f.get(z).get(z).f64Mul().set(z2);
    // log m = 2 atanh z = 2 (z + z^3/3 + ... + z^17/17)
    f.f64Const(2 / 17);
    for (let k = 15; k >= 1; k -= 2)
      f.get(z2)
        .f64Mul()
        .f64Const(2 / k)
        .f64Add();
    f.get(z).f64Mul();
    f.get(e).f64ConvertI32S().f64Const(Math.LN2).f64Mul().f64Add();
    // s > 0 ? log : (s == 0 ? -Infinity : NaN) — a NaN sum (a NaN logit) must stay NaN
    f.f64Const(-Infinity).f64Const(NaN).get(s!).f64Const(0).f64Eq().select();
    f.get(s!).f64Const(0).f64Gt().select();
  });

  /**
   * Emit: m = max over the row (f32 local). Four independent pmax chains over 16 columns per step
   * (one chain would wait on pmax latency), then single vectors, then scalar tail columns.
   */
  const rowMax = (f: FunctionBuilder, xr: Local, cols: Local, m: Local): void => {
    const mv = f.locals("v128", 4, "mv");
    const j = f.local("i32", "j");
    const end = f.local("i32", "end");
    const ninf = -Infinity;
    for (const v of mv) f.f32x4Const(ninf, ninf, ninf, ninf).set(v);
    f.i32Const(0).set(j);
    f.get(cols).i32Const(-16).i32And().i32Const(4).i32Mul().set(end);
    f.block((exit) => {
      f.loop((top) => {
        f.get(j).get(end).i32GeS().brIf(exit);
        for (let q = 0; q < 4; q++)
          f.get(mv[q]!)
            .get(xr)
            .get(j)
            .i32Add()
            .v128Load({ offset: 16 * q })
            .f32x4PMax()
            .set(mv[q]!);
        f.get(j).i32Const(64).i32Add().set(j);
        f.br(top);
      });
    });
    f.get(cols).i32Const(-4).i32And().i32Const(4).i32Mul().set(end);
    f.block((exit) => {
      f.loop((top) => {
        f.get(j).get(end).i32GeS().brIf(exit);
        f.get(mv[0]!).get(xr).get(j).i32Add().v128Load().f32x4PMax().set(mv[0]!);
        f.get(j).i32Const(16).i32Add().set(j);
        f.br(top);
      });
    });
    f.get(mv[0]!).get(mv[1]!).f32x4PMax().get(mv[2]!).get(mv[3]!).f32x4PMax().f32x4PMax().set(mv[0]!);
    f.get(mv[0]!).f32x4ExtractLane(0).get(mv[0]!).f32x4ExtractLane(1).f32Max();
    f.get(mv[0]!).f32x4ExtractLane(2).get(mv[0]!).f32x4ExtractLane(3).f32Max().f32Max().set(m);
    f.get(cols).i32Const(4).i32Mul().set(end);
    f.block((exit) => {
      f.loop((top) => {
        f.get(j).get(end).i32GeS().brIf(exit);
        f.get(m).get(xr).get(j).i32Add().f32Load().f32Max().set(m);
        f.get(j).i32Const(4).i32Add().set(j);
        f.br(top);
      });
    });
  };

  /** Emit: sum (f64 local) = Σ exp(x - shift); optionally store the exps to outr. */
  const expSum = (
    f: FunctionBuilder,
    K: ExpConsts,
    it: RowIter,
    xr: Local,
    outr: Local | null,
    cols: Local,
    shift: Local,
    sum: Local,
  ): void => {
    const acc = f.local("v128", "acc");
    const xv = f.local("v128", "xv");
    const ev = f.local("v128", "ev");
    f.f64Const(0).set(sum);
    f.f32x4Const(0, 0, 0, 0).set(acc);
    it.run(
      cols,
      (md) => {
        md.load(xr);
        f.get(shift).f32x4Sub().set(xv);
        emitExp(f, K, xv, ev);
        if (outr) md.store(outr, () => f.get(ev));
        md.acc(acc, () => f.get(ev));
      },
      () => flushInto(f, acc, sum),
    );
  };

  const rowsLoop = (f: FunctionBuilder, rows: Local, r: Local, body: () => void): void => {
    f.forRange(
      r,
      () => f.i32Const(0),
      () => f.get(rows),
      1,
      body,
    );
  };

  // softmax_f32(x, out, rows, cols)
  mb.func("softmax_f32", { x: "i32", out: "i32", rows: "i32", cols: "i32" }, [], (f, x, out, rows, cols) => {
    const K = expConsts(f);
    const it = new RowIter(f);
    const r = f.local("i32", "r");
    const xr = f.local("i32", "xr");
    const orow = f.local("i32", "orow");
    const m = f.local("f32", "m");
    const sh = f.local("v128", "sh");
    const sum = f.local("f64", "sum");
    const inv = f.local("v128", "inv");
    rowsLoop(f, rows!, r, () => {
      rowAddr(f, x!, r, cols!).set(xr);
      rowAddr(f, out!, r, cols!).set(orow);
      rowMax(f, xr, cols!, m);
      f.get(m).f32x4Splat().set(sh);
      expSum(f, K, it, xr, orow, cols!, sh, sum);
      f.f64Const(1).get(sum).f64Div().f32DemoteF64().f32x4Splat().set(inv);
      it.run(cols!, (md) =>
        md.store(orow, () => {
          md.load(orow);
          f.get(inv).f32x4Mul();
        }),
      );
    });
  });

  // logsoftmax_f32(x, out, rows, cols): out = (x - max) - log(sum exp(x - max))
  mb.func("logsoftmax_f32", { x: "i32", out: "i32", rows: "i32", cols: "i32" }, [], (f, x, out, rows, cols) => {
    const K = expConsts(f);
    const it = new RowIter(f);
    const r = f.local("i32", "r");
    const xr = f.local("i32", "xr");
    const orow = f.local("i32", "orow");
    const m = f.local("f32", "m");
    const sh = f.local("v128", "sh");
    const sum = f.local("f64", "sum");
    const ls = f.local("v128", "ls");
    rowsLoop(f, rows!, r, () => {
      rowAddr(f, x!, r, cols!).set(xr);
      rowAddr(f, out!, r, cols!).set(orow);
      rowMax(f, xr, cols!, m);
      f.get(m).f32x4Splat().set(sh);
      expSum(f, K, it, xr, null, cols!, sh, sum);
      f.get(sum).call(log64).f32DemoteF64().f32x4Splat().set(ls);
      it.run(cols!, (md) =>
        md.store(orow, () => {
          md.load(xr);
          f.get(sh).f32x4Sub().get(ls).f32x4Sub();
        }),
      );
    });
  });

  // ce_fwd_f32(x, targets, rows, cols, ignore, loss, lse)
  mb.func(
    "ce_fwd_f32",
    { x: "i32", targets: "i32", rows: "i32", cols: "i32", ignore: "i32", loss: "i32", lse: "i32" },
    [],
    (f, x, targets, rows, cols, ignore, loss, lse) => {
      const K = expConsts(f);
      const it = new RowIter(f);
      const r = f.local("i32", "r");
      const xr = f.local("i32", "xr");
      const m = f.local("f32", "m");
      const sh = f.local("v128", "sh");
      const sum = f.local("f64", "sum");
      const lg = f.local("f64", "lg");
      const t = f.local("i32", "t");
      rowsLoop(f, rows!, r, () => {
        rowAddr(f, x!, r, cols!).set(xr);
        rowMax(f, xr, cols!, m);
        f.get(m).f32x4Splat().set(sh);
        expSum(f, K, it, xr, null, cols!, sh, sum);
        f.get(sum).call(log64).set(lg);
        elemAddr(f, lse!, r);
        f.get(m).f64PromoteF32().get(lg).f64Add().f32DemoteF64().f32Store();
        elemAddr(f, targets!, r).i32Load().set(t);
        elemAddr(f, loss!, r);
        f.get(t)
          .get(ignore!)
          .i32Eq()
          .if(
            () => f.f32Const(0),
            () => {
              f.get(m).f64PromoteF32();
              elemAddr(f, xr, t).f32Load().f64PromoteF32().f64Sub();
              f.get(lg).f64Add().f32DemoteF64();
            },
            "f32",
          );
        f.f32Store();
      });
    },
  );

  // ce_bwd_f32(x, targets, lse, g, out, rows, cols, ignore): out = g (softmax - onehot)
  mb.func(
    "ce_bwd_f32",
    { x: "i32", targets: "i32", lse: "i32", g: "i32", out: "i32", rows: "i32", cols: "i32", ignore: "i32" },
    [],
    (f, x, targets, lse, g, out, rows, cols, ignore) => {
      const K = expConsts(f);
      const it = new RowIter(f);
      const r = f.local("i32", "r");
      const xr = f.local("i32", "xr");
      const orow = f.local("i32", "orow");
      const t = f.local("i32", "t");
      const gs = f.local("f32", "gs");
      const gv = f.local("v128", "gv");
      const sh = f.local("v128", "sh");
      const xv = f.local("v128", "xv");
      const ev = f.local("v128", "ev");
      const tp = f.local("i32", "tp");
      rowsLoop(f, rows!, r, () => {
        rowAddr(f, x!, r, cols!).set(xr);
        rowAddr(f, out!, r, cols!).set(orow);
        elemAddr(f, targets!, r).i32Load().set(t);
        f.get(t)
          .get(ignore!)
          .i32Eq()
          .if(
            () => {
              f.get(orow).i32Const(0).get(cols!).i32Const(4).i32Mul().memoryFill();
            },
            () => {
              elemAddr(f, g!, r).f32Load().tee(gs).f32x4Splat().set(gv);
              elemAddr(f, lse!, r).f32Load().f32x4Splat().set(sh);
              it.run(cols!, (md) => {
                md.load(xr);
                f.get(sh).f32x4Sub().set(xv);
                emitExp(f, K, xv, ev);
                md.store(orow, () => f.get(ev).get(gv).f32x4Mul());
              });
              elemAddr(f, orow, t).set(tp);
              f.get(tp).get(tp).f32Load().get(gs).f32Sub().f32Store();
            },
          );
      });
    },
  );

  // ln_fwd_f32(x, gamma, beta, out, mean, rstd, rows, cols, eps)
  mb.func(
    "ln_fwd_f32",
    { x: "i32", gamma: "i32", beta: "i32", out: "i32", mean: "i32", rstd: "i32", rows: "i32", cols: "i32", eps: "f32" },
    [],
    (f, x, gamma, beta, out, mean, rstd, rows, cols, eps) => {
      const it = new RowIter(f);
      const r = f.local("i32", "r");
      const xr = f.local("i32", "xr");
      const orow = f.local("i32", "orow");
      const acc = f.local("v128", "acc");
      const sum = f.local("f64", "sum");
      const mf = f.local("f32", "mf");
      const rs = f.local("f32", "rs");
      const mv = f.local("v128", "mv");
      const rv = f.local("v128", "rv");
      const d = f.local("v128", "d");
      rowsLoop(f, rows!, r, () => {
        rowAddr(f, x!, r, cols!).set(xr);
        rowAddr(f, out!, r, cols!).set(orow);
        // mean
        f.f64Const(0).set(sum);
        f.f32x4Const(0, 0, 0, 0).set(acc);
        it.run(
          cols!,
          (md) => md.acc(acc, () => md.load(xr)),
          () => flushInto(f, acc, sum),
        );
        f.get(sum).get(cols!).f64ConvertI32S().f64Div().f32DemoteF64().tee(mf).f32x4Splat().set(mv);
        // variance of (x - mean)
        f.f64Const(0).set(sum);
        it.run(
          cols!,
          (md) => {
            md.load(xr);
            f.get(mv).f32x4Sub().set(d);
            md.acc(acc, () => f.get(d).get(d).f32x4Mul());
          },
          () => flushInto(f, acc, sum),
        );
        f.f64Const(1);
        f.get(sum).get(cols!).f64ConvertI32S().f64Div().get(eps!).f64PromoteF32().f64Add().f64Sqrt();
        f.f64Div().f32DemoteF64().tee(rs).f32x4Splat().set(rv);
        elemAddr(f, mean!, r).get(mf).f32Store();
        elemAddr(f, rstd!, r).get(rs).f32Store();
        it.run(cols!, (md) =>
          md.store(orow, () => {
            md.load(xr);
            f.get(mv).f32x4Sub().get(rv).f32x4Mul();
            md.load(gamma!);
            f.f32x4Mul();
            md.load(beta!);
            f.f32x4Add();
          }),
        );
      });
    },
  );

  // ln_bwd_f32(x, gamma, mean, rstd, dy, dx, dgamma64, dbeta64, rows, cols)
  mb.func(
    "ln_bwd_f32",
    { x: "i32", gamma: "i32", mean: "i32", rstd: "i32", dy: "i32", dx: "i32", dg: "i32", db: "i32", rows: "i32", cols: "i32" },
    [],
    (f, x, gamma, mean, rstd, dy, dx, dg, db, rows, cols) => {
      const it = new RowIter(f);
      const r = f.local("i32", "r");
      const off = f.local("i32", "off");
      const xr = f.local("i32", "xr");
      const dyr = f.local("i32", "dyr");
      const dxr = f.local("i32", "dxr");
      const mv = f.local("v128", "mv");
      const rv = f.local("v128", "rv");
      const xh = f.local("v128", "xh");
      const dyv = f.local("v128", "dyv");
      const gy = f.local("v128", "gy");
      const accA = f.local("v128", "accA");
      const accB = f.local("v128", "accB");
      const sumA = f.local("f64", "sumA");
      const sumB = f.local("f64", "sumB");
      const ma = f.local("v128", "ma");
      const mbv = f.local("v128", "mbv");
      const q = f.local("v128", "q");
      const p64 = f.local("i32", "p64");
      /** f64 array at base (+2j bytes) += promoted lanes of q (lane 0 only in tail mode) */
      const addF64 = (tail: boolean, base: Local): void => {
        f.get(base).get(it.j).i32Const(2).i32Mul().i32Add().set(p64);
        if (tail) {
          f.get(p64).get(p64).f64Load().get(q).f32x4ExtractLane(0).f64PromoteF32().f64Add().f64Store();
        } else {
          f.get(p64).get(p64).v128Load().get(q).f64x2PromoteLowF32x4().f64x2Add().v128Store();
          f.get(p64).get(p64).v128Load({ offset: 16 }).get(q).get(q).f32x4Shuffle(2, 3, 2, 3);
          f.f64x2PromoteLowF32x4().f64x2Add().v128Store({ offset: 16 });
        }
      };
      rowsLoop(f, rows!, r, () => {
        f.get(r).get(cols!).i32Mul().i32Const(4).i32Mul().set(off);
        f.get(x!).get(off).i32Add().set(xr);
        f.get(dy!).get(off).i32Add().set(dyr);
        f.get(dx!).get(off).i32Add().set(dxr);
        elemAddr(f, mean!, r).f32Load().f32x4Splat().set(mv);
        elemAddr(f, rstd!, r).f32Load().f32x4Splat().set(rv);
        f.f64Const(0).set(sumA);
        f.f64Const(0).set(sumB);
        f.f32x4Const(0, 0, 0, 0).set(accA);
        f.f32x4Const(0, 0, 0, 0).set(accB);
        it.run(
          cols!,
          (md) => {
            md.load(xr);
            f.get(mv).f32x4Sub().get(rv).f32x4Mul().set(xh);
            md.load(dyr);
            f.set(dyv);
            f.get(dyv);
            md.load(gamma!);
            f.f32x4Mul().set(gy);
            md.acc(accA, () => f.get(gy));
            md.acc(accB, () => f.get(gy).get(xh).f32x4Mul());
            f.get(dyv).get(xh).f32x4Mul().set(q);
            addF64(md.tail, dg!);
            f.get(dyv).set(q);
            addF64(md.tail, db!);
          },
          () => {
            flushInto(f, accA, sumA);
            flushInto(f, accB, sumB);
          },
        );
        f.get(sumA).get(cols!).f64ConvertI32S().f64Div().f32DemoteF64().f32x4Splat().set(ma);
        f.get(sumB).get(cols!).f64ConvertI32S().f64Div().f32DemoteF64().f32x4Splat().set(mbv);
        it.run(cols!, (md) =>
          md.store(dxr, () => {
            md.load(xr);
            f.get(mv).f32x4Sub().get(rv).f32x4Mul().set(xh);
            md.load(dyr);
            md.load(gamma!);
            f.f32x4Mul().get(ma).f32x4Sub().get(xh).get(mbv).f32x4Mul().f32x4Sub().get(rv).f32x4Mul();
          }),
        );
      });
    },
  );

  /**
   * GELU (tanh form) pieces for a v128 x: u = k0 (x + k1 x^3), t = exp(-2|u|) ∈ (0, 1],
   * sigmoid(2u) = (u ≥ 0 ? 1 : t) / (1 + t)  — stable for every sign and magnitude.
   */
  const geluParts = (
    f: FunctionBuilder,
    K: ExpConsts,
    c: { k0: Local; k1: Local; one: Local; mtwo: Local },
    xv: Local,
    u: Local,
    t: Local,
    sig: Local,
    tmp: Local,
  ): void => {
    f.get(xv).get(xv).f32x4Mul().get(xv).f32x4Mul().get(c.k1).f32x4Mul().get(xv).f32x4Add().get(c.k0).f32x4Mul().set(u);
    f.get(u).f32x4Abs().get(c.mtwo).f32x4Mul().set(tmp);
    emitExp(f, K, tmp, t);
    // below the exp clamp gelu(x) < 1e-36: let t underflow to exactly 0 instead of exp(EXP_LO)
    f.get(t).get(tmp).get(K.lo).f32x4Lt().v128AndNot().set(t);
    // sig = bitselect(one, t, u >= 0) / (1 + t)
    f.get(c.one).get(t).get(u).f32x4Const(0, 0, 0, 0).f32x4Ge().v128Bitselect();
    f.get(t).get(c.one).f32x4Add().f32x4Div().set(sig);
  };

  const geluConsts = (f: FunctionBuilder): { k0: Local; k1: Local; one: Local; mtwo: Local; k3: Local } => ({
    k0: splatConst(f, GELU_TANH_SCALE, "gelu_k0"),
    k1: splatConst(f, GELU_CUBIC, "gelu_k1"),
    one: splatConst(f, 1, "one"),
    mtwo: splatConst(f, -2, "minus_two"),
    k3: splatConst(f, 3 * GELU_CUBIC, "gelu_3k1"),
  });

  /** Elementwise loop over n floats: vector body then one-lane tail. */
  const elemLoop = (f: FunctionBuilder, n: Local, body: (m: Mode) => void): void => {
    const it = new RowIter(f);
    it.run(n, body);
  };

  // gelu_f32(x, out, n)
  mb.func("gelu_f32", { x: "i32", out: "i32", n: "i32" }, [], (f, x, out, n) => {
    const K = expConsts(f);
    const c = geluConsts(f);
    const xv = f.local("v128", "xv");
    const u = f.local("v128", "u");
    const t = f.local("v128", "t");
    const sig = f.local("v128", "sig");
    const tmp = f.local("v128", "tmp");
    elemLoop(f, n!, (md) => {
      md.load(x!);
      f.set(xv);
      geluParts(f, K, c, xv, u, t, sig, tmp);
      md.store(out!, () => f.get(xv).get(sig).f32x4Mul());
    });
  });

  // gelu_bwd_f32(x, dy, dx, n): dx = dy (sig + 2 x u' t / (1 + t)^2),  u' = k0 (1 + 3 k1 x^2)
  mb.func("gelu_bwd_f32", { x: "i32", dy: "i32", dx: "i32", n: "i32" }, [], (f, x, dy, dx, n) => {
    const K = expConsts(f);
    const c = geluConsts(f);
    const xv = f.local("v128", "xv");
    const u = f.local("v128", "u");
    const t = f.local("v128", "t");
    const sig = f.local("v128", "sig");
    const tmp = f.local("v128", "tmp");
    const den = f.local("v128", "den");
    elemLoop(f, n!, (md) => {
      md.load(x!);
      f.set(xv);
      geluParts(f, K, c, xv, u, t, sig, tmp);
      f.get(t).get(c.one).f32x4Add().set(den);
      md.store(dx!, () => {
        // 2 x u' t / den^2
        f.get(xv).get(xv).f32x4Mul().get(c.k3).f32x4Mul().get(c.one).f32x4Add().get(c.k0).f32x4Mul();
        f.get(xv).f32x4Mul().get(t).f32x4Mul().get(den).get(den).f32x4Mul().f32x4Div();
        f.get(c.mtwo).f32x4Neg().f32x4Mul().get(sig).f32x4Add();
        md.load(dy!);
        f.f32x4Mul();
      });
    });
  });
}
