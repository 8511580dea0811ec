/**
 * The WebAssembly emitter's checks and debug aids: operand-type errors at emit time (checked against the
 * engine's own validator on random programs), the "name" custom section (decoded here by hand and read
 * back from an engine stack trace), the text listing's byte offsets, and QKVFLOW_WASM_DEBUG.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import fc from "fast-check";
import { ModuleBuilder, WasmEmitError, type FunctionBuilder, type Label, type Local } from "../src/backend/cpu/kernels/wasm-emitter.js";
import { DEFAULT_GEMM_BLOCKING, emitGemm, type GemmBlocking } from "../src/backend/cpu/kernels/gemm-wasm.js";
import { emitRows } from "../src/backend/cpu/kernels/rows-wasm.js";
import { emitAdamW } from "../src/backend/cpu/kernels/adamw-wasm.js";

/** Emit one function `bad` with the given body and return the error message (or fail if none is thrown). */
function emitError(body: (f: FunctionBuilder) => void, results: ("i32" | "f32")[] = []): string {
  const mb = new ModuleBuilder();
  try {
    mb.func("bad", [], results, (f) => body(f));
  } catch (e) {
    assert.ok(e instanceof WasmEmitError, `expected a WasmEmitError, got ${String(e)}`);
    return e.message;
  }
  assert.fail("the emitter accepted an invalid body");
}

// ------------------------------------------------------------------------------------------
// type errors at emit time

test("wasm emitter: wrong operand types throw at the instruction, naming function, instruction and types", () => {
  assert.match(
    emitError((f) => f.i32Const(1).f32Const(2).f32Add()),
    /^wasm emitter: function "bad": f32\.add: expected operands \[f32 f32\], found \[i32 f32\]$/,
  );
  assert.match(
    emitError((f) => f.f64Const(1).f64Const(2).f32x4Mul()),
    /function "bad": f32x4\.mul: expected operands \[v128 v128\], found \[f64 f64\]/,
  );
  assert.match(
    emitError((f) => f.f64Const(1).f32x4Splat()),
    /f32x4\.splat: expected operands \[f32\], found \[f64\]/,
  );
  assert.match(
    emitError((f) => f.f32Const(1).i32Const(3).i32x4Shl()),
    /i32x4\.shl: expected operands \[v128 i32\], found \[f32 i32\]/,
  );
  // an address must be an i32, the stored value of the store's type
  assert.match(
    emitError((f) => f.i32Const(0).f64Const(1).f32Store()),
    /f32\.store: expected operands \[i32 f32\], found \[i32 f64\]/,
  );
  assert.match(
    emitError((f) => f.f32Const(0).v128Load()),
    /v128\.load: expected operands \[i32\], found \[f32\]/,
  );
  // too few operands
  assert.match(
    emitError((f) => f.i32Const(1).i32Add()),
    /i32\.add: expected operands \[i32 i32\], found \[i32\] \(only 1 value in the enclosing function\)/,
  );
  // values outside a block are not operands inside it
  assert.match(
    emitError((f) =>
      f
        .i32Const(1)
        .block(() => f.i32Eqz())
        .drop(),
    ),
    /i32\.eqz: expected operands \[i32\], found \[\] \(only 0 values in the enclosing block\)/,
  );
  assert.match(
    emitError((f) => f.f32Const(1).if(() => {})),
    /if: expected operands \[i32\], found \[f32\]/,
  );
  assert.match(
    emitError((f) => f.f32Const(1).f64Const(2).i32Const(0).select().drop()),
    /select: expected operands \[t t i32\] \(two values of one type, then an i32\), found \[f32 f64 i32\]/,
  );
  assert.match(
    emitError((f) => f.drop()),
    /drop: expected one operand, found \[\]/,
  );
});

