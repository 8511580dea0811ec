/**
 * Saving and loading models as safetensors, and loading Hugging Face GPT-2 checkpoints.
 *
 * A qkvflow checkpoint stores every parameter under its `parameters()` name (F32 or F64, as the model's dtype)
 * and two `__metadata__` entries: `qkvflow.format` = `qkvflow-model/1` and `qkvflow.config` = the model's
 * configuration as JSON (including `lora` when adapters are applied), so `loadModel` rebuilds the model alone.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import {
  cast,
  decodeSafetensors,
  encodeSafetensors,
  rawToTensor,
  tensorToRaw,
  tensorsToRaw,
  type RawTensor,
  type SafetensorsContents,
  type Tensor,
} from "@qkvflow/autograd";
import { readSafetensorsFile, readSafetensorsFileSync, writeSafetensorsFile, writeSafetensorsFileSync } from "@qkvflow/autograd/node";
import { MODEL_FILE } from "./checkpoint-layout.js";
import { validateConfig, type ModelDType } from "./config.js";
import { createEmptyModel, type AnyModel } from "./factory.js";
import { Gpt2Model } from "./gpt2.js";
import { checkConfigAgainstShapes } from "./state-check.js";
import type { TransformerLM } from "./language-model.js";

/** Metadata key holding the configuration JSON. */
export const CONFIG_METADATA_KEY = "qkvflow.config";
/** Metadata key holding the format tag. */
export const FORMAT_METADATA_KEY = "qkvflow.format";
/** Current format tag. */
export const FORMAT_TAG = "qkvflow-model/1";

/** A tensor as a safetensors entry: @qkvflow/autograd's conversion, re-exported under this package's name. */
export { tensorToRaw };

/** A safetensors entry as a parameter: a float dtype (F16, BF16, F32, F64) converted to `dtype` (default: F64 → float64, else float32). */
export function rawToParameter(name: string, r: RawTensor, dtype?: ModelDType): Tensor {
  if (r.dtype !== "F32" && r.dtype !== "F64" && r.dtype !== "F16" && r.dtype !== "BF16") {
    throw new Error(`rawToParameter: tensor '${name}' has dtype ${r.dtype}; expected a float dtype (F16, BF16, F32, F64)`);
  }
  const t = rawToTensor(name, r);
  return cast(t, dtype ?? t.dtype);
}

/** The metadata of a model file: the caller's entries plus the format tag and the configuration. */
function modelMetadata(config: unknown, metadata: Record<string, string>): Record<string, string> {
  return { ...metadata, [FORMAT_METADATA_KEY]: FORMAT_TAG, [CONFIG_METADATA_KEY]: JSON.stringify(config) };
}

/**
 * Encodes a state dict with its model configuration as a model file, the format `saveModel` writes and a trainer
 * checkpoint's model.safetensors holds (any model family: the configuration is stored as JSON, not validated).
 */
export function encodeModelFile(state: Record<string, Tensor>, config: unknown, metadata: Record<string, string> = {}): Uint8Array {
  return encodeSafetensors(tensorsToRaw(state), modelMetadata(config, metadata));
}

/** Decodes a model file (`encodeModelFile`, `saveModel`) into its state dict, as stored, and its configuration JSON (not validated). */
export function decodeModelFile(bytes: Uint8Array, where = MODEL_FILE): { model: Record<string, Tensor>; modelConfig: unknown } {
  const c = decodeSafetensors(bytes);
  const model: Record<string, Tensor> = {};
  for (const [n, r] of Object.entries(c.tensors)) model[n] = rawToTensor(n, r);
  const cfg = c.metadata[CONFIG_METADATA_KEY];
  if (cfg === undefined)
    throw new Error(
      `decodeModelFile: ${where} has no '${CONFIG_METADATA_KEY}' metadata entry; expected a model file written by qkvflow ` +
        "(saveModel, or a checkpoint's model.safetensors); Hugging Face GPT-2 files are read by loadGpt2FromHuggingFace",
    );
  let modelConfig: unknown;
  try {
    modelConfig = JSON.parse(cfg);
  } catch (err) {
    throw new Error(`decodeModelFile: ${where} has a '${CONFIG_METADATA_KEY}' metadata entry that is not JSON (${(err as Error).message})`);
  }
  checkConfigAgainstShapes(modelConfig, shapesOf(c), `decodeModelFile: ${where}`);
  return { model, modelConfig };
}

