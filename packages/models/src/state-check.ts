/**
 * Argument and file checks at the models' public entry points, kept apart from the model code: a state dict
 * must be an object of tensors, `discretize` needs a model with a time dimension, and the configuration stored
 * in a model file must agree with the tensors stored beside it (checked from the shapes, before anything is
 * allocated, so a configuration claiming `blockSize` 1e9 is an error naming the field, not a RangeError).
 */
import { Tensor } from "@qkvflow/autograd";

function describe(x: unknown): string {
  if (x === null) return "null";
  if (Array.isArray(x)) return "an array";
  return typeof x === "object" ? ((x as object).constructor?.name ?? "an object") : `${typeof x} ${JSON.stringify(x)}`;
}

/** A state dict argument must be a plain object of name → Tensor. */
export function checkStateDictArg(fn: string, sd: unknown): void {
  if (sd === null || typeof sd !== "object" || Array.isArray(sd) || sd instanceof Tensor)
    throw new Error(`${fn}: the state dict is ${describe(sd)}; expected an object of parameter name → Tensor`);
  for (const [k, v] of Object.entries(sd as Record<string, unknown>)) {
    if (!(v instanceof Tensor)) throw new Error(`${fn}: state dict entry '${k}' is ${describe(v)}; expected a Tensor`);
  }
}

/** `discretize` applies to a DiffEqFormer (a model with a continuous depth / time dimension) only. */
export function checkDiscretizable(model: unknown): void {
  const kind = (model as { config?: { kind?: unknown } } | null)?.config?.kind;
  if (kind !== "diffeqformer")
    throw new Error(
      `discretize: the model is ${kind === undefined ? describe(model) : `a '${String(kind)}' model`}; only a DiffEqFormer (kind 'diffeqformer'), ` +
        "whose weights are functions of depth t, can be discretised to M layers",
    );
}

/**
 * Compares a model configuration (JSON, as stored in a model file) with the shapes of the stored tensors:
 * `wte.weight` is [vocabSize, nEmbd], `wpe.weight` is [blockSize, nEmbd], and a GPT-2 / discretised model has
 * `h.0 … h.{nLayer-1}`. `where` names the file in errors. Cheap: nothing is allocated.
 */
export function checkConfigAgainstShapes(config: unknown, shapes: Record<string, readonly number[]>, where: string): void {
  if (config === null || typeof config !== "object" || Array.isArray(config))
    throw new Error(`${where}: the stored model configuration is ${describe(config)}; expected a JSON object`);
  const c = config as Record<string, unknown>;
  const field = (name: string, actual: number, from: string): void => {
    const v = c[name];
    if (v === undefined) return;
    if (v !== actual)
      throw new Error(`${where}: the stored model configuration has ${name} ${JSON.stringify(v)}, but ${from}; expected ${name} ${actual}`);
  };
  const wte = shapes["wte.weight"];
  const wpe = shapes["wpe.weight"];
  if (wte !== undefined && wte.length === 2) {
    field("vocabSize", wte[0]!, `tensor 'wte.weight' has shape [${wte.join(", ")}]`);
    field("nEmbd", wte[1]!, `tensor 'wte.weight' has shape [${wte.join(", ")}]`);
  }
  if (wpe !== undefined && wpe.length === 2) field("blockSize", wpe[0]!, `tensor 'wpe.weight' has shape [${wpe.join(", ")}]`);
  if (c.kind === "gpt2" || c.kind === "discretized") {
    let layers = 0;
    for (const n of Object.keys(shapes)) {
      const m = /^h\.(\d+)\./.exec(n);
      if (m !== null) layers = Math.max(layers, Number(m[1]) + 1);
    }
    if (layers > 0) field("nLayer", layers, `the file holds layers h.0 … h.${layers - 1}`);
  }
}
