/**
 * @qkvflow/autograd/gpu — the gpu.js backend (kept out of the main entry so that plain CPU users do not load gpu.js).
 */
export * from "./backend/gpu/index.js";
