import { getBackend } from "../backend/registry.js";
import type { DType } from "../dtype.js";
import { Tensor } from "../tensor.js";
import { bf16ToF32, decodeSafetensors, encodeSafetensors, f16ToF32, type RawTensor, type SafetensorsContents } from "./safetensors.js";

const TO_SAFE: Record<DType, RawTensor["dtype"]> = { float32: "F32", float64: "F64", int32: "I32", bool: "BOOL" };

/**
 * A tensor as a safetensors record (float32 → F32, float64 → F64, int32 → I32, bool → BOOL). The data is read
 * back from the tensor's backend; on the CPU it is the tensor's own array (shared, not copied), so treat it as
 * read-only.
 */
export function tensorToRaw(t: Tensor): RawTensor {
  const dtype = TO_SAFE[t.dtype];
  if (dtype === undefined)
    throw new Error(`tensorToRaw: dtype ${String(t.dtype)} has no safetensors counterpart; expected float32, float64, int32 or bool`);
  return { dtype, shape: [...t.shape], data: t.data() as RawTensor["data"] };
}

/** Tensors as safetensors records (see `tensorToRaw`). */
export function tensorsToRaw(tensors: Record<string, Tensor>): Record<string, RawTensor> {
  const out: Record<string, RawTensor> = {};
  for (const [name, t] of Object.entries(tensors)) out[name] = tensorToRaw(t);
  return out;
}

/**
 * A safetensors record as a tensor on the current backend: F16/BF16 widen to float32; I64/I16/I8/U8 become int32
 * (I64 must fit). F32, F64, I32 and BOOL data are used as they are (not copied on the CPU).
 */
export function rawToTensor(name: string, r: RawTensor): Tensor {
  const be = getBackend();
  let data: Float32Array | Float64Array | Int32Array | Uint8Array;
  let dtype: DType;
  switch (r.dtype) {
    case "F32":
      data = r.data as Float32Array;
      dtype = "float32";
      break;
    case "F64":
      data = r.data as Float64Array;
      dtype = "float64";
      break;
    case "F16":
      data = f16ToF32(r.data as Uint16Array);
      dtype = "float32";
      break;
    case "BF16":
      data = bf16ToF32(r.data as Uint16Array);
      dtype = "float32";
      break;
    case "I32":
      data = r.data as Int32Array;
      dtype = "int32";
      break;
    case "BOOL":
      data = r.data as Uint8Array;
      dtype = "bool";
      break;
    case "I64": {
      const src = r.data as BigInt64Array;
      data = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const v = src[i];
        if (v > 2147483647n || v < -2147483648n)
          throw new Error(`safetensors: tensor '${name}' holds I64 value ${v} outside the int32 range; expected values that fit int32`);
        data[i] = Number(v);
      }
      dtype = "int32";
      break;
    }
    default: {
      const src = r.data as Int16Array | Int8Array | Uint8Array;
      data = Int32Array.from(src);
      dtype = "int32";
    }
  }
  return new Tensor(be.fromArray(data, dtype), r.shape, dtype, be);
}

/** Serialises named tensors to safetensors bytes. */
export function saveSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  return encodeSafetensors(tensorsToRaw(tensors), metadata);
}

/** Parses safetensors bytes into named tensors and the metadata. */
export function loadSafetensors(bytes: Uint8Array): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const c: SafetensorsContents = decodeSafetensors(bytes);
  const tensors: Record<string, Tensor> = {};
  for (const [name, r] of Object.entries(c.tensors)) tensors[name] = rawToTensor(name, r);
  return { tensors, metadata: c.metadata };
}
