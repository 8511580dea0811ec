/**
 * Code generator for the WebAssembly SIMD SGEMM.
 *
 * Classic GotoBLAS/BLIS structure: op(B) is packed into KC×NC blocks of NR-wide column panels, op(A)
 * into MC×KC blocks of MR-tall row panels (transposes are resolved while packing), and an MR×NR
 * register-blocked micro-kernel accumulates f32x4 products (separate mul + add: fused multiply-add
 * is not available in baseline WebAssembly SIMD). Partial tiles at the right/bottom edges go through a
 * small scratch tile so that odd sizes need no special kernel.
 *
 * The generated export
 *   gemm_f32(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, beta, scratch, batch, strideA, strideB, strideC)
 * runs one (optionally batched) GEMM on one thread: addresses in bytes, leading dimensions and batch
 * strides in elements, beta ∈ {0, 1}. Multi-threading splits C into disjoint column or row ranges (or
 * the batch into ranges) and calls it once per thread with that thread's scratch area.
 */
import type { FunctionBuilder, FuncRef, Local, ModuleBuilder } from "./wasm-emitter.js";

/** Blocking parameters of the generated SGEMM. */
export interface GemmBlocking {
  /** micro-tile rows */
  mr: number;
  /** micro-tile columns (multiple of 4) */
  nr: number;
  /** depth of a packed block */
  kc: number;
  /** rows of a packed A block (multiple of mr) */
  mc: number;
  /** columns of a packed B block (multiple of nr) */
  nc: number;
}

/** Blocking chosen by measurement on an AMD EPYC (Zen 4) core under Node 20; see docs/performance.md. */
export const DEFAULT_GEMM_BLOCKING: GemmBlocking = { mr: 5, nr: 8, kc: 256, mc: 120, nc: 2048 };

/** Bytes of per-thread scratch the generated SGEMM needs for a blocking. */
export function gemmScratchBytes(b: GemmBlocking): number {
  const round = (x: number): number => Math.ceil(x / 64) * 64;
  return round(b.mc * b.kc * 4) + round(b.kc * b.nc * 4) + round(b.mr * b.nr * 4);
}

function validate(b: GemmBlocking): void {
  const bad =
    !Number.isInteger(b.mr) ||
    b.mr < 1 ||
    b.mr > 8 ||
    !Number.isInteger(b.nr) ||
    b.nr < 4 ||
    b.nr % 4 !== 0 ||
    b.nr > 24 ||
    !Number.isInteger(b.kc) ||
    b.kc < 1 ||
    !Number.isInteger(b.mc) ||
    b.mc % b.mr !== 0 ||
    !Number.isInteger(b.nc) ||
    b.nc % b.nr !== 0;
  if (bad) throw new Error(`emitGemm: invalid blocking ${JSON.stringify(b)}`);
}

