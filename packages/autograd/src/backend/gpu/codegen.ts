/**
 * Source generation for the gpu.js kernels of the gpu backend.
 *
 * Every kernel has a 1-D output of `n` elements (the dense row-major buffer of the result) and reads its
 * inputs as 1-D arrays. Sizes, strides and loop bounds are kernel arguments (uniforms), so one compiled
 * kernel serves every shape of the same structure (op, rank after merging axes); the backend caches kernels
 * by that structure. Index arithmetic runs in single precision on GL backends: integer values are exact
 * below 2^24, and divisions are rounded with a +0.5 guard so that `floor(i / d)` is exact for every index
 * below 2^24 (see docs/gpu.md).
 */
import type { BinaryOp, UnaryOp } from "../backend.js";
import { GELU_CUBIC, GELU_TANH_SCALE } from "../../gelu.js";

/** A float literal the gpu.js transpiler types as a float (never as an integer). */
export function lit(v: number): string {
  if (!Number.isFinite(v))
    throw new Error(`gpu backend (codegen): literal ${v} is not finite; expected a finite number (pass non-finite values as arguments)`);
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return `${v}.0`;
  const s = String(v);
  return s.includes(".") || s.includes("e") ? s : `${s}.0`;
}

/**
 * Merges adjacent axes that every operand walks contiguously and drops size-1 axes, so the index
 * arithmetic of a kernel has as few divisions as possible.
 */
export function coalesce(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const dims: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, k) => st[k][last] === s[d] * shape[d])) {
      dims[last] *= shape[d];
      strides.forEach((s, k) => (st[k][last] = s[d]));
    } else {
      dims.push(shape[d]);
      strides.forEach((s, k) => st[k].push(s[d]));
    }
  }
  return { shape: dims, strides: st };
}

/** Unique-name generator for kernel-local variables. */
export class Names {
  private n = 0;
  /** A fresh identifier with the given prefix. */
  next(prefix: string): string {
    return `${prefix}${this.n++}`;
  }
}

/** A size or stride in generated code: a number (baked in as a literal) or the name of a kernel argument. */
export type Term = number | string;

const term = (t: Term): string => (typeof t === "number" ? lit(t) : t);

/**
 * Statements that split the flat index held in `idx` into coordinates over `dims` (row-major; the first
 * size is never needed). Returns the statements and one variable name per axis.
 */
export function splitIndex(idx: string, dims: readonly Term[], names: Names): { code: string; coords: string[] } {
  const coords = dims.map(() => names.next("c"));
  if (dims.length === 0) return { code: "", coords };
  if (dims.length === 1) return { code: `let ${coords[0]} = ${idx};\n`, coords };
  const rem = names.next("r");
  let code = `let ${rem} = ${idx};\n`;
  for (let d = dims.length - 1; d >= 1; d--) {
    const q = names.next("q");
    code += `let ${q} = Math.floor((${rem} + 0.5) / ${term(dims[d])});\n`;
    code += `let ${coords[d]} = ${rem} - ${q} * ${term(dims[d])};\n`;
    code += `${rem} = ${q};\n`;
  }
  code += `let ${coords[0]} = ${rem};\n`;
  return { code, coords };
}

/** The linear offset `base + Σ coords[d]·strides[d]` as an expression (literal zero strides are skipped). */
export function offsetExpr(coords: readonly string[], strides: readonly Term[], base: Term = 0): string {
  const terms: string[] = [];
  if (base !== 0) terms.push(term(base));
  coords.forEach((c, d) => {
    const st = strides[d];
    if (st === 1) terms.push(c);
    else if (st !== 0) terms.push(`${c} * ${term(st)}`);
  });
  return terms.length ? terms.join(" + ") : "0.0";
}

/** Argument names `${prefix}0 … ${prefix}${n-1}`. */
export function argNames(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}

