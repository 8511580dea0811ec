/**
 * Hugging Face GPT-2 `model.safetensors` files where a model is expected (`eval`, `generate`, `finetune --from`):
 * a safetensors file without qkvflow's configuration metadata whose tensors are GPT-2's (`wte.weight`, with or
 * without the `transformer.` prefix) is read with @qkvflow/models' `gpt2FromHuggingFace`, using a `config.json`
 * beside it for n_head and the dropout rates when there is one.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { decodeSafetensors } from "@qkvflow/autograd";
import { CONFIG_METADATA_KEY, gpt2FromHuggingFace } from "@qkvflow/models";
import type { TrainableModel } from "./model-types.js";

/** The GPT-2 of a Hugging Face file, or null when `bytes` is not one (a qkvflow model file, or not GPT-2). */
export function huggingFaceGpt2(bytes: Uint8Array, file: string, supported: boolean): TrainableModel | null {
  let contents: ReturnType<typeof decodeSafetensors>;
  try {
    contents = decodeSafetensors(bytes);
  } catch {
    return null; // decodeModelFile reports the problem with the file's name
  }
  if (contents.metadata[CONFIG_METADATA_KEY] !== undefined) return null;
  const names = Object.keys(contents.tensors);
  if (!names.some((n) => n === "wte.weight" || n === "transformer.wte.weight")) return null;
  if (!supported) throw new Error(`${file} is a Hugging Face GPT-2 file; this model backend reads qkvflow model files only`);
  const cfgFile = path.join(path.dirname(file), "config.json");
  let hfConfig: Record<string, unknown> | undefined;
  if (fs.existsSync(cfgFile)) {
    try {
      const j = JSON.parse(fs.readFileSync(cfgFile, "utf8")) as unknown;
      if (j !== null && typeof j === "object" && !Array.isArray(j) && "n_head" in j) hfConfig = j as Record<string, unknown>;
    } catch {
      hfConfig = undefined; // not a Hugging Face config.json: the shapes decide
    }
  }
  try {
    return gpt2FromHuggingFace(contents, hfConfig !== undefined ? { hfConfig } : {}) as unknown as TrainableModel;
  } catch (err) {
    throw new Error(`${file}: read as a Hugging Face GPT-2 file: ${(err as Error).message}`, { cause: err });
  }
}
