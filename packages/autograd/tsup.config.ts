import { join } from "node:path";
import { defineConfig, type Options } from "tsup";

type Plugin = NonNullable<Options["esbuildPlugins"]>[number];

/**
 * gpu.js is an optional peer dependency, loaded by the entry of `@qkvflow/autograd/gpu` rather than imported by
 * the backend's modules: in the published builds `backend/gpu/gpujs.ts` (a static import, used by the sources)
 * becomes `gpujs-slot.ts`, which `gpu-node.ts` (Node: `require`, with an error naming the package when it is
 * missing) or `gpu-bundler.ts` (bundlers: static import) fills.
 */
const gpuJsSlot: Plugin = {
  name: "gpujs-slot",
  setup(build) {
    build.onResolve({ filter: /^\.\/gpujs\.js$/ }, (args) =>
      args.resolveDir.endsWith(join("backend", "gpu")) ? { path: join(args.resolveDir, "gpujs-slot.ts") } : undefined,
    );
  },
};

export default defineConfig({
  entry: { index: "src/index.ts", node: "src/node.ts", gpu: "src/gpu-bundler.ts", "gpu-node": "src/gpu-node.ts" },
  format: ["esm", "cjs"],
  dts: { entry: { index: "src/index.ts", node: "src/node.ts", gpu: "src/gpu.ts" } },
  sourcemap: true,
  clean: true,
  target: "node20",
  // import.meta.url in the CommonJS build (gpu-node.ts resolves gpu.js from where the package is installed)
  shims: true,
  // one copy of the core in the CommonJS build too: the gpu subpath registers its backend in the registry the
  // main entry uses (esbuild splits ESM only; tsup converts the split chunks to CommonJS)
  splitting: true,
  esbuildPlugins: [gpuJsSlot],
});
