/**
 * A small typed WebAssembly bytecode emitter.
 *
 * Kernels are generated at run time from TypeScript: a `ModuleBuilder` collects function types, an
 * imported (optionally shared) linear memory, functions and exports, and serialises them to the binary
 * format. A `FunctionBuilder` appends instructions to one function body; structured control flow uses
 * label objects so branch depths are computed by the builder rather than by hand.
 *
 * Checking: each instruction checks its operands against a model of the operand stack (value types per
 * function body, block / loop / if frames with their result types, typed locals owned by the function)
 * and throws a `WasmEmitError` naming the function, the instruction, and the expected and found operand
 * types, so a mistake fails at the line that emits it rather than as a `CompileError` at a byte offset.
 *
 * Debugging: the module carries a standard "name" custom section (function names; parameter and local
 * names), so engine stack traces and debuggers show `softmax_f32` and `$xr` instead of indices, and a
 * builder created with `{ text: true }` gives a text listing (`toText()`) with the module byte offset of
 * every instruction. The CPU kernels write theirs when `QKVFLOW_WASM_DEBUG` is set (see runtime.ts).
 *
 * Only the subset of the instruction set the kernels need is covered: i32/i64/f32/f64 scalar ops,
 * loads/stores with static offsets, bulk memory, and the 128-bit SIMD (v128, f32x4, i32x4) operations.
 */

/** A WebAssembly value type. */
export type ValType = "i32" | "i64" | "f32" | "f64" | "v128";

const VALTYPE_CODE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

const UTF8 = new TextEncoder();
/** Scratch for the IEEE-754 writers. */
const SCRATCH = new DataView(new ArrayBuffer(8));

/** A growable byte buffer with LEB128 and IEEE-754 writers. */
export class ByteWriter {
  private buf: Uint8Array<ArrayBuffer> = new Uint8Array(256);
  private len = 0;

  /** Number of bytes written so far. */
  get length(): number {
    return this.len;
  }

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + extra) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  /** Append one byte. */
  byte(b: number): this {
    this.ensure(1);
    this.buf[this.len++] = b & 0xff;
    return this;
  }

  /** Append raw bytes. */
  bytes(src: ArrayLike<number>): this {
    this.ensure(src.length);
    for (let i = 0; i < src.length; i++) this.buf[this.len++] = src[i]! & 0xff;
    return this;
  }

  /** Append an unsigned LEB128 integer (up to 2^32 - 1). */
  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new Error(`ByteWriter.u32: value ${v} is not an unsigned 32-bit integer`);
    }
    let x = v;
    do {
      let b = x % 128;
      x = Math.floor(x / 128);
      if (x !== 0) b |= 0x80;
      this.byte(b);
    } while (x !== 0);
    return this;
  }

  /** Append a signed LEB128 integer (32-bit range). */
  s32(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0xffffffff) {
      throw new Error(`ByteWriter.s32: value ${v} is not a 32-bit integer`);
    }
    let x = v | 0; // values in (2^31, 2^32) wrap to their two's-complement meaning
    for (;;) {
      const b = x & 0x7f;
      x >>= 7;
      const done = (x === 0 && (b & 0x40) === 0) || (x === -1 && (b & 0x40) !== 0);
      this.byte(done ? b : b | 0x80);
      if (done) return this;
    }
  }

  /** Append a signed LEB128 integer from a bigint (64-bit range). */
  s64(v: bigint): this {
    let x = BigInt.asIntN(64, v);
    for (;;) {
      const b = Number(x & 0x7fn);
      x >>= 7n;
      const done = (x === 0n && (b & 0x40) === 0) || (x === -1n && (b & 0x40) !== 0);
      this.byte(done ? b : b | 0x80);
      if (done) return this;
    }
  }

  /** Append a little-endian float32. */
  f32(v: number): this {
    SCRATCH.setFloat32(0, v, true);
    for (let i = 0; i < 4; i++) this.byte(SCRATCH.getUint8(i));
    return this;
  }

  /** Append a little-endian float64. */
  f64(v: number): this {
    SCRATCH.setFloat64(0, v, true);
    for (let i = 0; i < 8; i++) this.byte(SCRATCH.getUint8(i));
    return this;
  }

  /** Append a length-prefixed UTF-8 name. */
  name(s: string): this {
    const enc = UTF8.encode(s);
    this.u32(enc.length);
    return this.bytes(enc);
  }

  /** Append another writer's contents prefixed by its byte length. */
  sized(inner: ByteWriter): this {
    this.u32(inner.length);
    return this.bytes(inner.toBytes());
  }

  /** Copy of the written bytes. */
  toBytes(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.len);
  }
}

/** Thrown when emitted code would not validate: wrong operand types, unbalanced blocks, foreign locals. */
export class WasmEmitError extends Error {
  override readonly name = "WasmEmitError";
}

/** A local variable (or parameter) of a function being built. */
export interface Local {
  readonly index: number;
  readonly type: ValType;
  /** name recorded in the module's name section and used by the text dump */
  readonly name?: string;
}

/** A branch target created by `block`, `loop` or `if`. */
export interface Label {
  readonly id: number;
}

/** A function's index, usable as a `call` target before or after its body is defined. */
export interface FuncRef {
  readonly index: number;
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
}

/** Memory access immediate: static byte offset and alignment (log2 of bytes). */
export interface MemArg {
  offset?: number;
  align?: number;
}

/** Parameter types, in order; a record (`{ x: "i32", n: "i32" }`) also names them. */
export type Params = readonly ValType[] | Readonly<Record<string, ValType>>;

/**
 * How a function is known: a string exports it under that name (and names it so), `{ name }` names an
 * internal function, null leaves an internal function unnamed.
 */
export type FuncName = string | { readonly name: string } | null;

type BlockType = ValType | null;

/** A type on the operand stack as seen by the checker: "any" below a branch (stack-polymorphic code). */
type StackType = ValType | "any";

/** One open control frame: the function body or a block / loop / if. */
interface Frame {
  readonly kind: "function" | "block" | "loop" | "if" | "else";
  /** label id (-1 for the function body) */
  readonly id: number;
  /** types on the stack at the frame's end */
  readonly results: readonly ValType[];
  /** types a branch to the frame's label carries (a loop's label is its start: none) */
  readonly branch: readonly ValType[];
  /** operand stack height when the frame was entered */
  readonly height: number;
  /** after br / return / unreachable: the rest of the frame is not reached and pops are polymorphic */
  unreachable: boolean;
}

/** One instruction of the text dump: byte position in the function's code, nesting depth, text. */
interface TextLine {
  readonly pos: number;
  readonly depth: number;
  readonly text: string;
}