test("wasm emitter: block results, branches and the function end are checked", () => {
  // a block declared to give f32 that ends with an i32
  assert.match(
    emitError((f) => f.block(() => f.i32Const(1), "f32").drop()),
    /end of block \$L0: expected operands \[f32\], found \[i32\]/,
  );
  // a block without result that leaves a value
  assert.match(
    emitError((f) => f.block(() => f.i32Const(1))),
    /end of block \$L0: expected exactly \[\] on the stack, found \[i32\] \(1 value left over\)/,
  );
  // if/else: each arm must give the result type
  assert.match(
    emitError((f) =>
      f
        .i32Const(1)
        .if(
          () => f.f32Const(1),
          () => f.i32Const(2),
          "f32",
        )
        .drop(),
    ),
    /end of if \$L0: expected operands \[f32\], found \[i32\]/,
  );
  assert.match(
    emitError((f) =>
      f
        .i32Const(1)
        .if(
          () => f.i32Const(1),
          () => f.f32Const(2),
          "f32",
        )
        .drop(),
    ),
    /else of if \$L0: expected operands \[f32\], found \[i32\]/,
  );
  assert.match(
    emitError((f) =>
      f
        .i32Const(1)
        .if(() => f.f32Const(1), undefined, "f32")
        .drop(),
    ),
    /if: an if with result f32 needs an else branch/,
  );
  // a branch carries the label's types: a block's results, nothing for a loop
  assert.match(
    emitError((f) => f.block((b) => f.i32Const(1).br(b), "f32").drop()),
    /br \$L0: expected operands \[f32\], found \[i32\]/,
  );
  assert.match(
    emitError((f) => f.block((b) => f.f32Const(1).brIf(b).drop(), "f32").drop()),
    /br_if \$L0: expected operands \[i32\], found \[f32\]/,
  );
  // a label used outside its block
  let outer: Label | null = null;
  assert.match(
    emitError((f) => {
      f.block((b) => (outer = b));
      f.br(outer!);
    }),
    /br: branch to label \$L0, which is not in scope/,
  );
  // unbalanced stack at the function end, in both directions
  assert.match(
    emitError((f) => f.i32Const(1).f32Const(2), ["f32"]),
    /end of function: expected exactly \[f32\] on the stack, found \[i32 f32\] \(1 value left over\)/,
  );
  assert.match(
    emitError(() => {}, ["i32"]),
    /end of function: expected operands \[i32\], found \[\]/,
  );
  assert.match(
    emitError((f) => f.f32Const(0).ret(), ["i32"]),
    /return: expected operands \[i32\], found \[f32\]/,
  );
});

test("wasm emitter: locals are typed and belong to their function; lanes and calls are checked", () => {
  assert.match(
    emitError((f) => f.i32Const(1).set(f.local("f32", "acc"))),
    /function "bad": local\.set \$acc: expected operands \[f32\], found \[i32\]/,
  );
  assert.match(
    emitError((f) => f.f64Const(1).tee(f.local("v128")).drop()),
    /local\.tee 0: expected operands \[v128\], found \[f64\]/,
  );
  const mb = new ModuleBuilder();
  let foreign: Local | null = null;
  mb.func("one", { n: "i32" }, [], (_f, n) => (foreign = n!));
  assert.throws(
    () => mb.func("two", [], ["i32"], (f) => f.get(foreign!)),
    (e: Error) =>
      e instanceof WasmEmitError && /function "two": local\.get: local 0 \(i32 \$n\) was not declared in this function/.test(e.message),
  );
  assert.match(
    emitError((f) => f.f32x4Const(1, 2, 3, 4).f32x4ExtractLane(4).drop()),
    /f32x4\.extract_lane: lane 4 is outside 0\.\.3/,
  );
  assert.match(
    emitError((f) => f.i32Const(0).f32x4Const(1, 2, 3, 4).v128Store64Lane(2)),
    /v128\.store64_lane: lane 2 is outside 0\.\.1/,
  );
  // a callee's parameter types are checked; a callee from another module is refused
  const other = new ModuleBuilder();
  const sq = other.func({ name: "sq" }, ["f64"], ["f64"], (f, x) => f.get(x!).get(x!).f64Mul());
  const mb2 = new ModuleBuilder();
  const sq2 = mb2.func({ name: "sq" }, ["f64"], ["f64"], (f, x) => f.get(x!).get(x!).f64Mul());
  assert.throws(
    () => mb2.func("c", [], ["f64"], (f) => f.f32Const(2).call(sq2)),
    /function "c": call \$sq: expected operands \[f64\], found \[f32\]/,
  );
  assert.throws(
    () => mb2.func("d", [], ["f64"], (f) => f.f64Const(2).call(sq)),
    /function "d": call: the callee is not a function of this module/,
  );
});

