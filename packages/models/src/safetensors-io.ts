/**
 * The safetensors functions this package uses, gathered in one place.
 */
export { decodeSafetensors, encodeSafetensors, f16ToF32, bf16ToF32, type RawTensor, type SafetensorsContents } from "@qkvflow/autograd";
export { readSafetensorsFile, readSafetensorsFileSync, writeSafetensorsFile, writeSafetensorsFileSync } from "@qkvflow/autograd/node";
