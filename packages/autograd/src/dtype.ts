/** Element types a tensor can hold. `bool` masks are stored one byte per element. */
export type DType = "float32" | "float64" | "int32" | "bool";

/** The typed array that backs each dtype on the CPU. */
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** Allocates a zero-filled typed array for a dtype. */
export function allocArray(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(size);
    case "float64":
      return new Float64Array(size);
    case "int32":
      return new Int32Array(size);
    case "bool":
      return new Uint8Array(size);
  }
}

/** Whether values of this dtype can carry gradients. */
export function isFloat(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float64";
}

/** The dtype matching a typed array's constructor. */
export function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof Int32Array) return "int32";
  return "bool";
}

/** Checks a user-supplied dtype string. */
export function checkDType(op: string, dtype: string): DType {
  if (dtype === "float32" || dtype === "float64" || dtype === "int32" || dtype === "bool") return dtype;
  throw new Error(`${op}: unknown dtype '${dtype}'; expected one of float32, float64, int32, bool`);
}