test("wasm emitter: code after a branch is stack-polymorphic, as in the specification", () => {
  const mb = new ModuleBuilder();
  // (block (result i32) (i32.const 7) (br 0) (i32.add) (end)) — the add after br takes unknown operands
  mb.func("f", [], ["i32"], (f) => f.block((b) => f.i32Const(7).br(b).i32Add(), "i32"));
  mb.func("g", [], ["f32"], (f) => f.unreachable().select().f32Neg());
  const bytes = mb.toBytes();
  assert.ok(WebAssembly.validate(bytes), "the engine accepts what the emitter accepted");
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
  assert.equal((inst.exports.f as () => number)(), 7);
  // but a known wrong type below a branch still fails
  assert.match(
    emitError((f) => f.block((b) => f.br(b).f32Const(1).i32Eqz())),
    /i32\.eqz: expected operands \[i32\], found \[f32\]/,
  );
});

// ------------------------------------------------------------------------------------------
// the checker agrees with the engine's validator on random programs

type Ty = "i32" | "f32" | "f64" | "v128";
const VT: Record<Ty, number> = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b };

interface Leaf {
  /** the instruction's bytes, written here by hand from the specification's opcode tables */
  bytes: number[];
  emit: (f: FunctionBuilder, l: Local[]) => void;
  /** operand and result types, used only to steer the generator towards mostly valid programs */
  pops: Ty[];
  pushes: Ty[];
}

const LEAVES: Record<string, Leaf> = {
  "i32.const 1": { bytes: [0x41, 0x01], emit: (f) => f.i32Const(1), pops: [], pushes: ["i32"] },
  "f32.const 1": { bytes: [0x43, 0x00, 0x00, 0x80, 0x3f], emit: (f) => f.f32Const(1), pops: [], pushes: ["f32"] },
  "f64.const 1": { bytes: [0x44, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f], emit: (f) => f.f64Const(1), pops: [], pushes: ["f64"] },
  "v128.const 0": {
    bytes: [0xfd, 0x0c, ...new Array<number>(16).fill(0)],
    emit: (f) => f.f32x4Const(0, 0, 0, 0),
    pops: [],
    pushes: ["v128"],
  },
  "i32.add": { bytes: [0x6a], emit: (f) => f.i32Add(), pops: ["i32", "i32"], pushes: ["i32"] },
  "i32.eqz": { bytes: [0x45], emit: (f) => f.i32Eqz(), pops: ["i32"], pushes: ["i32"] },
  "f32.add": { bytes: [0x92], emit: (f) => f.f32Add(), pops: ["f32", "f32"], pushes: ["f32"] },
  "f32.lt": { bytes: [0x5d], emit: (f) => f.f32Lt(), pops: ["f32", "f32"], pushes: ["i32"] },
  "f64.add": { bytes: [0xa0], emit: (f) => f.f64Add(), pops: ["f64", "f64"], pushes: ["f64"] },
  "f64.promote_f32": { bytes: [0xbb], emit: (f) => f.f64PromoteF32(), pops: ["f32"], pushes: ["f64"] },
  "f32.demote_f64": { bytes: [0xb6], emit: (f) => f.f32DemoteF64(), pops: ["f64"], pushes: ["f32"] },
  "f32x4.add": { bytes: [0xfd, 0xe4, 0x01], emit: (f) => f.f32x4Add(), pops: ["v128", "v128"], pushes: ["v128"] },
  "f32x4.splat": { bytes: [0xfd, 0x13], emit: (f) => f.f32x4Splat(), pops: ["f32"], pushes: ["v128"] },
  "f32x4.extract_lane 1": { bytes: [0xfd, 0x1f, 0x01], emit: (f) => f.f32x4ExtractLane(1), pops: ["v128"], pushes: ["f32"] },
  "i32x4.shl": { bytes: [0xfd, 0xab, 0x01], emit: (f) => f.i32x4Shl(), pops: ["v128", "i32"], pushes: ["v128"] },
  "local.get 0": { bytes: [0x20, 0], emit: (f, l) => f.get(l[0]!), pops: [], pushes: ["i32"] },
  "local.set 0": { bytes: [0x21, 0], emit: (f, l) => f.set(l[0]!), pops: ["i32"], pushes: [] },
  "local.tee 1": { bytes: [0x22, 1], emit: (f, l) => f.tee(l[1]!), pops: ["f32"], pushes: ["f32"] },
  "local.get 2": { bytes: [0x20, 2], emit: (f, l) => f.get(l[2]!), pops: [], pushes: ["v128"] },
  "local.set 2": { bytes: [0x21, 2], emit: (f, l) => f.set(l[2]!), pops: ["v128"], pushes: [] },
  drop: { bytes: [0x1a], emit: (f) => f.drop(), pops: [], pushes: [] },
  "drop i32": { bytes: [0x1a], emit: (f) => f.drop(), pops: ["i32"], pushes: [] },
  "drop f64": { bytes: [0x1a], emit: (f) => f.drop(), pops: ["f64"], pushes: [] },
  "select f32": { bytes: [0x1b], emit: (f) => f.select(), pops: ["f32", "f32", "i32"], pushes: ["f32"] },
  "select v128": { bytes: [0x1b], emit: (f) => f.select(), pops: ["v128", "v128", "i32"], pushes: ["v128"] },
  unreachable: { bytes: [0x00], emit: (f) => f.unreachable(), pops: [], pushes: [] },
};
const LEAF_NAMES = Object.keys(LEAVES);

