/**
 * A small typed WebAssembly bytecode emitter.
 *
 * Kernels are generated at run time from TypeScript: a `ModuleBuilder` collects function types, an
 * imported (optionally shared) linear memory, functions and exports, and serialises them to the binary
 * format. A `FunctionBuilder` appends instructions to one function body; structured control flow uses
 * label objects so branch depths are computed by the builder rather than by hand.
 *
 * Only the subset of the instruction set the kernels need is covered: i32/i64/f32/f64 scalar ops,
 * loads/stores with static offsets, bulk memory, and the 128-bit SIMD (v128, f32x4, i32x4) operations.
 */

/** A WebAssembly value type. */
export type ValType = "i32" | "i64" | "f32" | "f64" | "v128";

const VALTYPE_CODE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

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
    const tmp = new DataView(new ArrayBuffer(4));
    tmp.setFloat32(0, v, true);
    for (let i = 0; i < 4; i++) this.byte(tmp.getUint8(i));
    return this;
  }

  /** Append a little-endian float64. */
  f64(v: number): this {
    const tmp = new DataView(new ArrayBuffer(8));
    tmp.setFloat64(0, v, true);
    for (let i = 0; i < 8; i++) this.byte(tmp.getUint8(i));
    return this;
  }

  /** Append a length-prefixed UTF-8 name. */
  name(s: string): this {
    const enc = new TextEncoder().encode(s);
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

/** A local variable (or parameter) of a function being built. */
export interface Local {
  readonly index: number;
  readonly type: ValType;
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

type BlockType = ValType | null;

/** Appends instructions to one function body; created by `ModuleBuilder.func`. */
export class FunctionBuilder {
  readonly params: Local[];
  private readonly localTypes: ValType[] = [];
  private readonly code = new ByteWriter();
  private readonly labels: number[] = []; // stack of label ids, innermost last
  private nextLabel = 0;

  constructor(readonly name: string, paramTypes: readonly ValType[], readonly results: readonly ValType[]) {
    this.params = paramTypes.map((type, index) => ({ index, type }));
  }

  /** Declare a new local of the given type. */
  local(type: ValType): Local {
    const index = this.params.length + this.localTypes.length;
    this.localTypes.push(type);
    return { index, type };
  }

  /** Declare several locals of one type. */
  locals(type: ValType, count: number): Local[] {
    const out: Local[] = [];
    for (let i = 0; i < count; i++) out.push(this.local(type));
    return out;
  }

  // ----- raw emission -----

  /** Emit a single-byte opcode. */
  op(code: number): this {
    this.code.byte(code);
    return this;
  }

  private simd(code: number): this {
    this.code.byte(0xfd).u32(code);
    return this;
  }

  private mem(code: number, natural: number, m?: MemArg, prefix?: number): this {
    if (prefix !== undefined) this.code.byte(prefix).u32(code);
    else this.code.byte(code);
    const align = m?.align ?? natural;
    if (align > natural) throw new Error(`FunctionBuilder.mem: alignment 2^${align} exceeds natural 2^${natural}`);
    this.code.u32(align).u32(m?.offset ?? 0);
    return this;
  }

  // ----- control flow -----

  private blockType(t: BlockType): void {
    this.code.byte(t === null ? 0x40 : VALTYPE_CODE[t]);
  }

  private depthOf(label: Label): number {
    const pos = this.labels.lastIndexOf(label.id);
    if (pos < 0) throw new Error(`FunctionBuilder(${this.name}): branch to a label that is not in scope`);
    return this.labels.length - 1 - pos;
  }

  private enter(body: (l: Label) => void): void {
    const id = this.nextLabel++;
    this.labels.push(id);
    body({ id });
    this.labels.pop();
    this.code.byte(0x0b);
  }

  /** `block ... end`; branching to the label jumps past the end. */
  block(body: (l: Label) => void, type: BlockType = null): this {
    this.code.byte(0x02);
    this.blockType(type);
    this.enter(body);
    return this;
  }

  /** `loop ... end`; branching to the label jumps back to the start. */
  loop(body: (l: Label) => void, type: BlockType = null): this {
    this.code.byte(0x03);
    this.blockType(type);
    this.enter(body);
    return this;
  }

  /** `if ... [else ...] end` consuming an i32 condition from the stack. */
  if(then: (l: Label) => void, otherwise?: (l: Label) => void, type: BlockType = null): this {
    this.code.byte(0x04);
    this.blockType(type);
    const id = this.nextLabel++;
    this.labels.push(id);
    then({ id });
    if (otherwise) {
      this.code.byte(0x05);
      otherwise({ id });
    }
    this.labels.pop();
    this.code.byte(0x0b);
    return this;
  }

  /** Unconditional branch to a label. */
  br(label: Label): this {
    this.code.byte(0x0c).u32(this.depthOf(label));
    return this;
  }

  /** Branch to a label if the i32 on the stack is non-zero. */
  brIf(label: Label): this {
    this.code.byte(0x0d).u32(this.depthOf(label));
    return this;
  }

  /** Return from the function. */
  ret(): this {
    return this.op(0x0f);
  }

  /** Call a function. */
  call(f: FuncRef): this {
    this.code.byte(0x10).u32(f.index);
    return this;
  }

  /** Drop the top of the stack. */
  drop(): this {
    return this.op(0x1a);
  }

  /** `select`: pick one of two values by an i32 condition. */
  select(): this {
    return this.op(0x1b);
  }

  /** Trap. */
  unreachable(): this {
    return this.op(0x00);
  }

  // ----- locals -----

  /** Push a local's value. */
  get(l: Local): this {
    this.code.byte(0x20).u32(l.index);
    return this;
  }

  /** Pop into a local. */
  set(l: Local): this {
    this.code.byte(0x21).u32(l.index);
    return this;
  }

  /** Store into a local, keeping the value on the stack. */
  tee(l: Local): this {
    this.code.byte(0x22).u32(l.index);
    return this;
  }

  // ----- constants -----

  /** Push an i32 constant. */
  i32Const(v: number): this {
    this.code.byte(0x41).s32(v);
    return this;
  }

  /** Push an i64 constant. */
  i64Const(v: bigint): this {
    this.code.byte(0x42).s64(v);
    return this;
  }

  /** Push an f32 constant. */
  f32Const(v: number): this {
    this.code.byte(0x43).f32(v);
    return this;
  }

  /** Push an f64 constant. */
  f64Const(v: number): this {
    this.code.byte(0x44).f64(v);
    return this;
  }

  /** Push a v128 constant given four f32 lanes. */
  f32x4Const(a: number, b: number, c: number, d: number): this {
    this.simd(0x0c);
    this.code.f32(a).f32(b).f32(c).f32(d);
    return this;
  }

  /** Push a v128 constant given four i32 lanes. */
  i32x4Const(a: number, b: number, c: number, d: number): this {
    this.simd(0x0c);
    const dv = new DataView(new ArrayBuffer(16));
    [a, b, c, d].forEach((v, i) => dv.setInt32(i * 4, v | 0, true));
    for (let i = 0; i < 16; i++) this.code.byte(dv.getUint8(i));
    return this;
  }

  // ----- memory -----

  /** i32.load */
  i32Load(m?: MemArg): this {
    return this.mem(0x28, 2, m);
  }
  /** i64.load */
  i64Load(m?: MemArg): this {
    return this.mem(0x29, 3, m);
  }
  /** f32.load */
  f32Load(m?: MemArg): this {
    return this.mem(0x2a, 2, m);
  }
  /** f64.load */
  f64Load(m?: MemArg): this {
    return this.mem(0x2b, 3, m);
  }
  /** i32.store */
  i32Store(m?: MemArg): this {
    return this.mem(0x36, 2, m);
  }
  /** i64.store */
  i64Store(m?: MemArg): this {
    return this.mem(0x37, 3, m);
  }
  /** f32.store */
  f32Store(m?: MemArg): this {
    return this.mem(0x38, 2, m);
  }
  /** f64.store */
  f64Store(m?: MemArg): this {
    return this.mem(0x39, 3, m);
  }
  /** memory.size (in 64 KiB pages) */
  memorySize(): this {
    this.code.byte(0x3f).byte(0);
    return this;
  }
  /** memory.grow (pages on stack; pushes old size or -1) */
  memoryGrow(): this {
    this.code.byte(0x40).byte(0);
    return this;
  }
  /** memory.copy (dst, src, len) */
  memoryCopy(): this {
    this.code.byte(0xfc).u32(10).byte(0).byte(0);
    return this;
  }
  /** memory.fill (dst, byte value, len) */
  memoryFill(): this {
    this.code.byte(0xfc).u32(11).byte(0);
    return this;
  }

  // ----- i32 -----
  /** i32.eqz */ i32Eqz(): this { return this.op(0x45); }
  /** i32.eq */ i32Eq(): this { return this.op(0x46); }
  /** i32.ne */ i32Ne(): this { return this.op(0x47); }
  /** i32.lt_s */ i32LtS(): this { return this.op(0x48); }
  /** i32.lt_u */ i32LtU(): this { return this.op(0x49); }
  /** i32.gt_s */ i32GtS(): this { return this.op(0x4a); }
  /** i32.gt_u */ i32GtU(): this { return this.op(0x4b); }
  /** i32.le_s */ i32LeS(): this { return this.op(0x4c); }
  /** i32.le_u */ i32LeU(): this { return this.op(0x4d); }
  /** i32.ge_s */ i32GeS(): this { return this.op(0x4e); }
  /** i32.ge_u */ i32GeU(): this { return this.op(0x4f); }
  /** i32.add */ i32Add(): this { return this.op(0x6a); }
  /** i32.sub */ i32Sub(): this { return this.op(0x6b); }
  /** i32.mul */ i32Mul(): this { return this.op(0x6c); }
  /** i32.div_s */ i32DivS(): this { return this.op(0x6d); }
  /** i32.div_u */ i32DivU(): this { return this.op(0x6e); }
  /** i32.rem_u */ i32RemU(): this { return this.op(0x70); }
  /** i32.and */ i32And(): this { return this.op(0x71); }
  /** i32.or */ i32Or(): this { return this.op(0x72); }
  /** i32.xor */ i32Xor(): this { return this.op(0x73); }
  /** i32.shl */ i32Shl(): this { return this.op(0x74); }
  /** i32.shr_s */ i32ShrS(): this { return this.op(0x75); }
  /** i32.shr_u */ i32ShrU(): this { return this.op(0x76); }

  // ----- f32 -----
  /** f32.eq */ f32Eq(): this { return this.op(0x5b); }
  /** f32.ne */ f32Ne(): this { return this.op(0x5c); }
  /** f32.lt */ f32Lt(): this { return this.op(0x5d); }
  /** f32.gt */ f32Gt(): this { return this.op(0x5e); }
  /** f32.le */ f32Le(): this { return this.op(0x5f); }
  /** f32.ge */ f32Ge(): this { return this.op(0x60); }
  /** f32.abs */ f32Abs(): this { return this.op(0x8b); }
  /** f32.neg */ f32Neg(): this { return this.op(0x8c); }
  /** f32.floor */ f32Floor(): this { return this.op(0x8e); }
  /** f32.nearest */ f32Nearest(): this { return this.op(0x90); }
  /** f32.sqrt */ f32Sqrt(): this { return this.op(0x91); }
  /** f32.add */ f32Add(): this { return this.op(0x92); }
  /** f32.sub */ f32Sub(): this { return this.op(0x93); }
  /** f32.mul */ f32Mul(): this { return this.op(0x94); }
  /** f32.div */ f32Div(): this { return this.op(0x95); }
  /** f32.min */ f32Min(): this { return this.op(0x96); }
  /** f32.max */ f32Max(): this { return this.op(0x97); }

  // ----- f64 -----
  /** f64.add */ f64Add(): this { return this.op(0xa0); }
  /** f64.sub */ f64Sub(): this { return this.op(0xa1); }
  /** f64.mul */ f64Mul(): this { return this.op(0xa2); }
  /** f64.div */ f64Div(): this { return this.op(0xa3); }

  /** f64.neg */ f64Neg(): this { return this.op(0x9a); }
  /** f64.sqrt */ f64Sqrt(): this { return this.op(0x9f); }
  /** f64.min */ f64Min(): this { return this.op(0xa4); }
  /** f64.max */ f64Max(): this { return this.op(0xa5); }
  /** f64.eq */ f64Eq(): this { return this.op(0x61); }
  /** f64.lt */ f64Lt(): this { return this.op(0x63); }
  /** f64.gt */ f64Gt(): this { return this.op(0x64); }
  /** f64.le */ f64Le(): this { return this.op(0x65); }
  /** f64.ge */ f64Ge(): this { return this.op(0x66); }

  // ----- i64 -----
  /** i64.add */ i64Add(): this { return this.op(0x7c); }
  /** i64.sub */ i64Sub(): this { return this.op(0x7d); }
  /** i64.and */ i64And(): this { return this.op(0x83); }
  /** i64.or */ i64Or(): this { return this.op(0x84); }
  /** i64.shl */ i64Shl(): this { return this.op(0x86); }
  /** i64.shr_u */ i64ShrU(): this { return this.op(0x88); }

  // ----- conversions -----
  /** i32.wrap_i64 */ i32WrapI64(): this { return this.op(0xa7); }
  /** i64.extend_i32_s */ i64ExtendI32S(): this { return this.op(0xac); }
  /** f64.convert_i32_s */ f64ConvertI32S(): this { return this.op(0xb7); }
  /** i64.reinterpret_f64 */ i64ReinterpretF64(): this { return this.op(0xbd); }
  /** f64.reinterpret_i64 */ f64ReinterpretI64(): this { return this.op(0xbf); }
  /** i32.trunc_sat_f32_s */ i32TruncSatF32S(): this { this.code.byte(0xfc).u32(0); return this; }
  /** f32.convert_i32_s */ f32ConvertI32S(): this { return this.op(0xb2); }
  /** f32.demote_f64 */ f32DemoteF64(): this { return this.op(0xb6); }
  /** f64.promote_f32 */ f64PromoteF32(): this { return this.op(0xbb); }
  /** i32.reinterpret_f32 */ i32ReinterpretF32(): this { return this.op(0xbc); }
  /** f32.reinterpret_i32 */ f32ReinterpretI32(): this { return this.op(0xbe); }

  // ----- v128 memory -----
  /** v128.load */ v128Load(m?: MemArg): this { return this.mem(0x00, 4, m, 0xfd); }
  /** v128.store */ v128Store(m?: MemArg): this { return this.mem(0x0b, 4, m, 0xfd); }
  /** v128.load32_splat */ v128Load32Splat(m?: MemArg): this { return this.mem(0x09, 2, m, 0xfd); }
  /** v128.load64_splat */ v128Load64Splat(m?: MemArg): this { return this.mem(0x0a, 3, m, 0xfd); }
  /** v128.load32_zero */ v128Load32Zero(m?: MemArg): this { return this.mem(0x5c, 2, m, 0xfd); }
  /** v128.load64_zero */ v128Load64Zero(m?: MemArg): this { return this.mem(0x5d, 3, m, 0xfd); }

  /** v128.store64_lane: store lane `lane` (0 or 1) as 8 bytes. */
  v128Store64Lane(lane: number, m?: MemArg): this {
    this.mem(0x5b, 3, m, 0xfd);
    this.code.byte(lane);
    return this;
  }

  /** v128.store32_lane: store lane `lane` (0..3) as 4 bytes. */
  v128Store32Lane(lane: number, m?: MemArg): this {
    this.mem(0x5a, 2, m, 0xfd);
    this.code.byte(lane);
    return this;
  }

  // ----- v128 lanes / bitwise -----
  /** i8x16.shuffle with 16 byte-lane indices into the concatenation of two vectors. */
  i8x16Shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16 || lanes.some((l) => !Number.isInteger(l) || l < 0 || l > 31)) {
      throw new Error(`FunctionBuilder.i8x16Shuffle: expected 16 lane indices in 0..31, got [${lanes.join(",")}]`);
    }
    this.simd(0x0d);
    this.code.bytes(lanes);
    return this;
  }

  /** Shuffle two f32x4 vectors by 32-bit lane indices (0..7). */
  f32x4Shuffle(a: number, b: number, c: number, d: number): this {
    const bytes: number[] = [];
    for (const l of [a, b, c, d]) for (let i = 0; i < 4; i++) bytes.push(l * 4 + i);
    return this.i8x16Shuffle(bytes);
  }

  /** f32x4.splat */ f32x4Splat(): this { return this.simd(0x13); }
  /** i32x4.splat */ i32x4Splat(): this { return this.simd(0x11); }

  /** f32x4.extract_lane */
  f32x4ExtractLane(lane: number): this {
    this.simd(0x1f);
    this.code.byte(lane);
    return this;
  }

  /** f32x4.replace_lane */
  f32x4ReplaceLane(lane: number): this {
    this.simd(0x20);
    this.code.byte(lane);
    return this;
  }

  /** v128.not */ v128Not(): this { return this.simd(0x4d); }
  /** v128.and */ v128And(): this { return this.simd(0x4e); }
  /** v128.andnot */ v128AndNot(): this { return this.simd(0x4f); }
  /** v128.or */ v128Or(): this { return this.simd(0x50); }
  /** v128.xor */ v128Xor(): this { return this.simd(0x51); }
  /** v128.bitselect (v1, v2, mask): lanes of v1 where mask bits set, else v2 */ v128Bitselect(): this { return this.simd(0x52); }
  /** v128.any_true */ v128AnyTrue(): this { return this.simd(0x53); }

  // ----- f32x4 -----
  /** f32x4.eq */ f32x4Eq(): this { return this.simd(0x41); }
  /** f32x4.ne */ f32x4Ne(): this { return this.simd(0x42); }
  /** f32x4.lt */ f32x4Lt(): this { return this.simd(0x43); }
  /** f32x4.gt */ f32x4Gt(): this { return this.simd(0x44); }
  /** f32x4.le */ f32x4Le(): this { return this.simd(0x45); }
  /** f32x4.ge */ f32x4Ge(): this { return this.simd(0x46); }
  /** f32x4.floor */ f32x4Floor(): this { return this.simd(0x68); }
  /** f32x4.nearest */ f32x4Nearest(): this { return this.simd(0x6a); }
  /** f32x4.abs */ f32x4Abs(): this { return this.simd(0xe0); }
  /** f32x4.neg */ f32x4Neg(): this { return this.simd(0xe1); }
  /** f32x4.sqrt */ f32x4Sqrt(): this { return this.simd(0xe3); }
  /** f32x4.add */ f32x4Add(): this { return this.simd(0xe4); }
  /** f32x4.sub */ f32x4Sub(): this { return this.simd(0xe5); }
  /** f32x4.mul */ f32x4Mul(): this { return this.simd(0xe6); }
  /** f32x4.div */ f32x4Div(): this { return this.simd(0xe7); }
  /** f32x4.min */ f32x4Min(): this { return this.simd(0xe8); }
  /** f32x4.max */ f32x4Max(): this { return this.simd(0xe9); }
  /** f32x4.pmin */ f32x4PMin(): this { return this.simd(0xea); }
  /** f32x4.pmax */ f32x4PMax(): this { return this.simd(0xeb); }

  // ----- f64x2 -----
  /** f64x2.add */ f64x2Add(): this { return this.simd(0xf0); }
  /** f64x2.mul */ f64x2Mul(): this { return this.simd(0xf2); }
  /** f64x2.promote_low_f32x4 */ f64x2PromoteLowF32x4(): this { return this.simd(0x5f); }
  /** f64x2.extract_lane */
  f64x2ExtractLane(lane: number): this {
    this.simd(0x21);
    this.code.byte(lane);
    return this;
  }

  // ----- i32x4 -----
  /** i32x4.add */ i32x4Add(): this { return this.simd(0xae); }
  /** i32x4.sub */ i32x4Sub(): this { return this.simd(0xb1); }
  /** i32x4.shl */ i32x4Shl(): this { return this.simd(0xab); }
  /** i32x4.shr_s */ i32x4ShrS(): this { return this.simd(0xac); }
  /** i32x4.shr_u */ i32x4ShrU(): this { return this.simd(0xad); }
  /** i32x4.trunc_sat_f32x4_s */ i32x4TruncSatF32x4S(): this { return this.simd(0xf8); }
  /** f32x4.convert_i32x4_s */ f32x4ConvertI32x4S(): this { return this.simd(0xfa); }

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

  /** Serialised body (locals + code) for the code section. */
  encodeBody(): Uint8Array {
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
    w.bytes(this.code.toBytes());
    w.byte(0x0b);
    if (this.labels.length !== 0) throw new Error(`FunctionBuilder(${this.name}): unclosed blocks`);
    return w.toBytes();
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
}

/** Builds a WebAssembly module: one imported memory, functions and their exports. */
export class ModuleBuilder {
  private readonly types: string[] = [];
  private readonly typeSigs: { params: readonly ValType[]; results: readonly ValType[] }[] = [];
  private readonly funcs: FuncEntry[] = [];
  private memory: MemoryImport | null = null;

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

  /** Declare a function (so it can be called) whose body is given later with `define`. */
  declare(params: readonly ValType[], results: readonly ValType[] = [], exportName: string | null = null): FuncRef {
    const ref: FuncRef = { index: this.funcs.length, params, results };
    this.funcs.push({ ref, typeIndex: this.typeIndex(params, results), builder: null, exportName });
    return ref;
  }

  /** Give the body of a declared function. */
  define(ref: FuncRef, body: (f: FunctionBuilder, ...params: Local[]) => void): FuncRef {
    const entry = this.funcs[ref.index];
    if (!entry || entry.ref !== ref) throw new Error("ModuleBuilder.define: unknown function reference");
    if (entry.builder) throw new Error(`ModuleBuilder.define: function ${ref.index} already defined`);
    const fb = new FunctionBuilder(entry.exportName ?? `f${ref.index}`, ref.params, ref.results);
    body(fb, ...fb.params);
    entry.builder = fb;
    return ref;
  }

  /** Declare and define a function in one go; exported under `exportName` when given. */
  func(
    exportName: string | null,
    params: readonly ValType[],
    results: readonly ValType[],
    body: (f: FunctionBuilder, ...params: Local[]) => void,
  ): FuncRef {
    return this.define(this.declare(params, results, exportName), body);
  }

  /** Serialise the module to bytes. */
  toBytes(): Uint8Array<ArrayBuffer> {
    const out = new ByteWriter();
    out.bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    const section = (id: number, fill: (w: ByteWriter) => void): void => {
      const w = new ByteWriter();
      fill(w);
      out.byte(id).sized(w);
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
    section(10, (w) => {
      w.u32(this.funcs.length);
      for (const f of this.funcs) {
        if (!f.builder) throw new Error(`ModuleBuilder.toBytes: function ${f.exportName ?? f.ref.index} declared but not defined`);
        const body = f.builder.encodeBody();
        w.u32(body.length).bytes(body);
      }
    });
    return out.toBytes();
  }
}