const I32: readonly ValType[] = ["i32"];
const I64: readonly ValType[] = ["i64"];
const F32: readonly ValType[] = ["f32"];
const F64: readonly ValType[] = ["f64"];
const V128: readonly ValType[] = ["v128"];
const NONE: readonly ValType[] = [];
const I32_I32: readonly ValType[] = ["i32", "i32"];
const I32_I32_I32: readonly ValType[] = ["i32", "i32", "i32"];
const I64_I64: readonly ValType[] = ["i64", "i64"];
const F32_F32: readonly ValType[] = ["f32", "f32"];
const F64_F64: readonly ValType[] = ["f64", "f64"];
const V128_V128: readonly ValType[] = ["v128", "v128"];
const V128_V128_V128: readonly ValType[] = ["v128", "v128", "v128"];
const V128_I32: readonly ValType[] = ["v128", "i32"];
const V128_F32: readonly ValType[] = ["v128", "f32"];
const I32_V128: readonly ValType[] = ["i32", "v128"];
const I32_I64: readonly ValType[] = ["i32", "i64"];
const I32_F32: readonly ValType[] = ["i32", "f32"];
const I32_F64: readonly ValType[] = ["i32", "f64"];
/** The one-element type list of each value type. */
const ONE: Record<ValType, readonly ValType[]> = { i32: I32, i64: I64, f32: F32, f64: F64, v128: V128 };

function typeList(ts: readonly StackType[]): string {
  return `[${ts.join(" ")}]`;
}

function numText(v: number | bigint): string {
  if (typeof v === "bigint") return v.toString();
  if (Number.isNaN(v)) return "nan";
  if (v === Infinity) return "inf";
  if (v === -Infinity) return "-inf";
  return Object.is(v, -0) ? "-0" : String(v);
}

/** Options of a `FunctionBuilder` (set by `ModuleBuilder`). */
export interface FunctionOptions {
  /** names of the parameters, by position */
  paramNames?: readonly (string | undefined)[];
  /** name of a call target, for the text dump; throws if the target is not a function of this module */
  funcName?: (f: FuncRef) => string;
  /** record each instruction as text for `ModuleBuilder.toText()` */
  text?: boolean;
}

/** An instruction's immediate as shown in the text dump (a local shows as its name or index). */
type Imm = string | number | Local | undefined;

function immText(imm: Imm): string {
  if (imm === undefined) return "";
  if (typeof imm === "object") return imm.name !== undefined ? ` $${imm.name}` : ` ${imm.index}`;
  return ` ${imm}`;
}

/**
 * Appends instructions to one function body; created by `ModuleBuilder.func`.
 *
 * Every instruction checks its operands against a model of the operand stack (the validation algorithm
 * of the WebAssembly specification: a typed value stack and a stack of control frames with their result
 * types) and throws a `WasmEmitError` naming the function, the instruction, and the expected and actual
 * operand types — at the call that emits the mistake, instead of a `CompileError` at a byte offset later.
 */
export class FunctionBuilder {
  readonly params: Local[];
  private readonly localTypes: ValType[] = [];
  /** every local and parameter of this function, by index (ownership check for get/set/tee) */
  private readonly all: Local[] = [];
  private readonly usedNames = new Set<string>();
  private readonly code = new ByteWriter();
  private readonly stack: StackType[] = [];
  private readonly frames: Frame[];
  /** text of each instruction, when recording */
  private readonly lines: TextLine[] | null;
  private readonly funcName: (f: FuncRef) => string;
  private nextLabel = 0;
  private finished = false;

  constructor(
    readonly name: string,
    paramTypes: readonly ValType[],
    readonly results: readonly ValType[],
    opts: FunctionOptions = {},
  ) {
    const names = opts.paramNames ?? [];
    this.params = paramTypes.map((type, index) => this.register(index, type, names[index]));
    this.frames = [{ kind: "function", id: -1, results, branch: results, height: 0, unreachable: false }];
    this.lines = opts.text ? [] : null;
    this.funcName = opts.funcName ?? ((f) => `${f.index}`);
  }

  private register(index: number, type: ValType, name: string | undefined): Local {
    let entry: Local = { index, type };
    if (name !== undefined) {
      let unique = name;
      for (let k = 1; this.usedNames.has(unique); k++) unique = `${name}_${k}`;
      this.usedNames.add(unique);
      entry = { index, type, name: unique };
    }
    this.all.push(entry);
    return entry;
  }

  /**
   * Declare a new local of the given type, optionally named (name section, text dump); a name already
   * used in this function gets a suffix (`j`, `j_1`, ...).
   */
  local(type: ValType, name?: string): Local {
    const index = this.params.length + this.localTypes.length;
    this.localTypes.push(type);
    return this.register(index, type, name);
  }

  /** Declare several locals of one type; named `${name}0`, `${name}1`, ... when a name is given. */
  locals(type: ValType, count: number, name?: string): Local[] {
    const out: Local[] = [];
    for (let i = 0; i < count; i++) out.push(this.local(type, name === undefined ? undefined : `${name}${i}`));
    return out;
  }

  /** Declare one local of a type per name, in order. */
  named<const N extends readonly string[]>(type: ValType, names: N): { -readonly [K in keyof N]: Local } {
    return names.map((n) => this.local(type, n)) as { -readonly [K in keyof N]: Local };
  }

  // ----- operand type checking -----

  private fail(instr: string, msg: string): never {
    throw new WasmEmitError(`wasm emitter: function "${this.name}": ${instr}: ${msg}`);
  }

  private get frame(): Frame {
    return this.frames[this.frames.length - 1]!;
  }

  /** Pop `want` (last entry on top), checking the types. */
  private pop(instr: string, want: readonly ValType[], imm?: Imm): void {
    const s = this.stack;
    const base = s.length - want.length;
    if (base >= this.frame.height) {
      let ok = true;
      for (let i = 0; i < want.length; i++) {
        const t = s[base + i];
        if (t !== want[i] && t !== "any") {
          ok = false;
          break;
        }
      }
      if (ok) {
        for (let i = 0; i < want.length; i++) s.pop();
        return;
      }
    }
    const fr = this.frame;
    const avail = s.length - fr.height;
    const got: StackType[] = s.slice(s.length - Math.min(avail, want.length));
    const missing = want.length - got.length;
    if (missing > 0 && fr.unreachable) {
      // below a branch the stack is polymorphic: missing operands are of any type
      got.unshift(...new Array<StackType>(missing).fill("any"));
      if (got.every((t, i) => t === "any" || t === want[i])) {
        s.length = fr.height;
        return;
      }
    }
    const where = missing > 0 ? ` (only ${avail} value${avail === 1 ? "" : "s"} in the enclosing ${fr.kind})` : "";
    this.fail(instr + immText(imm), `expected operands ${typeList(want)}, found ${typeList(got)}${where}`);
  }

  /** The stack of the current frame must hold exactly `want` (at a block's end, else, function end). */
  private popExact(instr: string, want: readonly ValType[]): void {
    this.pop(instr, want);
    const extra = this.stack.length - this.frame.height;
    if (extra > 0) {
      const left = this.stack.slice(this.frame.height);
      const s = extra === 1 ? "" : "s";
      const found = typeList([...left, ...want]);
      this.fail(instr, `expected exactly ${typeList(want)} on the stack, found ${found} (${extra} value${s} left over)`);
    }
  }

  private push(ts: readonly ValType[]): void {
    for (let i = 0; i < ts.length; i++) this.stack.push(ts[i]!);
  }

  private markUnreachable(): void {
    const fr = this.frame;
    this.stack.length = fr.height;
    fr.unreachable = true;
  }