/** Emit the SGEMM functions into a module; exports `gemm_f32`. */
export function emitGemm(mb: ModuleBuilder, blk: GemmBlocking = DEFAULT_GEMM_BLOCKING): void {
  validate(blk);
  const { mr: MR, nr: NR, kc: KC, mc: MC, nc: NC } = blk;
  const NV = NR / 4;
  const round = (x: number): number => Math.ceil(x / 64) * 64;
  const PACKB_OFF = round(MC * KC * 4);
  const TILE_OFF = PACKB_OFF + round(KC * NC * 4);

  // kernel(ap, bp, kc, cp, ldcBytes, beta): full MR×NR tile, C = beta*C + Ap·Bp  (kc >= 1)
  //
  // Measured on V8 (TurboFan): unrolling the k loop makes the scheduler hoist every load of the
  // unrolled body and spill accumulators, so the loop is left rolled and ends on a pointer compare.
  // MR×NR = 5×8 keeps 10 accumulators + 2 B vectors + splat + product in 14 of the 15 allocatable
  // xmm registers; 6×8 (16 live values) spills one accumulator per iteration.
  const kernelParams = { ap: "i32", bp: "i32", kc: "i32", cp: "i32", ldc: "i32", beta: "i32" } as const;
  const kernel = mb.func({ name: "gemm_kernel" }, kernelParams, [], (f, ap, bp, kc, cp, ldc, beta) => {
    const acc: Local[] = f.locals("v128", MR * NV, "acc");
    const bv: Local[] = f.locals("v128", NV, "bv");
    const av = f.local("v128", "av");
    const apEnd = f.local("i32", "apEnd");
    for (const l of acc) f.f32x4Const(0, 0, 0, 0).set(l);
    f.get(ap)
      .get(kc)
      .i32Const(MR * 4)
      .i32Mul()
      .i32Add()
      .set(apEnd);
    f.get(kc).if(() => {
      f.loop((top) => {
        for (let v = 0; v < NV; v++)
          f.get(bp)
            .v128Load({ offset: 16 * v })
            .set(bv[v]!);
        for (let i = 0; i < MR; i++) {
          f.get(ap)
            .v128Load32Splat({ offset: i * 4 })
            .set(av);
          for (let v = 0; v < NV; v++) {
            const a = acc[i * NV + v]!;
            f.get(a).get(av).get(bv[v]!).f32x4Mul().f32x4Add().set(a);
          }
        }
        f.get(bp)
          .i32Const(NR * 4)
          .i32Add()
          .set(bp);
        f.get(ap)
          .i32Const(MR * 4)
          .i32Add()
          .tee(ap)
          .get(apEnd)
          .i32Ne()
          .brIf(top);
      });
    });
    const storeAll = (withC: boolean): void => {
      for (let i = 0; i < MR; i++) {
        for (let v = 0; v < NV; v++) {
          f.get(cp);
          if (withC)
            f.get(cp)
              .v128Load({ offset: v * 16 })
              .get(acc[i * NV + v]!)
              .f32x4Add();
          else f.get(acc[i * NV + v]!);
          f.v128Store({ offset: v * 16 });
        }
        if (i + 1 < MR) f.get(cp).get(ldc).i32Add().set(cp);
      }
    };
    f.get(beta).if(
      () => storeAll(true),
      () => storeAll(false),
    );
  });

  // edge(tile, cp, ldc, rows, cols, beta): C[0:rows,0:cols] = beta*C + tile (tile row stride NR)
  const edgeParams = { tile: "i32", cp: "i32", ldc: "i32", rows: "i32", cols: "i32", beta: "i32" } as const;
  const edge = mb.func({ name: "gemm_edge" }, edgeParams, [], (f, tile, cp, ldc, rows, cols, beta) => {
    const i = f.local("i32", "i");
    const j = f.local("i32", "j");
    const dst = f.local("i32", "dst");
    f.forRange(
      i,
      () => f.i32Const(0),
      () => f.get(rows),
      1,
      () => {
        f.get(cp).get(i).get(ldc).i32Mul().i32Const(4).i32Mul().i32Add().set(dst);
        f.forRange(
          j,
          () => f.i32Const(0),
          () => f.get(cols),
          1,
          () => {
            f.get(dst).get(j).i32Const(4).i32Mul().i32Add();
            f.get(tile)
              .get(i)
              .i32Const(NR * 4)
              .i32Mul()
              .i32Add()
              .get(j)
              .i32Const(4)
              .i32Mul()
              .i32Add()
              .f32Load();
            f.get(beta).if(
              () => f.get(dst).get(j).i32Const(4).i32Mul().i32Add().f32Load(),
              () => f.f32Const(0),
              "f32",
            );
            f.f32Add().f32Store();
          },
        );
      },
    );
  });

  // 4×4 transpose of four v128 locals (rows) into four v128 locals (columns).
  const transpose4 = (f: FunctionBuilder, x: Local[], t: Local[], out: Local[]): void => {
    f.get(x[0]!).get(x[1]!).f32x4Shuffle(0, 4, 1, 5).set(t[0]!);
    f.get(x[2]!).get(x[3]!).f32x4Shuffle(0, 4, 1, 5).set(t[1]!);
    f.get(x[0]!).get(x[1]!).f32x4Shuffle(2, 6, 3, 7).set(t[2]!);
    f.get(x[2]!).get(x[3]!).f32x4Shuffle(2, 6, 3, 7).set(t[3]!);
    f.get(t[0]!).get(t[1]!).f32x4Shuffle(0, 1, 4, 5).set(out[0]!);
    f.get(t[0]!).get(t[1]!).f32x4Shuffle(2, 3, 6, 7).set(out[1]!);
    f.get(t[2]!).get(t[3]!).f32x4Shuffle(0, 1, 4, 5).set(out[2]!);
    f.get(t[2]!).get(t[3]!).f32x4Shuffle(2, 3, 6, 7).set(out[3]!);
  };

  /**
   * Pack a panel of `W` strided vectors into interleaved layout: dst[p*W + s] = src_s[p] for p < len,
   * where src_s = base + s*strideBytes (contiguous along p). Used for A (no transpose) and Bᵀ.
   * Emits the body for a full panel (all W sources valid).
   */
  const packStridedFull = (f: FunctionBuilder, W: number, base: Local, strideBytes: Local, len: Local, dst: Local): void => {
    const ptr = f.locals("i32", W, "ptr");
    const x = f.locals("v128", 4, "x");
    const t = f.locals("v128", 4, "t");
    const o = f.locals("v128", 4, "o");
    const p = f.local("i32", "p");
    const d = f.local("i32", "d");
    for (let s = 0; s < W; s++) {
      f.get(base);
      if (s > 0) f.get(strideBytes).i32Const(s).i32Mul().i32Add();
      f.set(ptr[s]!);
    }
    f.get(dst).set(d);
    const groups = Math.floor(W / 4);
    // four p at a time
    f.i32Const(0).set(p);
    f.block((exit) => {
      f.loop((top) => {
        f.get(p).i32Const(4).i32Add().get(len).i32GtS().brIf(exit);
        for (let g = 0; g < groups; g++) {
          for (let s = 0; s < 4; s++)
            f.get(ptr[g * 4 + s]!)
              .v128Load()
              .set(x[s]!);
          transpose4(f, x, t, o);
          for (let q = 0; q < 4; q++)
            f.get(d)
              .get(o[q]!)
              .v128Store({ offset: (q * W + g * 4) * 4 });
        }
        for (let s = groups * 4; s < W; s++) {
          for (let q = 0; q < 4; q++) {
            f.get(d)
              .get(ptr[s]!)
              .f32Load({ offset: q * 4 })
              .f32Store({ offset: (q * W + s) * 4 });
          }
        }
        for (let s = 0; s < W; s++) f.get(ptr[s]!).i32Const(16).i32Add().set(ptr[s]!);
        f.get(d)
          .i32Const(4 * W * 4)
          .i32Add()
          .set(d);
        f.get(p).i32Const(4).i32Add().set(p);
        f.br(top);
      });
    });
    // remaining p one at a time
    f.block((exit) => {
      f.loop((top) => {
        f.get(p).get(len).i32GeS().brIf(exit);
        for (let s = 0; s < W; s++)
          f.get(d)
            .get(ptr[s]!)
            .f32Load()
            .f32Store({ offset: s * 4 });
        for (let s = 0; s < W; s++) f.get(ptr[s]!).i32Const(4).i32Add().set(ptr[s]!);
        f.get(d)
          .i32Const(W * 4)
          .i32Add()
          .set(d);
        f.get(p).i32Const(1).i32Add().set(p);
        f.br(top);
      });
    });
  };

  /** Pack a panel from contiguous rows: dst[p*W + s] = (base + p*strideBytes)[s], W floats per p. */
  const packContigFull = (f: FunctionBuilder, W: number, base: Local, strideBytes: Local, len: Local, dst: Local): void => {
    const src = f.local("i32", "src");
    const d = f.local("i32", "d");
    const p = f.local("i32", "p");
    f.get(base).set(src);
    f.get(dst).set(d);
    f.forRange(
      p,
      () => f.i32Const(0),
      () => f.get(len),
      1,
      () => {
        let s = 0;
        for (; s + 4 <= W; s += 4)
          f.get(d)
            .get(src)
            .v128Load({ offset: s * 4 })
            .v128Store({ offset: s * 4 });
        for (; s + 2 <= W; s += 2)
          f.get(d)
            .get(src)
            .i64Load({ offset: s * 4, align: 2 })
            .i64Store({ offset: s * 4, align: 2 });
        for (; s < W; s++)
          f.get(d)
            .get(src)
            .f32Load({ offset: s * 4 })
            .f32Store({ offset: s * 4 });
        f.get(src).get(strideBytes).i32Add().set(src);
        f.get(d)
          .i32Const(W * 4)
          .i32Add()
          .set(d);
      },
    );
  };

  /**
   * Partial panel (count < W valid sources), zero padded. `strided` selects the source layout:
   * strided: element (p, s) at base + s*stride + p*4;  contiguous: at base + p*stride + s*4.
   */
  const packPartial = (
    f: FunctionBuilder,
    W: number,
    strided: boolean,
    base: Local,
    strideBytes: Local,
    len: Local,
    count: Local,
    dst: Local,
  ): void => {
    const p = f.local("i32", "p");
    const s = f.local("i32", "s");
    const d = f.local("i32", "d");
    f.get(dst).set(d);
    f.forRange(
      p,
      () => f.i32Const(0),
      () => f.get(len),
      1,
      () => {
        f.forRange(
          s,
          () => f.i32Const(0),
          () => f.i32Const(W),
          1,
          () => {
            f.get(d).get(s).i32Const(4).i32Mul().i32Add();
            f.get(s)
              .get(count)
              .i32LtS()
              .if(
                () => {
                  if (strided) f.get(base).get(s).get(strideBytes).i32Mul().i32Add().get(p).i32Const(4).i32Mul().i32Add();
                  else f.get(base).get(p).get(strideBytes).i32Mul().i32Add().get(s).i32Const(4).i32Mul().i32Add();
                  f.f32Load();
                },
                () => f.f32Const(0),
                "f32",
              );
            f.f32Store();
          },
        );
        f.get(d)
          .i32Const(W * 4)
          .i32Add()
          .set(d);
      },
    );
  };

  /**
   * pack(trans, src, ld, len, extent, dst, W): pack `extent` vectors (rows of A / columns of B) of
   * length `len` into W-wide panels. `stridedWhen` says for which value of `trans` element (p, s) is
   * at src + s*ld + p (otherwise src + p*ld + s).
   */
  const packParams = { trans: "i32", src: "i32", ld: "i32", len: "i32", extent: "i32", dst: "i32" } as const;
  const emitPack = (name: string, W: number, stridedWhenTrans: boolean): FuncRef =>
    mb.func({ name }, packParams, [], (f, trans, src, ld, len, extent, dst) => {
      const ldBytes = f.local("i32", "ldBytes");
      const off = f.local("i32", "off");
      const base = f.local("i32", "base");
      const d = f.local("i32", "d");
      const cnt = f.local("i32", "cnt");
      f.get(ld).i32Const(4).i32Mul().set(ldBytes);
      const body = (strided: boolean): void => {
        f.forRange(
          off,
          () => f.i32Const(0),
          () => f.get(extent),
          W,
          () => {
            // base of this panel
            f.get(src).get(off);
            if (strided) f.get(ldBytes).i32Mul();
            else f.i32Const(4).i32Mul();
            f.i32Add().set(base);
            f.get(dst).get(off).get(len).i32Mul().i32Const(4).i32Mul().i32Add().set(d);
            f.get(extent).get(off).i32Sub().set(cnt);
            f.get(cnt)
              .i32Const(W)
              .i32GeS()
              .if(
                () => {
                  if (strided) packStridedFull(f, W, base, ldBytes, len, d);
                  else packContigFull(f, W, base, ldBytes, len, d);
                },
                () => packPartial(f, W, strided, base, ldBytes, len, cnt, d),
              );
          },
        );
      };
      f.get(trans).if(
        () => body(stridedWhenTrans),
        () => body(!stridedWhenTrans),
      );
    });
  // A (no transpose): row s of the panel at src + s*lda, contiguous along p  -> strided when !trans
  const packA = emitPack("gemm_pack_a", MR, false);
  // B (no transpose): row p at src + p*ldb, contiguous along s (columns)     -> strided when trans
  const packB = emitPack("gemm_pack_b", NR, true);

  mb.func(
    "gemm_f32",
    {
      transA: "i32",
      transB: "i32",
      m: "i32",
      n: "i32",
      k: "i32",
      a: "i32",
      lda: "i32",
      b: "i32",
      ldb: "i32",
      c: "i32",
      ldc: "i32",
      beta: "i32",
      scratch: "i32",
      batch: "i32",
      sA: "i32",
      sB: "i32",
      sC: "i32",
    },
    [],
    (f, transA, transB, m, n, k, a, lda, b, ldb, c, ldc, beta, scratch, batch, sA, sB, sC) => {
      const [bi, jc, nc, pc, kc, ic, mc, jr, nrr, ir, mrr, be, src, ap, bp, cp, pA, pB, tile] = f.named("i32", [
        "bi",
        "jc",
        "nc",
        "pc",
        "kc",
        "ic",
        "mc",
        "jr",
        "nrr",
        "ir",
        "mrr",
        "be",
        "src",
        "ap",
        "bp",
        "cp",
        "pA",
        "pB",
        "tile",
      ]);
      f.get(scratch).set(pA);
      f.get(scratch).i32Const(PACKB_OFF).i32Add().set(pB);
      f.get(scratch).i32Const(TILE_OFF).i32Add().set(tile);
      const min = (x: () => void, y: () => void): void => {
        x();
        y();
        x();
        y();
        f.i32LtS().select();
      };
      // Balanced block sizes: split each dimension into as few blocks as the limits allow, of equal
      // size (rounded up to the micro-tile), so no block is a thin remainder (e.g. m = 128 runs as
      // one 130-row block instead of 120 + 8).
      const [ncS, kcS, mcS, nb] = f.named("i32", ["ncS", "kcS", "mcS", "nb"]);
      const balanced = (dim: Local, limit: number, unit: number, out: Local): void => {
        // nb = max(1, ceil(dim / limit)); out = ceil(ceil(dim / nb) / unit) * unit
        f.get(dim)
          .i32Const(limit - 1)
          .i32Add()
          .i32Const(limit)
          .i32DivS()
          .set(nb);
        f.get(nb).i32Const(1).get(nb).i32Const(1).i32GtS().select().set(nb);
        f.get(dim).get(nb).i32Add().i32Const(1).i32Sub().get(nb).i32DivS();
        f.i32Const(unit - 1)
          .i32Add()
          .i32Const(unit)
          .i32DivS()
          .i32Const(unit)
          .i32Mul()
          .set(out);
      };
      balanced(n, NC, NR, ncS);
      balanced(k, KC, 1, kcS);
      balanced(m, MC, MR, mcS);
      f.forRange(
        bi,
        () => f.i32Const(0),
        () => f.get(batch),
        1,
        () => {
          f.forRange(
            jc,
            () => f.i32Const(0),
            () => f.get(n),
            ncS,
            () => {
              min(
                () => f.get(ncS),
                () => f.get(n).get(jc).i32Sub(),
              );
              f.set(nc);
              f.forRange(
                pc,
                () => f.i32Const(0),
                () => f.get(k),
                kcS,
                () => {
                  min(
                    () => f.get(kcS),
                    () => f.get(k).get(pc).i32Sub(),
                  );
                  f.set(kc);
                  // source of the B block: trans ? b + (jc*ldb + pc)*4 : b + (pc*ldb + jc)*4
                  f.get(b);
                  f.get(transB).if(
                    () => f.get(jc).get(ldb).i32Mul().get(pc).i32Add(),
                    () => f.get(pc).get(ldb).i32Mul().get(jc).i32Add(),
                    "i32",
                  );
                  f.i32Const(4).i32Mul().i32Add().set(src);
                  f.get(transB).get(src).get(ldb).get(kc).get(nc).get(pB).call(packB);
                  f.get(beta).get(pc).i32Const(0).i32GtS().i32Or().set(be);
                  f.forRange(
                    ic,
                    () => f.i32Const(0),
                    () => f.get(m),
                    mcS,
                    () => {
                      min(
                        () => f.get(mcS),
                        () => f.get(m).get(ic).i32Sub(),
                      );
                      f.set(mc);
                      f.get(a);
                      f.get(transA).if(
                        () => f.get(pc).get(lda).i32Mul().get(ic).i32Add(),
                        () => f.get(ic).get(lda).i32Mul().get(pc).i32Add(),
                        "i32",
                      );
                      f.i32Const(4).i32Mul().i32Add().set(src);
                      f.get(transA).get(src).get(lda).get(kc).get(mc).get(pA).call(packA);
                      f.forRange(
                        jr,
                        () => f.i32Const(0),
                        () => f.get(nc),
                        NR,
                        () => {
                          min(
                            () => f.i32Const(NR),
                            () => f.get(nc).get(jr).i32Sub(),
                          );
                          f.set(nrr);
                          f.get(pB).get(jr).get(kc).i32Mul().i32Const(4).i32Mul().i32Add().set(bp);
                          f.forRange(
                            ir,
                            () => f.i32Const(0),
                            () => f.get(mc),
                            MR,
                            () => {
                              min(
                                () => f.i32Const(MR),
                                () => f.get(mc).get(ir).i32Sub(),
                              );
                              f.set(mrr);
                              f.get(pA).get(ir).get(kc).i32Mul().i32Const(4).i32Mul().i32Add().set(ap);
                              f.get(c);
                              f.get(ic).get(ir).i32Add().get(ldc).i32Mul().get(jc).i32Add().get(jr).i32Add();
                              f.i32Const(4).i32Mul().i32Add().set(cp);
                              f.get(mrr)
                                .i32Const(MR)
                                .i32Eq()
                                .get(nrr)
                                .i32Const(NR)
                                .i32Eq()
                                .i32And()
                                .if(
                                  () => {
                                    f.get(ap).get(bp).get(kc).get(cp).get(ldc).i32Const(4).i32Mul().get(be).call(kernel);
                                  },
                                  () => {
                                    f.get(ap)
                                      .get(bp)
                                      .get(kc)
                                      .get(tile)
                                      .i32Const(NR * 4)
                                      .i32Const(0)
                                      .call(kernel);
                                    f.get(tile).get(cp).get(ldc).get(mrr).get(nrr).get(be).call(edge);
                                  },
                                );
                            },
                          );
                        },
                      );
                    },
                  );
                },
              );
            },
          );
          f.get(a).get(sA).i32Const(4).i32Mul().i32Add().set(a);
          f.get(b).get(sB).i32Const(4).i32Mul().i32Add().set(b);
          f.get(c).get(sC).i32Const(4).i32Mul().i32Add().set(c);
          // a shared (stride 0) C accumulates the products of all batch entries
          f.get(beta).get(sC).i32Eqz().i32Or().set(beta);
        },
      );
    },
  );
}