type Node =
  | { op: string }
  | { br: "br" | "br_if"; depth: number }
  | { block: "block" | "loop" | "if"; type: Ty | null; body: Node[]; else?: Node[] };

/**
 * Turn random choices into a program: mostly instructions whose operands match a simple model of the
 * stack, with operands and results usually fixed up at block ends and branches (so most programs are
 * valid and an invalid one is a near miss), now and then any instruction; blocks, loops and if/else with
 * result types, and branches to enclosing labels.
 */
function buildProgram(choices: number[], results: Ty[]): Node[] {
  interface Open {
    kind: "block" | "loop" | "if";
    type: Ty | null;
    node: Node[];
    types: Ty[];
    thenArm?: Node[];
  }
  const root: Open = { kind: "block", type: results[0] ?? null, node: [], types: [] };
  const open: Open[] = [root];
  const CONST: Record<Ty, string> = { i32: "i32.const 1", f32: "f32.const 1", f64: "f64.const 1", v128: "v128.const 0" };
  const push = (fr: Open, op: string): void => {
    fr.node.push({ op });
    fr.types.push(...LEAVES[op]!.pushes);
  };
  /** usually make the frame end with exactly its result: drop what is there, push a constant */
  const fixUp = (fr: Open, c: number): void => {
    if (c % 4 === 0 || (fr.types.length === (fr.type ? 1 : 0) && fr.types[0] === (fr.type ?? undefined))) return;
    for (let i = 0; i < fr.types.length; i++) fr.node.push({ op: "drop" });
    fr.types.length = 0;
    if (fr.type) push(fr, CONST[fr.type]);
  };
  const close = (c: number): void => {
    fixUp(open[open.length - 1]!, c);
    const fr = open.pop()!;
    const parent = open[open.length - 1]!;
    if (fr.thenArm) parent.node.push({ block: "if", type: fr.type, body: fr.thenArm, else: fr.node });
    else parent.node.push({ block: fr.kind, type: fr.type, body: fr.node });
    if (fr.type) parent.types.push(fr.type);
  };
  for (const c of choices) {
    const fr = open[open.length - 1]!;
    const kind = c % 20;
    const r = Math.floor(c / 20);
    const type = ([null, "i32", "f32", "v128"] as const)[r % 4]!;
    if (kind === 0 && open.length < 4) {
      const k = (["block", "loop", "if"] as const)[Math.floor(r / 4) % 3]!;
      if (k === "if") {
        if (r % 8 !== 0) push(fr, "i32.const 1");
        fr.types.pop();
      }
      open.push({ kind: k, type, node: [], types: [] });
    } else if (kind === 1 && open.length > 1) {
      close(r);
    } else if (kind === 3 && fr.kind === "if" && !fr.thenArm) {
      fixUp(fr, r); // then-arm done: start the else arm
      fr.thenArm = fr.node;
      fr.node = [];
      fr.types = [];
    } else if (kind === 2 && open.length > 1) {
      const depth = r % (open.length - 1);
      const target = open[open.length - 1 - depth]!;
      const carries = target.kind === "loop" ? null : target.type;
      const isBr = Math.floor(r / 4) % 2 === 0;
      if (r % 8 !== 0) {
        if (carries) push(fr, CONST[carries]);
        if (!isBr) push(fr, "i32.const 1");
      }
      fr.node.push({ br: isBr ? "br" : "br_if", depth });
      if (isBr) fr.types.length = 0;
      else fr.types.pop();
    } else {
      const fits = LEAF_NAMES.filter((n) => {
        const p = LEAVES[n]!.pops;
        return p.every((t, i) => fr.types[fr.types.length - p.length + i] === t);
      });
      const pool = r % 8 === 0 || fits.length === 0 ? LEAF_NAMES : fits;
      const name = pool[Math.floor(r / 8) % pool.length]!;
      const leaf = LEAVES[name]!;
      fr.types.length = Math.max(0, fr.types.length - leaf.pops.length);
      push(fr, name);
      if (name === "unreachable") fr.types.length = 0;
    }
  }
  const last = choices[choices.length - 1] ?? 1;
  while (open.length > 1) close(last);
  fixUp(root, last >> 3);
  return root.node;
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Hand-encoded module: one function () -> results with locals i32, f32, v128 and the program as its body. */
function encodeByHand(prog: Node[], results: Ty[]): Uint8Array<ArrayBuffer> {
  const code: number[] = [];
  const walk = (nodes: Node[]): void => {
    for (const n of nodes) {
      if ("op" in n) code.push(...LEAVES[n.op]!.bytes);
      else if ("br" in n) code.push(n.br === "br" ? 0x0c : 0x0d, n.depth);
      else {
        code.push({ block: 0x02, loop: 0x03, if: 0x04 }[n.block], n.type === null ? 0x40 : VT[n.type]);
        walk(n.body);
        if (n.else) {
          code.push(0x05);
          walk(n.else);
        }
        code.push(0x0b);
      }
    }
  };
  walk(prog);
  const body = [3, 1, VT.i32, 1, VT.f32, 1, VT.v128, ...code, 0x0b];
  const section = (id: number, content: number[]): number[] => [id, ...leb(content.length), ...content];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [1, 0x60, 0, results.length, ...results.map((r) => VT[r])]),
    ...section(3, [1, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ]);
}