  /** Record an instruction's text (when recording) at the current code position. */
  private note(name: string, imm?: Imm, depthOffset = 0): void {
    if (this.finished) this.fail(name, "the function body is already complete");
    if (this.lines) this.lines.push({ pos: this.code.length, depth: this.frames.length - 1 + depthOffset, text: name + immText(imm) });
  }

  /** Check and record an instruction with fixed operand and result types; the caller then encodes it. */
  private ins(name: string, pops: readonly ValType[], pushes: readonly ValType[], imm?: Imm): ByteWriter {
    this.pop(name, pops, imm);
    this.note(name, imm);
    this.push(pushes);
    return this.code;
  }

  /** Single-byte opcode. */
  private op(name: string, code: number, pops: readonly ValType[], pushes: readonly ValType[]): this {
    this.ins(name, pops, pushes).byte(code);
    return this;
  }

  /** SIMD-prefixed opcode (0xfd). */
  private simd(name: string, code: number, pops: readonly ValType[], pushes: readonly ValType[], imm?: Imm): this {
    this.ins(name, pops, pushes, imm).byte(0xfd).u32(code);
    return this;
  }

  /** SIMD lane instruction: opcode and one lane-index byte. */
  private lane(name: string, code: number, lane: number, lanes: number, pops: readonly ValType[], pushes: readonly ValType[]): this {
    if (!Number.isInteger(lane) || lane < 0 || lane >= lanes) this.fail(name, `lane ${lane} is outside 0..${lanes - 1}`);
    this.simd(name, code, pops, pushes, lane);
    this.code.byte(lane);
    return this;
  }

  /** Load or store: opcode (optionally prefixed), alignment and offset immediates, optional lane byte. */
  private mem(
    name: string,
    code: number,
    natural: number,
    m: MemArg | undefined,
    pops: readonly ValType[],
    pushes: readonly ValType[],
    prefix?: number,
    lane?: number,
    lanes = 0,
  ): this {
    const align = m?.align ?? natural;
    const offset = m?.offset ?? 0;
    if (align > natural) this.fail(name, `alignment 2^${align} exceeds natural 2^${natural}`);
    if (lane !== undefined && (!Number.isInteger(lane) || lane < 0 || lane >= lanes)) {
      this.fail(name, `lane ${lane} is outside 0..${lanes - 1}`);
    }
    let imm: string | undefined;
    if (this.lines) {
      const parts: string[] = [];
      if (offset !== 0) parts.push(`offset=${offset}`);
      if (align !== natural) parts.push(`align=${2 ** align}`);
      if (lane !== undefined) parts.push(`${lane}`);
      if (parts.length > 0) imm = parts.join(" ");
    }
    const w = this.ins(name, pops, pushes, imm);
    if (prefix !== undefined) w.byte(prefix).u32(code);
    else w.byte(code);
    w.u32(align).u32(offset);
    if (lane !== undefined) w.byte(lane);
    return this;
  }

  private checkLocal(instr: string, l: Local): void {
    if (this.all[l.index] !== l) {
      this.fail(instr, `local ${l.index} (${l.type}${l.name !== undefined ? ` $${l.name}` : ""}) was not declared in this function`);
    }
  }

  // ----- control flow -----

  private frameOf(instr: string, label: Label): { frame: Frame; depth: number } {
    for (let i = this.frames.length - 1; i >= 1; i--) {
      if (this.frames[i]!.id === label.id) return { frame: this.frames[i]!, depth: this.frames.length - 1 - i };
    }
    return this.fail(instr, `branch to label $L${label.id}, which is not in scope`);
  }

  private open(kind: "block" | "loop" | "if", code: number, type: BlockType): Label {
    const id = this.nextLabel++;
    this.note(kind, this.lines ? `$L${id}${type === null ? "" : ` (result ${type})`}` : undefined);
    this.code.byte(code).byte(type === null ? 0x40 : VALTYPE_CODE[type]);
    const results = type === null ? NONE : ONE[type];
    const branch = kind === "loop" ? NONE : results;
    this.frames.push({ kind, id, results, branch, height: this.stack.length, unreachable: false });
    return { id };
  }

  private close(): void {
    const fr = this.frame;
    this.popExact(`end of ${fr.kind === "else" ? "if" : fr.kind} $L${fr.id}`, fr.results);
    this.frames.pop();
    this.note("end", this.lines ? `;; $L${fr.id}` : undefined);
    this.code.byte(0x0b);
    this.push(fr.results);
  }

  /** `block ... end`; branching to the label jumps past the end. */
  block(body: (l: Label) => void, type: BlockType = null): this {
    const l = this.open("block", 0x02, type);
    body(l);
    this.close();
    return this;
  }

  /** `loop ... end`; branching to the label jumps back to the start. */
  loop(body: (l: Label) => void, type: BlockType = null): this {
    const l = this.open("loop", 0x03, type);
    body(l);
    this.close();
    return this;
  }

  /** `if ... [else ...] end` consuming an i32 condition from the stack. */
  if(then: (l: Label) => void, otherwise?: (l: Label) => void, type: BlockType = null): this {
    this.pop("if", I32);
    if (!otherwise && type !== null) this.fail("if", `an if with result ${type} needs an else branch`);
    const l = this.open("if", 0x04, type);
    then(l);
    if (otherwise) {
      const fr = this.frame;
      this.popExact(`else of if $L${fr.id}`, fr.results);
      this.frames[this.frames.length - 1] = { ...fr, kind: "else", unreachable: false };
      this.note("else", undefined, -1);
      this.code.byte(0x05);
      otherwise(l);
    }
    this.close();
    return this;
  }

  /** Unconditional branch to a label. */
  br(label: Label): this {
    const { frame, depth } = this.frameOf("br", label);
    this.pop("br", frame.branch, `$L${label.id}`);
    this.note("br", this.lines ? `$L${label.id}` : undefined);
    this.code.byte(0x0c).u32(depth);
    this.markUnreachable();
    return this;
  }

  /** Branch to a label if the i32 on the stack is non-zero. */
  brIf(label: Label): this {
    const { frame, depth } = this.frameOf("br_if", label);
    this.pop("br_if", I32, `$L${label.id}`);
    this.pop("br_if", frame.branch, `$L${label.id}`);
    this.note("br_if", this.lines ? `$L${label.id}` : undefined);
    this.code.byte(0x0d).u32(depth);
    this.push(frame.branch);
    return this;
  }

  /** Return from the function. */
  ret(): this {
    this.pop("return", this.results);
    this.note("return");
    this.code.byte(0x0f);
    this.markUnreachable();
    return this;
  }

  /** Call a function. */
  call(f: FuncRef): this {
    this.ins("call", f.params, f.results, `$${this.funcName(f)}`)
      .byte(0x10)
      .u32(f.index);
    return this;
  }

  /** Drop the top of the stack. */
  drop(): this {
    const fr = this.frame;
    if (this.stack.length <= fr.height && !fr.unreachable) this.fail("drop", "expected one operand, found []");
    if (this.stack.length > fr.height) this.stack.pop();
    this.note("drop");
    this.code.byte(0x1a);
    return this;
  }

