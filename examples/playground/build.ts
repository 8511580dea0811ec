/**
 * Builds the playground into a static folder (default examples/playground/dist, ignored by git):
 *   index.html, playground.css, playground.js (one esbuild bundle: autograd with both backends, gpu.js, the GPT-2
 *   tokenizer with its ranks, models, the training and analysis code), playground-worker.js (the CPU training worker,
 *   a module worker: autograd's CPU backend, models and the training code), and data/ with a WikiText-2 excerpt cut
 *   from wiki.train.raw when the data folder is there (../shared/data/wikitext-2-raw-v1 or $QKVFLOW_DATA).
 * The excerpt is written into the build output only: the data is CC BY-SA 3.0 and is not part of the sources.
 * Usage: `npx tsx examples/playground/build.ts [outDir]`.
 */
import { build, type Plugin } from "esbuild";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..");

/** Size of the bundled training excerpt and of the held-out excerpt after it (characters, cut at line ends). */
export const EXCERPT = { trainChars: 300_000, heldOutChars: 24_000 } as const;

/** The folder holding wiki.train.raw, or null: $QKVFLOW_DATA (itself or its wikitext-2-raw-v1/), else the shared data folder. */
export function findWikiText(): string | null {
  const env = process.env.QKVFLOW_DATA;
  const candidates = [
    ...(env ? [join(env, "wikitext-2-raw-v1"), env] : []),
    join(repo, "..", "shared", "data", "wikitext-2-raw-v1"),
    join(repo, "..", "..", "shared", "data", "wikitext-2-raw-v1"),
  ];
  return candidates.find((d) => existsSync(join(d, "wiki.train.raw"))) ?? null;
}

/** The first `n` characters of `text` and then up to the end of that line. */
function cutAtLine(text: string, from: number, n: number): { part: string; end: number } {
  let end = Math.min(text.length, from + n);
  const nl = text.indexOf("\n", end);
  end = nl < 0 ? text.length : nl + 1;
  return { part: text.slice(from, end), end };
}

/** Writes data/wikitext-2-train.txt, data/wikitext-2-heldout.txt and data/excerpt.json; returns false without the data. */
export function writeExcerpt(out: string): boolean {
  const dir = findWikiText();
  const dataDir = join(out, "data");
  rmSync(dataDir, { recursive: true, force: true });
  if (dir === null) return false;
  mkdirSync(dataDir, { recursive: true });
  // the start of the file: enough to train on, and the next lines as held-out text the model never sees
  const raw = readFileSync(join(dir, "wiki.train.raw"), "utf8").slice(0, 2 * (EXCERPT.trainChars + EXCERPT.heldOutChars));
  const train = cutAtLine(raw, 0, EXCERPT.trainChars);
  const held = cutAtLine(raw, train.end, EXCERPT.heldOutChars);
  writeFileSync(join(dataDir, "wikitext-2-train.txt"), train.part);
  writeFileSync(join(dataDir, "wikitext-2-heldout.txt"), held.part);
  writeFileSync(
    join(dataDir, "excerpt.json"),
    JSON.stringify({
      source: "WikiText-2 (raw), wiki.train.raw",
      trainChars: train.part.length,
      heldOutChars: held.part.length,
      licence: "CC BY-SA 3.0",
      credit: "Merity, Xiong, Bradbury, Socher, Pointer Sentinel Mixture Models (2016), arXiv:1609.07843",
    }),
  );
  return true;
}

/** Node built-ins reached only through code paths a browser never takes (file IO of checkpoints, worker threads). */
const nodeStub: Plugin = {
  name: "node-builtins-stub",
  setup(b) {
    const names = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    b.onResolve({ filter: /.*/ }, (args) => (names.has(args.path) ? { path: args.path, namespace: "node-stub" } : undefined));
    b.onLoad({ filter: /.*/, namespace: "node-stub" }, (args) => ({
      // every export is a function that throws when called (and can still be extended by a class declaration)
      contents: `const fail = function () { throw new Error("${args.path} is not available in a browser"); };
module.exports = new Proxy(fail, { get(t, k) { if (k === "__esModule") return false; if (k === "default") return module.exports; if (k === "prototype") return t.prototype; return fail; } });`,
      loader: "js",
    }));
  },
};

/** What a build produced. */
export interface PlaygroundBuild {
  dir: string;
  index: string;
  bundleBytes: number;
  /** Size of playground-worker.js (the training worker). */
  workerBytes: number;
  excerpt: boolean;
}

/** One esbuild bundle of an entry beside this file, for the browser, with Node's built-ins stubbed. */
async function bundle(entry: string, outfile: string, format: "iife" | "esm", out: string): Promise<void> {
  await build({
    entryPoints: [join(here, entry)],
    outfile: join(out, outfile),
    bundle: true,
    format,
    platform: "browser",
    target: "es2022",
    minify: process.env.PLAYGROUND_MINIFY !== "0",
    tsconfig: join(repo, "tsconfig.json"),
    external: ["gl", "webgpu"],
    plugins: [nodeStub],
    logLevel: "warning",
    legalComments: "none",
  });
}

/** Builds the playground into `out`. */
export async function buildPlayground(out: string = join(here, "dist")): Promise<PlaygroundBuild> {
  mkdirSync(out, { recursive: true });
  // the page, and the training worker (CPU backend): a module worker the page starts from playground-worker.js
  await bundle("app.ts", "playground.js", "iife", out);
  await bundle("worker.ts", "playground-worker.js", "esm", out);
  copyFileSync(join(here, "index.html"), join(out, "index.html"));
  copyFileSync(join(here, "playground.css"), join(out, "playground.css"));
  const excerpt = writeExcerpt(out);
  return {
    dir: out,
    index: join(out, "index.html"),
    bundleBytes: statSync(join(out, "playground.js")).size,
    workerBytes: statSync(join(out, "playground-worker.js")).size,
    excerpt,
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = await buildPlayground(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(
    `built ${r.index} (playground.js ${(r.bundleBytes / 1e6).toFixed(2)} MB, playground-worker.js ${(r.workerBytes / 1e6).toFixed(2)} MB; WikiText-2 excerpt ${r.excerpt ? "included" : "not found: the page trains on pasted text"})`,
  );
}