function shapesOf(c: SafetensorsContents): Record<string, number[]> {
  return Object.fromEntries(Object.entries(c.tensors).map(([n, t]) => [n, t.shape]));
}

/** Encodes a model (parameters + configuration metadata) as safetensors bytes. */
export function modelToSafetensors(model: TransformerLM, metadata: Record<string, string> = {}): Uint8Array {
  return encodeModelFile(model.parameters(), model.config, metadata);
}

function fromContents(fn: string, c: SafetensorsContents): AnyModel {
  const json = c.metadata[CONFIG_METADATA_KEY];
  if (json === undefined) {
    throw new Error(
      `${fn}: the file has no '${CONFIG_METADATA_KEY}' metadata; expected a checkpoint written by saveModel (for Hugging Face GPT-2 files use loadGpt2FromHuggingFace)`,
    );
  }
  let cfg: unknown;
  try {
    cfg = JSON.parse(json);
  } catch (err) {
    throw new Error(`${fn}: '${CONFIG_METADATA_KEY}' metadata is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  checkConfigAgainstShapes(cfg, shapesOf(c), fn);
  const config = validateConfig(cfg);
  const model = createEmptyModel(config);
  const sd: Record<string, Tensor> = {};
  for (const [n, r] of Object.entries(c.tensors)) sd[n] = rawToParameter(n, r, config.dtype);
  model.loadStateDict(sd); // a merged LoRA model is rebuilt with its adapters flagged as merged
  return model;
}

/** Rebuilds a model from bytes written by modelToSafetensors / saveModel. */
export function modelFromSafetensors(bytes: Uint8Array): AnyModel {
  return fromContents("modelFromSafetensors", decodeSafetensors(bytes));
}

/** Writes a model to a safetensors file (atomically), with its configuration in the metadata. */
export async function saveModel(file: string, model: TransformerLM, metadata: Record<string, string> = {}): Promise<void> {
  await writeSafetensorsFile(file, tensorsToRaw(model.parameters()), modelMetadata(model.config, metadata));
}

/** Synchronous saveModel. */
export function saveModelSync(file: string, model: TransformerLM, metadata: Record<string, string> = {}): void {
  writeSafetensorsFileSync(file, tensorsToRaw(model.parameters()), modelMetadata(model.config, metadata));
}

/** Reads a model written by saveModel. */
export async function loadModel(file: string): Promise<AnyModel> {
  return fromContents("loadModel", await readSafetensorsFile(file));
}

/** Synchronous loadModel. */
export function loadModelSync(file: string): AnyModel {
  return fromContents("loadModelSync", readSafetensorsFileSync(file));
}

/** Settings for Hugging Face GPT-2 files (which carry no configuration besides tensor shapes). */
export interface HfGpt2Options {
  /** Number of heads (default: hfConfig.n_head, else nEmbd / 64 as in every released GPT-2). */
  nHead?: number;
  /** Parameter dtype of the built model (default float32). */
  dtype?: ModelDType;
  /** The Hugging Face config.json contents (n_head, layer_norm_epsilon, embd_pdrop, resid_pdrop are read). */
  hfConfig?: Record<string, unknown>;
}

const IGNORED = [/^h\.\d+\.attn\.(bias|masked_bias)$/];

function num(o: Record<string, unknown> | undefined, k: string): number | undefined {
  const v = o?.[k];
  return typeof v === "number" ? v : undefined;
}

/**
 * Builds a GPT-2 from a Hugging Face GPT-2 safetensors checkpoint (names with or without the `transformer.`
 * prefix; the `attn.bias` / `attn.masked_bias` buffers are ignored; `lm_head.weight`, when present, must equal
 * `wte.weight` since the unembedding is tied). Sizes come from the tensor shapes.
 */
export function gpt2FromHuggingFace(source: Uint8Array | SafetensorsContents, opts: HfGpt2Options = {}): Gpt2Model {
  const fn = "gpt2FromHuggingFace";
  const contents = source instanceof Uint8Array ? decodeSafetensors(source) : source;
  const raw: Record<string, RawTensor> = {};
  let lmHead: RawTensor | undefined;
  for (const [name, t] of Object.entries(contents.tensors)) {
    const n = name.startsWith("transformer.") ? name.slice("transformer.".length) : name;
    if (IGNORED.some((r) => r.test(n))) continue;
    if (n === "lm_head.weight") {
      lmHead = t;
      continue;
    }
    raw[n] = t;
  }
  const wte = raw["wte.weight"],
    wpe = raw["wpe.weight"];
  if (!wte || !wpe)
    throw new Error(
      `${fn}: no 'wte.weight' / 'wpe.weight' tensors (names seen: ${Object.keys(contents.tensors).slice(0, 8).join(", ")}…); expected a GPT-2 checkpoint`,
    );
  const [V, E] = wte.shape;
  let nLayer = 0;
  for (const n of Object.keys(raw)) {
    const m = /^h\.(\d+)\./.exec(n);
    if (m) nLayer = Math.max(nLayer, Number(m[1]) + 1);
  }
  const nHead = opts.nHead ?? num(opts.hfConfig, "n_head") ?? (E % 64 === 0 ? E / 64 : undefined);
  if (nHead === undefined)
    throw new Error(`${fn}: cannot infer the number of heads for width ${E} (not a multiple of 64); pass opts.nHead or opts.hfConfig`);
  const config = validateConfig({
    kind: "gpt2",
    vocabSize: V,
    blockSize: wpe.shape[0],
    nEmbd: E,
    nHead,
    nLayer,
    embdPdrop: num(opts.hfConfig, "embd_pdrop") ?? 0.1,
    residPdrop: num(opts.hfConfig, "resid_pdrop") ?? 0.1,
    layerNormEps: num(opts.hfConfig, "layer_norm_epsilon") ?? 1e-5,
    dtype: opts.dtype ?? "float32",
  });
  const model = createEmptyModel(config) as Gpt2Model;
  const sd: Record<string, Tensor> = {};
  for (const [n, r] of Object.entries(raw)) sd[n] = rawToParameter(n, r, config.dtype);
  if (lmHead) {
    const a = rawToParameter("lm_head.weight", lmHead, config.dtype).data();
    const b = sd["wte.weight"].data();
    if (a.length !== b.length || a.some((v, i) => v !== b[i])) {
      throw new Error(`${fn}: 'lm_head.weight' differs from 'wte.weight'; expected a tied unembedding as in GPT-2`);
    }
  }
  model.loadStateDict(sd);
  return model;
}

/** Reads a Hugging Face GPT-2 `model.safetensors`; a `config.json` beside it is used for n_head etc. when present. */
export async function loadGpt2FromHuggingFace(file: string, opts: HfGpt2Options = {}): Promise<Gpt2Model> {
  let hfConfig = opts.hfConfig;
  if (!hfConfig) {
    const cfgPath = path.join(path.dirname(file), "config.json");
    if (fs.existsSync(cfgPath)) hfConfig = JSON.parse(await fs.promises.readFile(cfgPath, "utf8")) as Record<string, unknown>;
  }
  return gpt2FromHuggingFace(await readSafetensorsFile(file), { ...opts, hfConfig });
}