  /** `select`: pick one of two values of one type by an i32 condition. */
  select(): this {
    const fr = this.frame;
    const got = this.stack.slice(Math.max(fr.height, this.stack.length - 3));
    const full: StackType[] = fr.unreachable ? [...new Array<StackType>(3 - got.length).fill("any"), ...got] : got;
    const [a, b, c] = full;
    const ok = full.length === 3 && (c === "any" || c === "i32") && (a === "any" || b === "any" || a === b);
    if (!ok) this.fail("select", `expected operands [t t i32] (two values of one type, then an i32), found ${typeList(got)}`);
    this.stack.length -= got.length;
    this.note("select");
    this.code.byte(0x1b);
    this.stack.push(a === "any" ? b! : a!);
    return this;
  }

  /** Trap. */
  unreachable(): this {
    this.note("unreachable");
    this.code.byte(0x00);
    this.markUnreachable();
    return this;
  }

  // ----- locals -----

  /** Push a local's value. */
  get(l: Local): this {
    this.checkLocal("local.get", l);
    this.ins("local.get", NONE, ONE[l.type], l).byte(0x20).u32(l.index);
    return this;
  }

  /** Pop into a local. */
  set(l: Local): this {
    this.checkLocal("local.set", l);
    this.ins("local.set", ONE[l.type], NONE, l).byte(0x21).u32(l.index);
    return this;
  }

  /** Store into a local, keeping the value on the stack. */
  tee(l: Local): this {
    this.checkLocal("local.tee", l);
    this.ins("local.tee", ONE[l.type], ONE[l.type], l).byte(0x22).u32(l.index);
    return this;
  }

  // ----- constants -----

  /** Push an i32 constant. */
  i32Const(v: number): this {
    this.ins("i32.const", NONE, I32, v | 0)
      .byte(0x41)
      .s32(v);
    return this;
  }

  /** Push an i64 constant. */
  i64Const(v: bigint): this {
    this.ins("i64.const", NONE, I64, this.lines ? numText(BigInt.asIntN(64, v)) : undefined)
      .byte(0x42)
      .s64(v);
    return this;
  }

  /** Push an f32 constant. */
  f32Const(v: number): this {
    this.ins("f32.const", NONE, F32, this.lines ? numText(Math.fround(v)) : undefined)
      .byte(0x43)
      .f32(v);
    return this;
  }

  /** Push an f64 constant. */
  f64Const(v: number): this {
    this.ins("f64.const", NONE, F64, this.lines ? numText(v) : undefined)
      .byte(0x44)
      .f64(v);
    return this;
  }

  /** Push a v128 constant given four f32 lanes. */
  f32x4Const(a: number, b: number, c: number, d: number): this {
    const imm = this.lines ? `f32x4 ${[a, b, c, d].map((x) => numText(Math.fround(x))).join(" ")}` : undefined;
    this.ins("v128.const", NONE, V128, imm).byte(0xfd).u32(0x0c).f32(a).f32(b).f32(c).f32(d);
    return this;
  }

  /** Push a v128 constant given four i32 lanes. */
  i32x4Const(a: number, b: number, c: number, d: number): this {
    const imm = this.lines ? `i32x4 ${a | 0} ${b | 0} ${c | 0} ${d | 0}` : undefined;
    const w = this.ins("v128.const", NONE, V128, imm).byte(0xfd).u32(0x0c);
    const dv = new DataView(new ArrayBuffer(16));
    [a, b, c, d].forEach((v, i) => dv.setInt32(i * 4, v | 0, true));
    for (let i = 0; i < 16; i++) w.byte(dv.getUint8(i));
    return this;
  }

  // ----- memory -----

  /** i32.load */ i32Load(m?: MemArg): this {
    return this.mem("i32.load", 0x28, 2, m, I32, I32);
  }
  /** i64.load */ i64Load(m?: MemArg): this {
    return this.mem("i64.load", 0x29, 3, m, I32, I64);
  }
  /** f32.load */ f32Load(m?: MemArg): this {
    return this.mem("f32.load", 0x2a, 2, m, I32, F32);
  }
  /** f64.load */ f64Load(m?: MemArg): this {
    return this.mem("f64.load", 0x2b, 3, m, I32, F64);
  }
  /** i32.store */ i32Store(m?: MemArg): this {
    return this.mem("i32.store", 0x36, 2, m, I32_I32, NONE);
  }
  /** i64.store */ i64Store(m?: MemArg): this {
    return this.mem("i64.store", 0x37, 3, m, I32_I64, NONE);
  }
  /** f32.store */ f32Store(m?: MemArg): this {
    return this.mem("f32.store", 0x38, 2, m, I32_F32, NONE);
  }
  /** f64.store */ f64Store(m?: MemArg): this {
    return this.mem("f64.store", 0x39, 3, m, I32_F64, NONE);
  }
  /** memory.size (in 64 KiB pages) */
  memorySize(): this {
    this.ins("memory.size", NONE, I32).byte(0x3f).byte(0);
    return this;
  }
  /** memory.grow (pages on stack; pushes old size or -1) */
  memoryGrow(): this {
    this.ins("memory.grow", I32, I32).byte(0x40).byte(0);
    return this;
  }
  /** memory.copy (dst, src, len) */
  memoryCopy(): this {
    this.ins("memory.copy", I32_I32_I32, NONE).byte(0xfc).u32(10).byte(0).byte(0);
    return this;
  }
  /** memory.fill (dst, byte value, len) */
  memoryFill(): this {
    this.ins("memory.fill", I32_I32_I32, NONE).byte(0xfc).u32(11).byte(0);
    return this;
  }

  // ----- i32 -----
  /** i32.eqz */ i32Eqz(): this {
    return this.op("i32.eqz", 0x45, I32, I32);
  }
  /** i32.eq */ i32Eq(): this {
    return this.op("i32.eq", 0x46, I32_I32, I32);
  }
  /** i32.ne */ i32Ne(): this {
    return this.op("i32.ne", 0x47, I32_I32, I32);
  }
  /** i32.lt_s */ i32LtS(): this {
    return this.op("i32.lt_s", 0x48, I32_I32, I32);
  }
  /** i32.lt_u */ i32LtU(): this {
    return this.op("i32.lt_u", 0x49, I32_I32, I32);
  }
  /** i32.gt_s */ i32GtS(): this {
    return this.op("i32.gt_s", 0x4a, I32_I32, I32);
  }
  /** i32.gt_u */ i32GtU(): this {
    return this.op("i32.gt_u", 0x4b, I32_I32, I32);
  }
  /** i32.le_s */ i32LeS(): this {
    return this.op("i32.le_s", 0x4c, I32_I32, I32);
  }
  /** i32.le_u */ i32LeU(): this {
    return this.op("i32.le_u", 0x4d, I32_I32, I32);
  }
  /** i32.ge_s */ i32GeS(): this {
    return this.op("i32.ge_s", 0x4e, I32_I32, I32);
  }
  /** i32.ge_u */ i32GeU(): this {
    return this.op("i32.ge_u", 0x4f, I32_I32, I32);
  }
  /** i32.add */ i32Add(): this {
    return this.op("i32.add", 0x6a, I32_I32, I32);
  }
  /** i32.sub */ i32Sub(): this {
    return this.op("i32.sub", 0x6b, I32_I32, I32);
  }
  /** i32.mul */ i32Mul(): this {
    return this.op("i32.mul", 0x6c, I32_I32, I32);
  }
  /** i32.div_s */ i32DivS(): this {
    return this.op("i32.div_s", 0x6d, I32_I32, I32);
  }
  /** i32.div_u */ i32DivU(): this {
    return this.op("i32.div_u", 0x6e, I32_I32, I32);
  }
  /** i32.rem_u */ i32RemU(): this {
    return this.op("i32.rem_u", 0x70, I32_I32, I32);
  }
  /** i32.and */ i32And(): this {
    return this.op("i32.and", 0x71, I32_I32, I32);
  }
  /** i32.or */ i32Or(): this {
    return this.op("i32.or", 0x72, I32_I32, I32);
  }
  /** i32.xor */ i32Xor(): this {
    return this.op("i32.xor", 0x73, I32_I32, I32);
  }
  /** i32.shl */ i32Shl(): this {
    return this.op("i32.shl", 0x74, I32_I32, I32);
  }
  /** i32.shr_s */ i32ShrS(): this {
    return this.op("i32.shr_s", 0x75, I32_I32, I32);
  }
  /** i32.shr_u */ i32ShrU(): this {
    return this.op("i32.shr_u", 0x76, I32_I32, I32);
  }

