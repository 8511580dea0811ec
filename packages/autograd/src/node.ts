/**
 * @qkvflow/autograd/node — file I/O that needs Node's `fs` (kept out of the main entry so browsers can bundle it).
 */
import { readSafetensorsFileSync, writeSafetensorsFileSync } from "./io/safetensors-node.js";
import { rawToTensor, tensorsToRaw } from "./io/tensors.js";
import type { Tensor } from "./tensor.js";

export {
  readSafetensorsFile,
  readSafetensorsFileSync,
  writeSafetensorsFile,
  writeSafetensorsFileSync,
  type WriteSafetensorsOptions,
} from "./io/safetensors-node.js";

/** Writes named tensors to a safetensors file atomically (temp file, fsync, verify, rename). */
export function saveSafetensorsFile(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  writeSafetensorsFileSync(path, tensorsToRaw(tensors), metadata);
}

/** Reads a safetensors file into named tensors and its metadata. */
export function loadSafetensorsFile(path: string): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const c = readSafetensorsFileSync(path);
  const tensors: Record<string, Tensor> = {};
  for (const [name, r] of Object.entries(c.tensors)) tensors[name] = rawToTensor(name, r);
  return { tensors, metadata: c.metadata };
}