/** The same program through the emitter; true when it emitted without error. */
function emitsCleanly(prog: Node[], results: Ty[]): boolean {
  const mb = new ModuleBuilder();
  try {
    mb.func("p", [], results, (f) => {
      const locals = [f.local("i32"), f.local("f32"), f.local("v128")];
      const walk = (nodes: Node[], labels: Label[]): void => {
        for (const n of nodes) {
          if ("op" in n) LEAVES[n.op]!.emit(f, locals);
          else if ("br" in n) {
            const l = labels[labels.length - 1 - n.depth]!;
            if (n.br === "br") f.br(l);
            else f.brIf(l);
          } else if (n.block === "loop") f.loop((l) => walk(n.body, [...labels, l]), n.type);
          else if (n.block === "block") f.block((l) => walk(n.body, [...labels, l]), n.type);
          else {
            const otherwise = n.else;
            f.if((l) => walk(n.body, [...labels, l]), otherwise && ((l) => walk(otherwise, [...labels, l])), n.type);
          }
        }
      };
      walk(prog, []);
    });
  } catch (e) {
    if (e instanceof WasmEmitError) return false;
    throw e;
  }
  assert.ok(WebAssembly.validate(mb.toBytes()), "a program the emitter accepts validates");
  return true;
}

test("wasm emitter: the type checker accepts exactly the programs the engine validates (random programs)", () => {
  let valid = 0;
  let runs = 0;
  fc.assert(
    fc.property(
      fc.array(fc.nat(1_000_000), { maxLength: 50 }),
      fc.constantFrom<Ty[]>([], ["i32"], ["f32"], ["v128"]),
      (choices, results) => {
        const prog = buildProgram(choices, results);
        const engine = WebAssembly.validate(encodeByHand(prog, results));
        const emitter = emitsCleanly(prog, results);
        runs++;
        if (engine) valid++;
        const what = `emitter ${emitter ? "accepted" : "rejected"}, engine ${engine ? "accepted" : "rejected"}`;
        assert.equal(emitter, engine, `${what}: ${JSON.stringify(prog)} -> [${results}]`);
      },
    ),
    { numRuns: 4000, seed: 13 },
  );
  // both outcomes are well represented
  assert.ok(valid > runs / 5 && valid < (runs * 4) / 5, `${valid} of ${runs} random programs valid`);
});

// ------------------------------------------------------------------------------------------
// name section

