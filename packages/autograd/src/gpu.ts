/**
 * @qkvflow/autograd/gpu — the gpu.js backend (kept out of the main entry so that plain CPU users do not load gpu.js,
 * an optional peer dependency). This is the subpath as the sources and the type declarations see it; the published
 * JavaScript comes from `gpu-node.ts` (Node) and `gpu-bundler.ts` (bundlers).
 */
export * from "./backend/gpu/index.js";