  // ----- f32 -----
  /** f32.eq */ f32Eq(): this {
    return this.op("f32.eq", 0x5b, F32_F32, I32);
  }
  /** f32.ne */ f32Ne(): this {
    return this.op("f32.ne", 0x5c, F32_F32, I32);
  }
  /** f32.lt */ f32Lt(): this {
    return this.op("f32.lt", 0x5d, F32_F32, I32);
  }
  /** f32.gt */ f32Gt(): this {
    return this.op("f32.gt", 0x5e, F32_F32, I32);
  }
  /** f32.le */ f32Le(): this {
    return this.op("f32.le", 0x5f, F32_F32, I32);
  }
  /** f32.ge */ f32Ge(): this {
    return this.op("f32.ge", 0x60, F32_F32, I32);
  }
  /** f32.abs */ f32Abs(): this {
    return this.op("f32.abs", 0x8b, F32, F32);
  }
  /** f32.neg */ f32Neg(): this {
    return this.op("f32.neg", 0x8c, F32, F32);
  }
  /** f32.floor */ f32Floor(): this {
    return this.op("f32.floor", 0x8e, F32, F32);
  }
  /** f32.nearest */ f32Nearest(): this {
    return this.op("f32.nearest", 0x90, F32, F32);
  }
  /** f32.sqrt */ f32Sqrt(): this {
    return this.op("f32.sqrt", 0x91, F32, F32);
  }
  /** f32.add */ f32Add(): this {
    return this.op("f32.add", 0x92, F32_F32, F32);
  }
  /** f32.sub */ f32Sub(): this {
    return this.op("f32.sub", 0x93, F32_F32, F32);
  }
  /** f32.mul */ f32Mul(): this {
    return this.op("f32.mul", 0x94, F32_F32, F32);
  }
  /** f32.div */ f32Div(): this {
    return this.op("f32.div", 0x95, F32_F32, F32);
  }
  /** f32.min */ f32Min(): this {
    return this.op("f32.min", 0x96, F32_F32, F32);
  }
  /** f32.max */ f32Max(): this {
    return this.op("f32.max", 0x97, F32_F32, F32);
  }

  // ----- f64 -----
  /** f64.add */ f64Add(): this {
    return this.op("f64.add", 0xa0, F64_F64, F64);
  }
  /** f64.sub */ f64Sub(): this {
    return this.op("f64.sub", 0xa1, F64_F64, F64);
  }
  /** f64.mul */ f64Mul(): this {
    return this.op("f64.mul", 0xa2, F64_F64, F64);
  }
  /** f64.div */ f64Div(): this {
    return this.op("f64.div", 0xa3, F64_F64, F64);
  }

  /** f64.neg */ f64Neg(): this {
    return this.op("f64.neg", 0x9a, F64, F64);
  }
  /** f64.sqrt */ f64Sqrt(): this {
    return this.op("f64.sqrt", 0x9f, F64, F64);
  }
  /** f64.min */ f64Min(): this {
    return this.op("f64.min", 0xa4, F64_F64, F64);
  }
  /** f64.max */ f64Max(): this {
    return this.op("f64.max", 0xa5, F64_F64, F64);
  }
  /** f64.eq */ f64Eq(): this {
    return this.op("f64.eq", 0x61, F64_F64, I32);
  }
  /** f64.lt */ f64Lt(): this {
    return this.op("f64.lt", 0x63, F64_F64, I32);
  }
  /** f64.gt */ f64Gt(): this {
    return this.op("f64.gt", 0x64, F64_F64, I32);
  }
  /** f64.le */ f64Le(): this {
    return this.op("f64.le", 0x65, F64_F64, I32);
  }
  /** f64.ge */ f64Ge(): this {
    return this.op("f64.ge", 0x66, F64_F64, I32);
  }

  // ----- i64 -----
  /** i64.add */ i64Add(): this {
    return this.op("i64.add", 0x7c, I64_I64, I64);
  }
  /** i64.sub */ i64Sub(): this {
    return this.op("i64.sub", 0x7d, I64_I64, I64);
  }
  /** i64.and */ i64And(): this {
    return this.op("i64.and", 0x83, I64_I64, I64);
  }
  /** i64.or */ i64Or(): this {
    return this.op("i64.or", 0x84, I64_I64, I64);
  }
  /** i64.shl */ i64Shl(): this {
    return this.op("i64.shl", 0x86, I64_I64, I64);
  }
  /** i64.shr_u */ i64ShrU(): this {
    return this.op("i64.shr_u", 0x88, I64_I64, I64);
  }

  // ----- conversions -----
  /** i32.wrap_i64 */ i32WrapI64(): this {
    return this.op("i32.wrap_i64", 0xa7, I64, I32);
  }
  /** i64.extend_i32_s */ i64ExtendI32S(): this {
    return this.op("i64.extend_i32_s", 0xac, I32, I64);
  }
  /** f64.convert_i32_s */ f64ConvertI32S(): this {
    return this.op("f64.convert_i32_s", 0xb7, I32, F64);
  }
  /** i64.reinterpret_f64 */ i64ReinterpretF64(): this {
    return this.op("i64.reinterpret_f64", 0xbd, F64, I64);
  }
  /** f64.reinterpret_i64 */ f64ReinterpretI64(): this {
    return this.op("f64.reinterpret_i64", 0xbf, I64, F64);
  }
  /** i32.trunc_sat_f32_s */
  i32TruncSatF32S(): this {
    this.ins("i32.trunc_sat_f32_s", F32, I32).byte(0xfc).u32(0);
    return this;
  }
  /** f32.convert_i32_s */ f32ConvertI32S(): this {
    return this.op("f32.convert_i32_s", 0xb2, I32, F32);
  }
  /** f32.demote_f64 */ f32DemoteF64(): this {
    return this.op("f32.demote_f64", 0xb6, F64, F32);
  }
  /** f64.promote_f32 */ f64PromoteF32(): this {
    return this.op("f64.promote_f32", 0xbb, F32, F64);
  }
  /** i32.reinterpret_f32 */ i32ReinterpretF32(): this {
    return this.op("i32.reinterpret_f32", 0xbc, F32, I32);
  }
  /** f32.reinterpret_i32 */ f32ReinterpretI32(): this {
    return this.op("f32.reinterpret_i32", 0xbe, I32, F32);
  }

