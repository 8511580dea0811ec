/**
 * The constants of GPT-2's tanh GELU, gelu(x) = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), named once for the
 * op layer's composite (ops/fused.ts), the CPU kernels and the gpu codegen.
 */

/** √(2/π), the scale inside the tanh. */
export const GELU_TANH_SCALE = Math.sqrt(2 / Math.PI);

/** 0.044715, the coefficient of the cubic term. */
export const GELU_CUBIC = 0.044715;