/** Independent decoder of the "name" custom section: function names and local names. */
function decodeNames(buf: ArrayBuffer): { funcs: Map<number, string>; locals: Map<number, Map<number, string>> } {
  const b = new Uint8Array(buf);
  let p = 0;
  const u32 = (): number => {
    let r = 0;
    let shift = 0;
    for (;;) {
      const x = b[p++]!;
      r += (x & 0x7f) * 2 ** shift;
      shift += 7;
      if ((x & 0x80) === 0) return r;
    }
  };
  const str = (): string => {
    const n = u32();
    const s = new TextDecoder().decode(b.subarray(p, p + n));
    p += n;
    return s;
  };
  const funcs = new Map<number, string>();
  const locals = new Map<number, Map<number, string>>();
  let lastId = -1;
  while (p < b.length) {
    const id = b[p++]!;
    assert.ok(id > lastId, "name subsections in increasing id order");
    lastId = id;
    const end = u32() + p;
    if (id === 1) {
      for (let n = u32(); n > 0; n--) funcs.set(u32(), str());
    } else if (id === 2) {
      for (let n = u32(); n > 0; n--) {
        const fi = u32();
        const m = new Map<number, string>();
        for (let k = u32(); k > 0; k--) m.set(u32(), str());
        locals.set(fi, m);
      }
    }
    assert.equal(p, end, `subsection ${id} decodes to its declared size`);
    p = end;
  }
  return { funcs, locals };
}

test("wasm emitter: the name section names functions, parameters and locals", () => {
  const mb = new ModuleBuilder();
  const helper = mb.func({ name: "twice" }, { v: "f32" }, ["f32"], (f, v) => {
    const t = f.local("f32", "t");
    f.get(v!).get(v!).f32Add().tee(t);
  });
  mb.func(null, ["i32"], [], (f) => void f.local("i32", "k"));
  mb.func("main", { x: "f32", n: "i32" }, ["f32"], (f, x) => {
    f.local("i32", "j");
    f.local("i32"); // unnamed
    f.local("i32", "j"); // duplicate: gets a suffix
    f.get(x!).call(helper);
  });
  const mod = new WebAssembly.Module(mb.toBytes());
  const sections = WebAssembly.Module.customSections(mod, "name");
  assert.equal(sections.length, 1);
  const { funcs, locals } = decodeNames(sections[0]!);
  assert.deepEqual(
    [...funcs],
    [
      [0, "twice"],
      [2, "main"],
    ],
  );
  assert.deepEqual(
    [...locals.get(0)!],
    [
      [0, "v"],
      [1, "t"],
    ],
  );
  assert.deepEqual([...locals.get(1)!], [[1, "k"]]);
  assert.deepEqual(
    [...locals.get(2)!],
    [
      [0, "x"],
      [1, "n"],
      [2, "j"],
      [4, "j_1"],
    ],
  );
  const inst = new WebAssembly.Instance(mod, {});
  assert.equal((inst.exports.main as (x: number, n: number) => number)(1.5, 0), 3);
});

test("wasm emitter: engine stack traces show the function names", () => {
  const mb = new ModuleBuilder();
  const inner = mb.func({ name: "inner_trap" }, [], [], (f) => f.unreachable());
  mb.func("outer_entry", [], [], (f) => f.call(inner));
  const inst = new WebAssembly.Instance(new WebAssembly.Module(mb.toBytes()), {});
  let stack = "";
  try {
    (inst.exports.outer_entry as () => void)();
  } catch (e) {
    assert.ok(e instanceof WebAssembly.RuntimeError);
    stack = e.stack ?? "";
  }
  assert.match(stack, /inner_trap/);
  assert.match(stack, /outer_entry/);
});

const BLOCKINGS: GemmBlocking[] = [
  DEFAULT_GEMM_BLOCKING,
  { mr: 4, nr: 8, kc: 64, mc: 64, nc: 256 },
  { mr: 1, nr: 4, kc: 1, mc: 1, nc: 4 },
  { mr: 8, nr: 24, kc: 300, mc: 80, nc: 96 },
  { mr: 3, nr: 12, kc: 7, mc: 9, nc: 36 },
];

function kernelModule(blk: GemmBlocking, shared: boolean, text = false): ModuleBuilder {
  const mb = new ModuleBuilder({ text }).importMemory({ module: "env", name: "memory", initialPages: 1, maximumPages: 16, shared });
  emitGemm(mb, blk);
  emitRows(mb);
  emitAdamW(mb);
  return mb;
}