  // ----- v128 memory -----
  /** v128.load */ v128Load(m?: MemArg): this {
    return this.mem("v128.load", 0x00, 4, m, I32, V128, 0xfd);
  }
  /** v128.store */ v128Store(m?: MemArg): this {
    return this.mem("v128.store", 0x0b, 4, m, I32_V128, NONE, 0xfd);
  }
  /** v128.load32_splat */ v128Load32Splat(m?: MemArg): this {
    return this.mem("v128.load32_splat", 0x09, 2, m, I32, V128, 0xfd);
  }
  /** v128.load64_splat */ v128Load64Splat(m?: MemArg): this {
    return this.mem("v128.load64_splat", 0x0a, 3, m, I32, V128, 0xfd);
  }
  /** v128.load32_zero */ v128Load32Zero(m?: MemArg): this {
    return this.mem("v128.load32_zero", 0x5c, 2, m, I32, V128, 0xfd);
  }
  /** v128.load64_zero */ v128Load64Zero(m?: MemArg): this {
    return this.mem("v128.load64_zero", 0x5d, 3, m, I32, V128, 0xfd);
  }

  /** v128.store64_lane: store lane `lane` (0 or 1) as 8 bytes. */
  v128Store64Lane(lane: number, m?: MemArg): this {
    return this.mem("v128.store64_lane", 0x5b, 3, m, I32_V128, NONE, 0xfd, lane, 2);
  }

  /** v128.store32_lane: store lane `lane` (0..3) as 4 bytes. */
  v128Store32Lane(lane: number, m?: MemArg): this {
    return this.mem("v128.store32_lane", 0x5a, 2, m, I32_V128, NONE, 0xfd, lane, 4);
  }

