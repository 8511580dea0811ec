/**
 * The module tree: each module owns named parameters and named child modules; the dotted path of a parameter
 * (`h.0.attn.c_attn.weight`) is its name in `parameters()`, state dicts and safetensors files.
 */
import { cast, random, tensor, type Key, type Tensor } from "@qkvflow/autograd";
import type { ModelDType } from "./config.js";
import { checkStateDictArg } from "./state-check.js";

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Result of a non-strict `loadStateDict`. */
export interface LoadReport {
  missing: string[];
  unexpected: string[];
}

/** Base class of every layer and model: a tree of named parameters with a train / eval flag. */
export class Module {
  /** Whether dropout is active by default (models take an explicit `training` option that overrides it). */
  training = false;
  private readonly _params = new Map<string, Tensor>();
  private readonly _children = new Map<string, Module>();

  /** Registers (or replaces) a parameter of this module. */
  protected registerParam(name: string, value: Tensor): Tensor {
    if (name.length === 0 || name.includes("."))
      throw new Error(`Module.registerParam: name '${name}' is invalid; expected a non-empty name without dots`);
    this._params.set(name, value);
    return value;
  }

  /** Registers a child module under `name`. */
  protected registerModule<M extends Module>(name: string, child: M): M {
    if (name.length === 0 || name.includes("."))
      throw new Error(`Module.registerModule: name '${name}' is invalid; expected a non-empty name without dots`);
    this._children.set(name, child);
    return child;
  }

  /** Removes a parameter of this module (used when adapters are removed). */
  protected deleteParam(name: string): void {
    this._params.delete(name);
  }

  /** The current value of a parameter of this module. */
  param(name: string): Tensor {
    const p = this._params.get(name);
    if (!p) throw new Error(`Module.param: no parameter '${name}'; this module has ${[...this._params.keys()].join(", ") || "none"}`);
    return p;
  }

  /** Whether this module owns a parameter called `name`. */
  hasParam(name: string): boolean {
    return this._params.has(name);
  }