/** Statements computing `out` (a declared variable) from the float `v` for each unary op. */
export function unaryBody(op: UnaryOp, v: string, out: string, names: Names): string {
  switch (op) {
    case "neg":
      return `${out} = -${v};\n`;
    case "exp":
      return `${out} = Math.exp(${v});\n`;
    case "log":
      return `${out} = Math.log(${v});\n`;
    case "log1p": {
      // series near 0, log(u)·x/(u−1) (u = 1 + x) elsewhere: accurate where 1 + x rounds
      const u = names.next("u");
      return (
        `let ${u} = 1.0 + ${v};\n` +
        `if (Math.abs(${v}) < 0.01) { ${out} = ${v} * (1.0 - ${v} * (0.5 - ${v} * (0.3333333333 - ${v} * (0.25 - ${v} * 0.2)))); }\n` +
        `else { ${out} = Math.log(${u}) * (${v} / (${u} - 1.0)); }\n`
      );
    }
    case "sqrt":
      return `${out} = Math.sqrt(${v});\n`;
    case "rsqrt":
      return `${out} = 1.0 / Math.sqrt(${v});\n`;
    case "abs":
      return `${out} = Math.abs(${v});\n`;
    case "sin":
      return `${out} = Math.sin(${v});\n`;
    case "cos":
      return `${out} = Math.cos(${v});\n`;
    case "tanh":
      return tanhBody(v, out, names);
    case "sigmoid":
      return `${out} = 1.0 / (1.0 + Math.exp(-${v}));\n`;
    case "relu":
      return `${out} = ${v} > 0.0 ? ${v} : 0.0;\n`;
    case "gelu": {
      const a = names.next("a"),
        t = names.next("t");
      return `let ${a} = ${geluArg(v)};\n` + `let ${t} = 0.0;\n` + tanhBody(a, t, names) + `${out} = 0.5 * ${v} * (1.0 + ${t});\n`;
    }
    case "silu":
      return `${out} = ${v} / (1.0 + Math.exp(-${v}));\n`;
    case "sign":
      return `${out} = ${v} > 0.0 ? 1.0 : (${v} < 0.0 ? -1.0 : 0.0);\n`;
    case "square":
      return `${out} = ${v} * ${v};\n`;
    case "reciprocal":
      return `${out} = 1.0 / ${v};\n`;
    case "step":
      return `${out} = ${v} > 0.0 ? 1.0 : 0.0;\n`;
    case "floor":
      return `${out} = Math.floor(${v});\n`;
    // NaN fails every comparison, ±Infinity exceeds the largest float32
    case "isfinite":
      return `${out} = Math.abs(${v}) <= 3.4028234663852886e38 ? 1.0 : 0.0;\n`;
  }
}

/** tanh without overflow for large |x| (the textbook (e^2x−1)/(e^2x+1) gives NaN there). */
function tanhBody(v: string, out: string, names: Names): string {
  const e = names.next("e"),
    ax = names.next("ax");
  return (
    `let ${ax} = Math.abs(${v});\n` +
    `let ${e} = Math.exp(-2.0 * ${ax});\n` +
    `if (${ax} < 0.0005) { ${out} = ${v} * (1.0 - ${v} * ${v} / 3.0); }\n` +
    `else if (${v} < 0.0) { ${out} = -(1.0 - ${e}) / (1.0 + ${e}); }\n` +
    `else { ${out} = (1.0 - ${e}) / (1.0 + ${e}); }\n`
  );
}

/** The GELU's tanh argument u = √(2/π)(v + 0.044715v³). */
function geluArg(v: string): string {
  return `${lit(GELU_TANH_SCALE)} * (${v} + ${lit(GELU_CUBIC)} * ${v} * ${v} * ${v})`;
}

/**
 * Statements setting `out` = gelu′(v) (the GELU of unary "gelu"): with gelu(v) = v·σ(2u) and t = e^(−2|u|),
 * gelu′ = σ(2u) + 2v·u′·t/(1 + t)², u′ = √(2/π)(1 + 3·0.044715v²); both signs of u avoid overflow.
 */