  // ----- v128 lanes / bitwise -----
  /** i8x16.shuffle with 16 byte-lane indices into the concatenation of two vectors. */
  i8x16Shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16 || lanes.some((l) => !Number.isInteger(l) || l < 0 || l > 31)) {
      throw new Error(`FunctionBuilder.i8x16Shuffle: expected 16 lane indices in 0..31, got [${lanes.join(",")}]`);
    }
    this.simd("i8x16.shuffle", 0x0d, V128_V128, V128, this.lines ? lanes.join(" ") : undefined);
    this.code.bytes(lanes);
    return this;
  }

  /** Shuffle two f32x4 vectors by 32-bit lane indices (0..7). */
  f32x4Shuffle(a: number, b: number, c: number, d: number): this {
    const bytes: number[] = [];
    for (const l of [a, b, c, d]) for (let i = 0; i < 4; i++) bytes.push(l * 4 + i);
    return this.i8x16Shuffle(bytes);
  }

  /** f32x4.splat */ f32x4Splat(): this {
    return this.simd("f32x4.splat", 0x13, F32, V128);
  }
  /** f64x2.splat */ f64x2Splat(): this {
    return this.simd("f64x2.splat", 0x14, F64, V128);
  }
  /** i32x4.splat */ i32x4Splat(): this {
    return this.simd("i32x4.splat", 0x11, I32, V128);
  }

  /** f32x4.extract_lane */
  f32x4ExtractLane(lane: number): this {
    return this.lane("f32x4.extract_lane", 0x1f, lane, 4, V128, F32);
  }

  /** f32x4.replace_lane */
  f32x4ReplaceLane(lane: number): this {
    return this.lane("f32x4.replace_lane", 0x20, lane, 4, V128_F32, V128);
  }

  /** v128.not */ v128Not(): this {
    return this.simd("v128.not", 0x4d, V128, V128);
  }
  /** v128.and */ v128And(): this {
    return this.simd("v128.and", 0x4e, V128_V128, V128);
  }
  /** v128.andnot */ v128AndNot(): this {
    return this.simd("v128.andnot", 0x4f, V128_V128, V128);
  }
  /** v128.or */ v128Or(): this {
    return this.simd("v128.or", 0x50, V128_V128, V128);
  }
  /** v128.xor */ v128Xor(): this {
    return this.simd("v128.xor", 0x51, V128_V128, V128);
  }
  /** v128.bitselect (v1, v2, mask): lanes of v1 where mask bits set, else v2 */
  v128Bitselect(): this {
    return this.simd("v128.bitselect", 0x52, V128_V128_V128, V128);
  }
  /** v128.any_true */ v128AnyTrue(): this {
    return this.simd("v128.any_true", 0x53, V128, I32);
  }

  // ----- f32x4 -----
  /** f32x4.eq */ f32x4Eq(): this {
    return this.simd("f32x4.eq", 0x41, V128_V128, V128);
  }
  /** f32x4.ne */ f32x4Ne(): this {
    return this.simd("f32x4.ne", 0x42, V128_V128, V128);
  }
  /** f32x4.lt */ f32x4Lt(): this {
    return this.simd("f32x4.lt", 0x43, V128_V128, V128);
  }
  /** f32x4.gt */ f32x4Gt(): this {
    return this.simd("f32x4.gt", 0x44, V128_V128, V128);
  }
  /** f32x4.le */ f32x4Le(): this {
    return this.simd("f32x4.le", 0x45, V128_V128, V128);
  }
  /** f32x4.ge */ f32x4Ge(): this {
    return this.simd("f32x4.ge", 0x46, V128_V128, V128);
  }
  /** f32x4.floor */ f32x4Floor(): this {
    return this.simd("f32x4.floor", 0x68, V128, V128);
  }
  /** f32x4.nearest */ f32x4Nearest(): this {
    return this.simd("f32x4.nearest", 0x6a, V128, V128);
  }
  /** f32x4.abs */ f32x4Abs(): this {
    return this.simd("f32x4.abs", 0xe0, V128, V128);
  }
  /** f32x4.neg */ f32x4Neg(): this {
    return this.simd("f32x4.neg", 0xe1, V128, V128);
  }
  /** f32x4.sqrt */ f32x4Sqrt(): this {
    return this.simd("f32x4.sqrt", 0xe3, V128, V128);
  }
  /** f32x4.add */ f32x4Add(): this {
    return this.simd("f32x4.add", 0xe4, V128_V128, V128);
  }
  /** f32x4.sub */ f32x4Sub(): this {
    return this.simd("f32x4.sub", 0xe5, V128_V128, V128);
  }
  /** f32x4.mul */ f32x4Mul(): this {
    return this.simd("f32x4.mul", 0xe6, V128_V128, V128);
  }
  /** f32x4.div */ f32x4Div(): this {
    return this.simd("f32x4.div", 0xe7, V128_V128, V128);
  }
  /** f32x4.min */ f32x4Min(): this {
    return this.simd("f32x4.min", 0xe8, V128_V128, V128);
  }
  /** f32x4.max */ f32x4Max(): this {
    return this.simd("f32x4.max", 0xe9, V128_V128, V128);
  }
  /** f32x4.pmin */ f32x4PMin(): this {
    return this.simd("f32x4.pmin", 0xea, V128_V128, V128);
  }
  /** f32x4.pmax */ f32x4PMax(): this {
    return this.simd("f32x4.pmax", 0xeb, V128_V128, V128);
  }

  // ----- f64x2 -----
  /** f64x2.add */ f64x2Add(): this {
    return this.simd("f64x2.add", 0xf0, V128_V128, V128);
  }
  /** f64x2.sub */ f64x2Sub(): this {
    return this.simd("f64x2.sub", 0xf1, V128_V128, V128);
  }
  /** f64x2.mul */ f64x2Mul(): this {
    return this.simd("f64x2.mul", 0xf2, V128_V128, V128);
  }
  /** f64x2.div */ f64x2Div(): this {
    return this.simd("f64x2.div", 0xf3, V128_V128, V128);
  }
  /** f64x2.sqrt */ f64x2Sqrt(): this {
    return this.simd("f64x2.sqrt", 0xef, V128, V128);
  }
  /** f32x4.demote_f64x2_zero */ f32x4DemoteF64x2Zero(): this {
    return this.simd("f32x4.demote_f64x2_zero", 0x5e, V128, V128);
  }
  /** f64x2.promote_low_f32x4 */ f64x2PromoteLowF32x4(): this {
    return this.simd("f64x2.promote_low_f32x4", 0x5f, V128, V128);
  }
  /** f64x2.extract_lane */
  f64x2ExtractLane(lane: number): this {
    return this.lane("f64x2.extract_lane", 0x21, lane, 2, V128, F64);
  }

  // ----- i32x4 -----
  /** i32x4.add */ i32x4Add(): this {
    return this.simd("i32x4.add", 0xae, V128_V128, V128);
  }
  /** i32x4.sub */ i32x4Sub(): this {
    return this.simd("i32x4.sub", 0xb1, V128_V128, V128);
  }
  /** i32x4.shl */ i32x4Shl(): this {
    return this.simd("i32x4.shl", 0xab, V128_I32, V128);
  }
  /** i32x4.shr_s */ i32x4ShrS(): this {
    return this.simd("i32x4.shr_s", 0xac, V128_I32, V128);
  }
  /** i32x4.shr_u */ i32x4ShrU(): this {
    return this.simd("i32x4.shr_u", 0xad, V128_I32, V128);
  }
  /** i32x4.mul */ i32x4Mul(): this {
    return this.simd("i32x4.mul", 0xb5, V128_V128, V128);
  }
  /** i32x4.ge_u */ i32x4GeU(): this {
    return this.simd("i32x4.ge_u", 0x40, V128_V128, V128);
  }
  /** i64x2.extmul_low_i32x4_u: full 64-bit products of lanes 0, 1 */ i64x2ExtmulLowI32x4U(): this {
    return this.simd("i64x2.extmul_low_i32x4_u", 0xde, V128_V128, V128);
  }
  /** i64x2.extmul_high_i32x4_u: full 64-bit products of lanes 2, 3 */ i64x2ExtmulHighI32x4U(): this {
    return this.simd("i64x2.extmul_high_i32x4_u", 0xdf, V128_V128, V128);
  }
  /** i32x4.trunc_sat_f32x4_s */ i32x4TruncSatF32x4S(): this {
    return this.simd("i32x4.trunc_sat_f32x4_s", 0xf8, V128, V128);
  }
  /** f32x4.convert_i32x4_s */ f32x4ConvertI32x4S(): this {
    return this.simd("f32x4.convert_i32x4_s", 0xfa, V128, V128);
  }

  // ----- helpers -----

  /**
   * Counted loop: `for (i = start; i < end; i += step) body()` where start/end are emitted by callbacks
   * (pushing one i32) and step is a constant or an i32 local. The loop test is at the top, so zero
   * iterations are fine.
   */
  forRange(i: Local, start: () => void, end: () => void, step: number | Local, body: () => void): this {
    start();
    this.set(i);
    this.block((exit) => {
      this.loop((top) => {
        this.get(i);
        end();
        this.i32GeS();
        this.brIf(exit);
        body();
        this.get(i);
        if (typeof step === "number") this.i32Const(step);
        else this.get(step);
        this.i32Add().set(i);
        this.br(top);
      });
    });
    return this;
  }

  /** Check that the body leaves exactly the function's results; no instruction may follow. */
  finish(): void {
    if (this.finished) return;
    if (this.frames.length !== 1) this.fail("end of function", `block $L${this.frame.id} is still open`);
    this.popExact("end of function", this.results);
    this.finished = true;
  }

  /** Serialised body (locals + code) for the code section, and the offset of the first instruction in it. */
  encode(): { bytes: Uint8Array; codeStart: number } {
    this.finish();
    const w = new ByteWriter();
    // group consecutive locals of the same type
    const groups: [number, ValType][] = [];
    for (const t of this.localTypes) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    w.u32(groups.length);
    for (const [n, t] of groups) w.u32(n).byte(VALTYPE_CODE[t]);
    const codeStart = w.length;
    w.bytes(this.code.toBytes());
    w.byte(0x0b);
    return { bytes: w.toBytes(), codeStart };
  }

  /** Names of the named parameters and locals, by index (for the name section). */
  localNames(): [number, string][] {
    return this.all.filter((l) => l.name !== undefined).map((l) => [l.index, l.name!]);
  }

  /**
   * Text listing of the body: declarations of the locals, then one instruction per line, indented by
   * block depth and prefixed with its byte offset (`codeBase` = module offset of the first instruction).
   */
  text(header: string, codeBase: number): string {
    const out = [header];
    for (const l of this.all.slice(this.params.length)) {
      out.push(`  (local ${l.name !== undefined ? `$${l.name} ` : ""}${l.type})  ;; ${l.index}`);
    }
    const width = String(codeBase + this.code.length).length;
    for (const ln of this.lines ?? []) {
      out.push(`  @+${String(codeBase + ln.pos).padEnd(width)}  ${"  ".repeat(ln.depth)}${ln.text}`);
    }
    out.push(")");
    return out.join("\n");
  }
}

/** Options for the imported linear memory. */
export interface MemoryImport {
  module: string;
  name: string;
  initialPages: number;
  maximumPages?: number;
  shared?: boolean;
}

interface FuncEntry {
  ref: FuncRef;
  typeIndex: number;
  builder: FunctionBuilder | null;
  exportName: string | null;
  /** name for the name section, error messages and the text dump (null: unnamed) */
  name: string | null;
  paramNames: readonly (string | undefined)[];
}

function normaliseParams(params: Params): { types: readonly ValType[]; names: readonly (string | undefined)[] } {
  if (Array.isArray(params)) return { types: params as readonly ValType[], names: [] };
  const entries = Object.entries(params as Readonly<Record<string, ValType>>);
  const bad = entries.find(([k]) => /^\d+$/.test(k));
  if (bad) throw new Error(`ModuleBuilder: parameter name "${bad[0]}" would reorder the record; use a non-numeric name`);
  return { types: entries.map(([, t]) => t), names: entries.map(([k]) => k) };
}

/** Serialised module and, per function, the module offset of its first instruction. */
interface Layout {
  bytes: Uint8Array<ArrayBuffer>;
  codeStarts: number[];
}

