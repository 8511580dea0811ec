/**
 * A static file server for the playground with the cross-origin isolation headers (COOP same-origin, COEP
 * require-corp), which browsers require before they give a page SharedArrayBuffer and threaded WebAssembly.
 * `npm run playground` builds the page and serves it here: `tsx examples/playground/serve.ts [--port N] [--no-build]`.
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".safetensors": "application/octet-stream",
};

/** Headers of every response: cross-origin isolation, and no caching (a rebuilt page is picked up at once). */
export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cache-Control": "no-cache",
} as const;

/** Serves `root` on 127.0.0.1:`port` (0: any free port); resolves with the server and its URL. */
export function serveStatic(root: string, port = 0): Promise<{ server: Server; url: string }> {
  const base = resolve(root);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    let file = normalize(join(base, path));
    if (file !== base && !file.startsWith(base + sep)) {
      res.writeHead(403, ISOLATION_HEADERS).end("forbidden");
      return;
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, "index.html");
    if (!existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { ...ISOLATION_HEADERS, "Content-Type": "text/plain" }).end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, { ...ISOLATION_HEADERS, "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => {
      const { port: p } = server.address() as AddressInfo;
      ok({ server, url: `http://127.0.0.1:${p}/` });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf("--port");
  const port = at >= 0 ? Number(args[at + 1]) : 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`playground: --port is '${args[at + 1]}'; expected an integer in 0..65535`);
    process.exit(2);
  }
  const here = fileURLToPath(new URL(".", import.meta.url));
  const dir = join(here, "dist");
  if (!args.includes("--no-build")) {
    const { buildPlayground } = await import("./build.js");
    const r = await buildPlayground(dir);
    console.log(
      `built playground.js (${(r.bundleBytes / 1e6).toFixed(2)} MB)${r.excerpt ? "" : "; no WikiText-2 data found: paste text on the page"}`,
    );
  }
  const { url } = await serveStatic(dir, port);
  console.log(`qkvflow playground: ${url}  (Ctrl-C stops)`);
}
