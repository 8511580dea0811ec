/**
 * Bundles the browser example (examples/browser/main.ts) into one classic script with esbuild.
 * Usage: `npx tsx examples/browser/build.ts [outRoot]`: writes outRoot/dist/demo.js and, for another outRoot
 * than examples/browser, a copy of index.html (which loads dist/demo.js).
 */
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** Builds the example into `root` (root/index.html and root/dist/demo.js); returns the index.html path. */
export async function buildBrowserExample(root: string = here): Promise<string> {
  const dist = join(root, "dist");
  mkdirSync(dist, { recursive: true });
  await build({
    entryPoints: [join(here, "main.ts")],
    outfile: join(dist, "demo.js"),
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2022",
    tsconfig: join(here, "..", "..", "tsconfig.json"),
    // node-only modules reached through optional code paths (never loaded in a browser)
    external: ["node:*", "gl", "webgpu"],
    logLevel: "warning",
    legalComments: "none",
  });
  const html = join(root, "index.html");
  if (resolve(root) !== resolve(here)) copyFileSync(join(here, "index.html"), html);
  return html;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildBrowserExample(process.argv[2] ? resolve(process.argv[2]) : here);
  console.log(`built ${out}`);
}
