/** safetensors encoding used by checkpoints (from @qkvflow/autograd), plus conversions between RawTensor and Tensor. */
import { tensor, type RawTensor, type Tensor } from '@qkvflow/autograd';

export { decodeSafetensors, encodeSafetensors, type RawTensor, type SafeDType, type SafetensorsContents } from '@qkvflow/autograd';

/** A Tensor as a RawTensor (float32 → F32, float64 → F64, int32 → I32, bool → BOOL); copies the data. */
export function toRawTensor(t: Tensor): RawTensor {
  const shape = [...t.shape];
  switch (t.dtype) {
    case 'float32':
      return { dtype: 'F32', shape, data: Float32Array.from(t.data() as Float32Array) };
    case 'float64':
      return { dtype: 'F64', shape, data: Float64Array.from(t.data() as Float64Array) };
    case 'int32':
      return { dtype: 'I32', shape, data: Int32Array.from(t.data() as Int32Array) };
    case 'bool':
      return { dtype: 'BOOL', shape, data: Uint8Array.from(t.data() as Uint8Array) };
    default:
      throw new Error(`toRawTensor: dtype ${String(t.dtype)} is not supported; expected float32, float64, int32 or bool`);
  }
}

/** A RawTensor as a Tensor (F32, F64, I32, BOOL). */
export function fromRawTensor(r: RawTensor, name = 'tensor'): Tensor {
  switch (r.dtype) {
    case 'F32':
      return tensor(r.data as Float32Array, { shape: r.shape, dtype: 'float32' });
    case 'F64':
      return tensor(r.data as Float64Array, { shape: r.shape, dtype: 'float64' });
    case 'I32':
      return tensor(r.data as Int32Array, { shape: r.shape, dtype: 'int32' });
    case 'BOOL':
      return tensor(r.data as Uint8Array, { shape: r.shape, dtype: 'bool' });
    default:
      throw new Error(`fromRawTensor: '${name}' has dtype ${r.dtype}; expected F32, F64, I32 or BOOL`);
  }
}