test("kernel module: every blocking and memory kind validates and names every function", () => {
  const exported = [
    "gemm_f32",
    "softmax_f32",
    "logsoftmax_f32",
    "ce_fwd_f32",
    "ce_bwd_f32",
    "ln_fwd_f32",
    "ln_bwd_f32",
    "gelu_f32",
    "gelu_bwd_f32",
    "adamw_f32",
  ];
  const internal = ["gemm_kernel", "gemm_edge", "gemm_pack_a", "gemm_pack_b", "log64"];
  for (const blk of BLOCKINGS) {
    for (const shared of [false, true]) {
      const bytes = kernelModule(blk, shared).toBytes();
      assert.ok(WebAssembly.validate(bytes), `blocking ${JSON.stringify(blk)} shared=${shared}`);
      const mod = new WebAssembly.Module(bytes);
      const { funcs, locals } = decodeNames(WebAssembly.Module.customSections(mod, "name")[0]!);
      assert.deepEqual([...funcs.values()].sort(), [...exported, ...internal].sort());
      const exports = WebAssembly.Module.exports(mod).map((e) => e.name);
      assert.deepEqual(exports.sort(), [...exported].sort());
      const idx = [...funcs].find(([, n]) => n === "softmax_f32")![0];
      assert.deepEqual([...locals.get(idx)!.values()].slice(0, 4), ["x", "out", "rows", "cols"]);
    }
  }
});

// ------------------------------------------------------------------------------------------
// text listing

/** First bytes of each instruction in the kernels, from the specification's opcode tables. */
const OPCODES: Record<string, number[]> = {
  unreachable: [0x00],
  block: [0x02],
  loop: [0x03],
  if: [0x04],
  else: [0x05],
  end: [0x0b],
  br: [0x0c],
  br_if: [0x0d],
  return: [0x0f],
  call: [0x10],
  drop: [0x1a],
  select: [0x1b],
  "local.get": [0x20],
  "local.set": [0x21],
  "local.tee": [0x22],
  "i32.load": [0x28],
  "i64.load": [0x29],
  "f32.load": [0x2a],
  "f64.load": [0x2b],
  "i32.store": [0x36],
  "i64.store": [0x37],
  "f32.store": [0x38],
  "f64.store": [0x39],
  "i32.const": [0x41],
  "i64.const": [0x42],
  "f32.const": [0x43],
  "f64.const": [0x44],
  "i32.eqz": [0x45],
  "i32.eq": [0x46],
  "i32.ne": [0x47],
  "i32.lt_s": [0x48],
  "i32.gt_s": [0x4a],
  "i32.ge_s": [0x4e],
  "f64.eq": [0x61],
  "f64.gt": [0x64],
  "i32.add": [0x6a],
  "i32.sub": [0x6b],
  "i32.mul": [0x6c],
  "i32.div_s": [0x6d],
  "i32.and": [0x71],
  "i32.or": [0x72],
  "i64.and": [0x83],
  "i64.or": [0x84],
  "i64.shr_u": [0x88],
  "f32.add": [0x92],
  "f32.sub": [0x93],
  "f32.max": [0x97],
  "f64.sqrt": [0x9f],
  "f64.add": [0xa0],
  "f64.sub": [0xa1],
  "f64.mul": [0xa2],
  "f64.div": [0xa3],
  "i32.wrap_i64": [0xa7],
  "f32.demote_f64": [0xb6],
  "f64.convert_i32_s": [0xb7],
  "f64.promote_f32": [0xbb],
  "i64.reinterpret_f64": [0xbd],
  "f64.reinterpret_i64": [0xbf],
  "memory.fill": [0xfc, 0x0b],
  "v128.load": [0xfd, 0x00],
  "v128.load32_splat": [0xfd, 0x09],
  "v128.load64_splat": [0xfd, 0x0a],
  "v128.store": [0xfd, 0x0b],
  "v128.const": [0xfd, 0x0c],
  "i8x16.shuffle": [0xfd, 0x0d],
  "f32x4.splat": [0xfd, 0x13],
  "f32x4.extract_lane": [0xfd, 0x1f],
  "f32x4.lt": [0xfd, 0x43],
  "f32x4.ge": [0xfd, 0x46],
  "v128.and": [0xfd, 0x4e],
  "v128.andnot": [0xfd, 0x4f],
  "v128.bitselect": [0xfd, 0x52],
  "v128.store32_lane": [0xfd, 0x5a],
  "v128.store64_lane": [0xfd, 0x5b],
  "v128.load32_zero": [0xfd, 0x5c],
  "v128.load64_zero": [0xfd, 0x5d],
  "f32x4.demote_f64x2_zero": [0xfd, 0x5e],
  "f64x2.promote_low_f32x4": [0xfd, 0x5f],
  "i32x4.shl": [0xfd, 0xab, 0x01],
  "i32x4.add": [0xfd, 0xae, 0x01],
  "f32x4.abs": [0xfd, 0xe0, 0x01],
  "f32x4.neg": [0xfd, 0xe1, 0x01],
  "f32x4.add": [0xfd, 0xe4, 0x01],
  "f32x4.sub": [0xfd, 0xe5, 0x01],
  "f32x4.mul": [0xfd, 0xe6, 0x01],
  "f32x4.div": [0xfd, 0xe7, 0x01],
  "f32x4.pmax": [0xfd, 0xeb, 0x01],
  "f64x2.sqrt": [0xfd, 0xef, 0x01],
  "f64x2.add": [0xfd, 0xf0, 0x01],
  "f64x2.sub": [0xfd, 0xf1, 0x01],
  "f64x2.mul": [0xfd, 0xf2, 0x01],
  "f64x2.div": [0xfd, 0xf3, 0x01],
};

