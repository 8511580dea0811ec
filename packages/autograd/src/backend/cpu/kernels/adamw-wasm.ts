/**
 * The AdamW update of float32 parameters as a WebAssembly SIMD kernel: two elements per iteration in the f64x2
 * lanes, every operation in float64 in the order of the JavaScript loop of adamw.ts (`adamwInto`), each stored
 * result rounded once to float32. WebAssembly's f64x2 add / sub / mul / div / sqrt are correctly rounded and
 * never contracted into fused multiply-adds, and promote / demote round as a Float32Array store does, so the
 * kernel is bit-identical to the JavaScript loop (the tests check it on odd sizes and 1 and 2 threads).
 *
 *   adamw_f32(p, g, m, v, n, c, decay)   (byte addresses of n float32 each; c: 10 float64 constants)
 *
 *   c = [β1, 1 − β1, β2, 1 − β2, clip scale, 1 − β1ᵗ, 1 − β2ᵗ, ε, λ, lr]
 *   g' = g·scale;  m ← m·β1 + g'·(1 − β1);  v ← v·β2 + (g'·(1 − β2))·g'
 *   u  = (m / bc1) / (√(v / bc2) + ε);  with decay, u ← u + p·λ;  p ← p − u·lr
 *
 * m and v are written back in place (float32), and p is overwritten with the new parameter. The update uses the
 * float64 m and v before their rounding, as the loop does. An odd last element runs the same instructions on
 * one lane.
 */
import type { FunctionBuilder, Local, ModuleBuilder } from "./wasm-emitter.js";

/** Byte size of the constants block `c` (10 float64). */
export const ADAMW_CONSTANTS_BYTES = 80;

/** Emits `adamw_f32` into the kernel module. */
export function emitAdamW(mb: ModuleBuilder): void {
  mb.func("adamw_f32", { p: "i32", g: "i32", m: "i32", v: "i32", n: "i32", c: "i32", decay: "i32" }, [], (f, p, g, m, v, n, c, decay) => {
    const [b1, a1, b2, a2, scale, bc1, bc2, eps, lam, lr] = f.locals("v128", 10, "k");
    const [gv, mv, vv, pv] = f.locals("v128", 4, "x");
    const i = f.local("i32", "i");
    const end = f.local("i32", "end");
    [b1, a1, b2, a2, scale, bc1, bc2, eps, lam, lr].forEach((k, j) => {
      f.get(c)
        .v128Load64Splat({ offset: 8 * j })
        .set(k);
    });
    /** One update of the lanes loaded by `load` (at byte offset i of each array), stored by `store`. */
    const body = (withDecay: boolean, load: (f: FunctionBuilder) => void, store: (f: FunctionBuilder) => void): void => {
      const at = (base: Local) => f.get(base).get(i).i32Add();
      at(g);
      load(f);
      f.f64x2PromoteLowF32x4().get(scale).f64x2Mul().set(gv);
      at(m);
      load(f);
      f.f64x2PromoteLowF32x4().get(b1).f64x2Mul().get(gv).get(a1).f64x2Mul().f64x2Add().set(mv);
      at(v);
      load(f);
      f.f64x2PromoteLowF32x4().get(b2).f64x2Mul().get(gv).get(a2).f64x2Mul().get(gv).f64x2Mul().f64x2Add().set(vv);
      at(m);
      f.get(mv).f32x4DemoteF64x2Zero();
      store(f);
      at(v);
      f.get(vv).f32x4DemoteF64x2Zero();
      store(f);
      at(p);
      load(f);
      f.f64x2PromoteLowF32x4().set(pv);
      // u = (m / bc1) / (sqrt(v / bc2) + eps), kept on the stack
      f.get(mv).get(bc1).f64x2Div();
      f.get(vv).get(bc2).f64x2Div().f64x2Sqrt().get(eps).f64x2Add();
      f.f64x2Div();
      if (withDecay) f.get(pv).get(lam).f64x2Mul().f64x2Add();
      f.get(lr).f64x2Mul().set(gv);
      at(p);
      f.get(pv).get(gv).f64x2Sub().f32x4DemoteF64x2Zero();
      store(f);
    };
    const pairs = (l: FunctionBuilder) => l.v128Load64Zero();
    const pairStore = (l: FunctionBuilder) => l.v128Store64Lane(0);
    const one = (l: FunctionBuilder) => l.v128Load32Zero();
    const oneStore = (l: FunctionBuilder) => l.v128Store32Lane(0);
    // byte offsets: pairs while i + 8 <= 4n, then one element if n is odd
    f.get(n).i32Const(-2).i32And().i32Const(4).i32Mul().set(end);
    const run = (withDecay: boolean): void => {
      f.forRange(
        i,
        () => f.i32Const(0),
        () => f.get(end),
        8,
        () => body(withDecay, pairs, pairStore),
      );
      f.get(n).i32Const(1).i32And();
      f.if(() => {
        f.get(end).set(i);
        body(withDecay, one, oneStore);
      });
    };
    f.get(decay);
    f.if(
      () => run(true),
      () => run(false),
    );
  });
}