/** Options of a `ModuleBuilder`. */
export interface ModuleOptions {
  /** record every instruction as text, for `toText()` (off by default: it costs time and memory) */
  text?: boolean;
}

/** Builds a WebAssembly module: one imported memory, functions and their exports, and a name section. */
export class ModuleBuilder {
  private readonly text: boolean;
  private readonly types: string[] = [];
  private readonly typeSigs: { params: readonly ValType[]; results: readonly ValType[] }[] = [];
  private readonly funcs: FuncEntry[] = [];
  private memory: MemoryImport | null = null;

  constructor(opts: ModuleOptions = {}) {
    this.text = opts.text ?? false;
  }

  /** Import a linear memory (index 0). */
  importMemory(m: MemoryImport): this {
    if (m.shared && m.maximumPages === undefined) {
      throw new Error("ModuleBuilder.importMemory: a shared memory needs maximumPages");
    }
    this.memory = m;
    return this;
  }

  private typeIndex(params: readonly ValType[], results: readonly ValType[]): number {
    const key = `${params.join(",")}->${results.join(",")}`;
    let idx = this.types.indexOf(key);
    if (idx < 0) {
      idx = this.types.length;
      this.types.push(key);
      this.typeSigs.push({ params, results });
    }
    return idx;
  }

  private label(e: FuncEntry): string {
    return e.name ?? `${e.ref.index}`;
  }

  /** Declare a function (so it can be called) whose body is given later with `define`. */
  declare(name: FuncName, params: Params, results: readonly ValType[] = []): FuncRef {
    const { types, names } = normaliseParams(params);
    const ref: FuncRef = { index: this.funcs.length, params: types, results };
    const exportName = typeof name === "string" ? name : null;
    const debugName = typeof name === "string" ? name : name === null ? null : name.name;
    this.funcs.push({ ref, typeIndex: this.typeIndex(types, results), builder: null, exportName, name: debugName, paramNames: names });
    return ref;
  }

  /** Give the body of a declared function; its operand types are checked as it is emitted. */
  define(ref: FuncRef, body: (f: FunctionBuilder, ...params: Local[]) => void): FuncRef {
    const entry = this.funcs[ref.index];
    if (!entry || entry.ref !== ref) throw new Error("ModuleBuilder.define: unknown function reference");
    if (entry.builder) throw new Error(`ModuleBuilder.define: function ${this.label(entry)} already defined`);
    const lookup = (f: FuncRef): string => {
      const e = this.funcs[f.index];
      if (!e || e.ref !== f) {
        throw new WasmEmitError(`wasm emitter: function "${this.label(entry)}": call: the callee is not a function of this module`);
      }
      return this.label(e);
    };
    const fb = new FunctionBuilder(this.label(entry), ref.params, ref.results, {
      paramNames: entry.paramNames,
      funcName: lookup,
      text: this.text,
    });
    body(fb, ...fb.params);
    fb.finish();
    entry.builder = fb;
    return ref;
  }

  /** Declare and define a function in one go (see `FuncName` for how it is exported and named). */
  func(name: FuncName, params: Params, results: readonly ValType[], body: (f: FunctionBuilder, ...params: Local[]) => void): FuncRef {
    return this.define(this.declare(name, params, results), body);
  }

  /** Serialise the module to bytes (with a "name" custom section naming functions and locals). */
  toBytes(): Uint8Array<ArrayBuffer> {
    return this.layout().bytes;
  }

  /**
   * A readable listing of every function: signature, locals, and one instruction per line with its
   * byte offset in the module (`@+N`, as engines report offsets in a `CompileError`).
   */
  toText(): string {
    if (!this.text) throw new Error("ModuleBuilder.toText: create the builder with new ModuleBuilder({ text: true })");
    const { codeStarts } = this.layout();
    const out: string[] = [";; @+N: byte offset of the instruction in the module"];
    this.funcs.forEach((e, i) => {
      const fb = e.builder!;
      let head = `(func${e.name !== null ? ` $${e.name}` : ""}`;
      if (e.exportName !== null) head += ` (export "${e.exportName}")`;
      fb.params.forEach((p) => (head += ` (param${p.name !== undefined ? ` $${p.name}` : ""} ${p.type})`));
      if (e.ref.results.length > 0) head += ` (result ${e.ref.results.join(" ")})`;
      out.push(fb.text(`${head}  ;; function ${i}`, codeStarts[i]!));
    });
    return out.join("\n") + "\n";
  }

  private layout(): Layout {
    const out = new ByteWriter();
    out.bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    const section = (id: number, fill: (w: ByteWriter) => void): number => {
      const w = new ByteWriter();
      fill(w);
      out.byte(id).sized(w);
      return out.length - w.length; // module offset of the section's contents
    };
    section(1, (w) => {
      w.u32(this.typeSigs.length);
      for (const s of this.typeSigs) {
        w.byte(0x60).u32(s.params.length);
        for (const p of s.params) w.byte(VALTYPE_CODE[p]);
        w.u32(s.results.length);
        for (const r of s.results) w.byte(VALTYPE_CODE[r]);
      }
    });
    const mem = this.memory;
    if (mem) {
      section(2, (w) => {
        w.u32(1).name(mem.module).name(mem.name).byte(0x02);
        const flag = (mem.maximumPages !== undefined ? 1 : 0) | (mem.shared ? 2 : 0);
        w.byte(flag).u32(mem.initialPages);
        if (mem.maximumPages !== undefined) w.u32(mem.maximumPages);
      });
    }
    section(3, (w) => {
      w.u32(this.funcs.length);
      for (const f of this.funcs) w.u32(f.typeIndex);
    });
    const exported = this.funcs.filter((f) => f.exportName !== null);
    section(7, (w) => {
      w.u32(exported.length);
      for (const f of exported) w.name(f.exportName!).byte(0x00).u32(f.ref.index);
    });
    const starts: number[] = [];
    const base = section(10, (w) => {
      w.u32(this.funcs.length);
      for (const f of this.funcs) {
        if (!f.builder) throw new Error(`ModuleBuilder.toBytes: function ${this.label(f)} declared but not defined`);
        const { bytes, codeStart } = f.builder.encode();
        w.u32(bytes.length);
        starts.push(w.length + codeStart);
        w.bytes(bytes);
      }
    });
    section(0, (w) => this.nameSection(w));
    return { bytes: out.toBytes(), codeStarts: starts.map((s) => base + s) };
  }

  /** Contents of the "name" custom section: subsection 1 (function names) and 2 (local names). */
  private nameSection(w: ByteWriter): void {
    w.name("name");
    const sub = (id: number, fill: (s: ByteWriter) => void): void => {
      const s = new ByteWriter();
      fill(s);
      w.byte(id).sized(s);
    };
    const named = this.funcs.filter((f) => f.name !== null);
    sub(1, (s) => {
      s.u32(named.length);
      for (const f of named) s.u32(f.ref.index).name(f.name!);
    });
    const withLocals = this.funcs.map((f) => [f.ref.index, f.builder!.localNames()] as const).filter(([, l]) => l.length > 0);
    sub(2, (s) => {
      s.u32(withLocals.length);
      for (const [index, locals] of withLocals) {
        s.u32(index).u32(locals.length);
        for (const [li, name] of locals) s.u32(li).name(name);
      }
    });
  }
}