test("text listing: every instruction's offset points at its opcode in the module bytes", () => {
  const mb = kernelModule(DEFAULT_GEMM_BLOCKING, true, true);
  const bytes = mb.toBytes();
  const text = mb.toText();
  let checked = 0;
  const unknown = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /^\s*@\+(\d+)\s+(\S+)/.exec(line);
    if (!m) continue;
    const want = OPCODES[m[2]!];
    if (!want) {
      unknown.add(m[2]!);
      continue;
    }
    const at = Number(m[1]);
    assert.deepEqual([...bytes.subarray(at, at + want.length)], want, `${line.trim()}`);
    checked++;
  }
  assert.deepEqual([...unknown], [], "every instruction in the listing has an opcode in the table");
  assert.ok(checked > 4000, `checked ${checked} instructions`);
  // structure: one (func ...) per function with its parameters, matched blocks
  assert.match(
    text,
    /\(func \$softmax_f32 \(export "softmax_f32"\) \(param \$x i32\) \(param \$out i32\) \(param \$rows i32\) \(param \$cols i32\)/,
  );
  assert.match(text, /\(func \$log64 \(param \$s f64\) \(result f64\)/);
  assert.match(text, /\(local \$xr i32\)/);
  const opens = (text.match(/ (block|loop|if) \$L\d+/g) ?? []).length;
  const ends = (text.match(/ end ;; \$L\d+/g) ?? []).length;
  assert.equal(opens, ends);
  assert.throws(() => new ModuleBuilder().toText(), /ModuleBuilder\.toText: create the builder with new ModuleBuilder\(\{ text: true \}\)/);
});

test("QKVFLOW_WASM_DEBUG writes the kernel module's text listing", () => {
  const dir = mkdtempSync(join(tmpdir(), "qkvflow-wasm-"));
  const out = join(dir, "kernels.wat");
  try {
    const gemmUrl = pathToFileURL(fileURLToPath(new URL("../src/backend/cpu/kernels/gemm.ts", import.meta.url))).href;
    const script = `import { sgemm, simdKernelsAvailable } from ${JSON.stringify(gemmUrl)};
      const a = new Float32Array([1, 2, 3, 4]); const c = new Float32Array(4);
      sgemm({ transA: false, transB: false, m: 2, n: 2, k: 2, a, b: a, c });
      console.log(JSON.stringify({ simd: simdKernelsAvailable(), c: [...c] }));`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      env: { ...process.env, QKVFLOW_WASM_DEBUG: out },
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout.trim().split("\n").pop()!) as { simd: boolean; c: number[] };
    assert.deepEqual(res.c, [7, 10, 15, 22]);
    if (!res.simd) return; // no SIMD: no kernel module is built
    assert.ok(existsSync(out), "listing written");
    const text = readFileSync(out, "utf8");
    assert.match(text, /\(func \$gemm_f32 \(export "gemm_f32"\)/);
    assert.match(text, /\(func \$gelu_bwd_f32 \(export "gelu_bwd_f32"\)/);
    assert.match(r.stderr, /WebAssembly text listing written to/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