  /** All parameters of the tree by dotted name, in registration order (depth first). */
  parameters(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, p] of m._params) out[prefix ? `${prefix}.${n}` : n] = p;
    }
    return out;
  }

  /** Shapes of all parameters by dotted name. */
  parameterShapes(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const [n, p] of Object.entries(this.parameters())) out[n] = [...p.shape];
    return out;
  }

  /** This module and all descendants with their dotted paths ('' for this module), depth first. */
  namedModules(): [string, Module][] {
    const out: [string, Module][] = [];
    const visit = (prefix: string, m: Module) => {
      out.push([prefix, m]);
      for (const [n, c] of m._children) visit(prefix ? `${prefix}.${n}` : n, c);
    };
    visit("", this);
    return out;
  }

  /** Total number of scalar parameters actually allocated. */
  numParameters(): number {
    let n = 0;
    for (const p of Object.values(this.parameters())) n += p.size;
    return n;
  }

  private locate(fn: string, name: string): { owner: Module; leaf: string } {
    const parts = name.split(".");
    let m: Module = this;
    for (let i = 0; i < parts.length - 1; i++) {
      const c = m._children.get(parts[i]);
      if (!c) throw new Error(`${fn}: unknown parameter '${name}'; expected one of the names from parameters()`);
      m = c;
    }
    const leaf = parts[parts.length - 1];
    if (!m._params.has(leaf)) throw new Error(`${fn}: unknown parameter '${name}'; expected one of the names from parameters()`);
    return { owner: m, leaf };
  }

  /**
   * Swaps parameter references by name (no copy); any subset of names may be given. Unknown names, other shapes
   * or other dtypes are errors.
   */
  setParameters(p: Record<string, Tensor>): void {
    const fn = "setParameters";
    const plan: { owner: Module; leaf: string; value: Tensor }[] = [];
    for (const [name, value] of Object.entries(p)) {
      const { owner, leaf } = this.locate(fn, name);
      const cur = owner._params.get(leaf)!;
      if (!sameShape(cur.shape, value.shape) || cur.dtype !== value.dtype) {
        throw new Error(`${fn}: '${name}' is ${value.dtype} ${fmt(value.shape)}; expected ${cur.dtype} ${fmt(cur.shape)}`);
      }
      plan.push({ owner, leaf, value });
    }
    for (const { owner, leaf, value } of plan) owner._params.set(leaf, value);
  }

  /** The parameters by dotted name (references; the same as `parameters()`). */
  stateDict(): Record<string, Tensor> {
    return this.parameters();
  }

  /**
   * Loads parameters by name. Float tensors of another float dtype are converted. Mis-shaped entries are always an
   * error; missing and unexpected names are an error when `strict` (default) and are reported otherwise.
   */
  loadStateDict(sd: Record<string, Tensor>, opts: { strict?: boolean } = {}): LoadReport {
    const fn = "loadStateDict";
    checkStateDictArg(fn, sd);
    const strict = opts.strict ?? true;
    const own = this.parameters();
    const missing = Object.keys(own).filter((n) => !(n in sd));
    const unexpected = Object.keys(sd).filter((n) => !(n in own));
    const misShaped = Object.keys(sd)
      .filter((n) => n in own && !sameShape(own[n].shape, sd[n].shape))
      .map((n) => `'${n}' ${fmt(sd[n].shape)} (expected ${fmt(own[n].shape)})`);
    const badType = Object.keys(sd)
      .filter((n) => n in own && sd[n].dtype !== "float32" && sd[n].dtype !== "float64")
      .map((n) => `'${n}' is ${sd[n].dtype} (expected a float tensor)`);
    const problems: string[] = [];
    if (misShaped.length) problems.push(`mis-shaped keys: ${misShaped.join(", ")}`);
    if (badType.length) problems.push(`wrong dtype: ${badType.join(", ")}`);
    if (strict && missing.length) problems.push(`missing keys: ${missing.map((n) => `'${n}'`).join(", ")}`);
    if (strict && unexpected.length) problems.push(`unexpected keys: ${unexpected.map((n) => `'${n}'`).join(", ")}`);
    if (problems.length) throw new Error(`${fn}: ${problems.join("; ")}`);
    const next: Record<string, Tensor> = {};
    for (const n of Object.keys(sd)) {
      if (!(n in own)) continue;
      next[n] = sd[n].dtype === own[n].dtype ? sd[n] : cast(sd[n], own[n].dtype);
    }
    this.setParameters(next);
    return { missing, unexpected };
  }

  /** Sets train (dropout on) or eval mode on the whole tree; returns this. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Eval mode (dropout off); returns this. */
  eval(): this {
    return this.train(false);
  }
}

/** 32-bit FNV-1a hash of a string (used to derive a parameter's init key from its name). */
export function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** How a parameter is initialised. */
export type InitSpec = { kind: "normal"; std: number } | { kind: "zeros" } | { kind: "ones" };

/**
 * Deterministic initialiser: each parameter's values depend only on the root key and the parameter's full dotted
 * name (so adding a layer does not change the others). With `key` null, parameters are allocated as zeros
 * (used before loading a checkpoint).
 */
export class Initializer {
  constructor(
    readonly key: Key | null,
    readonly dtype: ModelDType,
  ) {}

  /** A tensor of `shape` initialised per `spec` for the parameter called `name`. */
  make(name: string, shape: readonly number[], spec: InitSpec): Tensor {
    let size = 1;
    for (const d of shape) size *= d;
    if (this.key === null || spec.kind === "zeros" || (spec.kind === "normal" && spec.std === 0)) {
      return tensor(this.dtype === "float32" ? new Float32Array(size) : new Float64Array(size), { shape, dtype: this.dtype });
    }
    if (spec.kind === "ones") {
      const a = this.dtype === "float32" ? new Float32Array(size) : new Float64Array(size);
      a.fill(1);
      return tensor(a, { shape, dtype: this.dtype });
    }
    return random.normal(random.foldIn(this.key, hashName(name)), shape, { dtype: this.dtype, std: spec.std });
  }
}

/** Converts a glob pattern (`*` = any run of characters, everything else literal) to an anchored RegExp. */
export function globToRegExp(pattern: string): RegExp {
  const esc = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${esc}$`);
}

/** Whether `name` matches any of the glob patterns. */
export function matchesAny(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => globToRegExp(p).test(name));
}

/** An ordered list of child modules named 0, 1, 2, … */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[] = [];

  /** Appends a module under the next index. */
  append(m: M): M {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return m;
  }
}