export function geluGradBody(v: string, out: string, names: Names): string {
  const u = names.next("u"),
    t = names.next("t"),
    den = names.next("den"),
    sg = names.next("sg"),
    du = names.next("du");
  return (
    `let ${u} = ${geluArg(v)};\n` +
    `let ${t} = Math.exp(-2.0 * Math.abs(${u}));\nlet ${den} = 1.0 + ${t};\n` +
    `let ${sg} = 1.0 / ${den};\nif (${u} < 0.0) { ${sg} = ${t} / ${den}; }\n` +
    `let ${du} = ${lit(GELU_TANH_SCALE)} * (1.0 + ${lit(3 * GELU_CUBIC)} * ${v} * ${v});\n` +
    `${out} = ${sg} + 2.0 * ${v} * ${du} * ${t} / (${den} * ${den});\n`
  );
}

/** Statements computing `out` from floats `x`, `y` for each binary op. */
export function binaryBody(op: BinaryOp, x: string, y: string, out: string, names: Names): string {
  switch (op) {
    case "add":
      return `${out} = ${x} + ${y};\n`;
    case "sub":
      return `${out} = ${x} - ${y};\n`;
    case "mul":
      return `${out} = ${x} * ${y};\n`;
    case "div":
      return `${out} = ${x} / ${y};\n`;
    case "pow": {
      // JavaScript semantics for negative bases with integer exponents; GLSL's pow is undefined there
      const m = names.next("m"),
        h = names.next("h");
      return (
        `if (${y} == 0.0) { ${out} = 1.0; }\n` +
        `else if (${x} == 0.0) { ${out} = ${y} > 0.0 ? 0.0 : 1.0 / ${x}; }\n` +
        `else {\n` +
        `  let ${m} = Math.pow(Math.abs(${x}), ${y});\n` +
        `  let ${h} = ${y} * 0.5;\n` +
        `  if (${x} < 0.0 && Math.floor(${y}) == ${y} && Math.floor(${h}) != ${h}) { ${m} = -${m}; }\n` +
        `  ${out} = ${m};\n` +
        `}\n`
      );
    }
    // NaN wins, as with Math.max / Math.min (x + y is NaN when either is)
    case "maximum":
      return `if (${x} != ${x} || ${y} != ${y}) { ${out} = ${x} + ${y}; } else { ${out} = ${x} >= ${y} ? ${x} : ${y}; }\n`;
    case "minimum":
      return `if (${x} != ${x} || ${y} != ${y}) { ${out} = ${x} + ${y}; } else { ${out} = ${x} <= ${y} ? ${x} : ${y}; }\n`;
    case "eq":
      return `${out} = ${x} == ${y} ? 1.0 : 0.0;\n`;
    case "ne":
      return `${out} = ${x} != ${y} ? 1.0 : 0.0;\n`;
    case "lt":
      return `${out} = ${x} < ${y} ? 1.0 : 0.0;\n`;
    case "le":
      return `${out} = ${x} <= ${y} ? 1.0 : 0.0;\n`;
    case "gt":
      return `${out} = ${x} > ${y} ? 1.0 : 0.0;\n`;
    case "ge":
      return `${out} = ${x} >= ${y} ? 1.0 : 0.0;\n`;
  }
}

/** Statements truncating `v` toward zero in place (int32 results are carried as floats). */
export function truncBody(v: string): string {
  return `if (${v} < 0.0) { ${v} = -Math.floor(-${v}); } else { ${v} = Math.floor(${v}); }\n`;
}

/** Wraps a body into the kernel function source `function(args) { ... }` whose flat output index is `i`. */
export function kernelSource(args: readonly string[], body: string): string {
  return `function(${args.join(", ")}) {\nlet i = this.thread.x;\n${body}}`;
}
