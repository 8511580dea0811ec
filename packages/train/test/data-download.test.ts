import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { downloadFile } from "../src/data/index.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const root = mkdtempSync(join(tmpdir(), "qkvflow-download-test-"));
const payload = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31 + 7) % 251));
const payloadSha = createHash("sha256").update(payload).digest("hex");
const hits = new Map<string, number>();
const routes: Record<string, Handler> = {
  "/ok.bin": (_q, res) => {
    res.writeHead(200, { "content-length": payload.length });
    res.end(payload);
  },
  "/chunked.bin": (_q, res) => {
    res.writeHead(200);
    res.write(payload.subarray(0, 1000));
    setTimeout(() => res.end(payload.subarray(1000)), 5);
  },
  "/moved": (_q, res) => {
    res.writeHead(302, { location: "/ok.bin" });
    res.end();
  },
  "/missing.bin": (_q, res) => {
    res.writeHead(404);
    res.end("not here");
  },
  "/abort.bin": (_q, res) => {
    res.writeHead(200, { "content-length": payload.length });
    res.write(payload.subarray(0, 100_000));
    setTimeout(() => res.destroy(), 20);
  },
  "/silent.bin": () => {
    // never answers: exercises the timeout
  },
};
let server: Server;
let base = "";

before(async () => {
  server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const h = routes[path];
    if (h === undefined) {
      res.writeHead(404);
      res.end();
    } else h(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(root, { recursive: true, force: true });
});

let n = 0;
const freshDir = (): string => join(root, `case-${n++}`);
const files = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { stream, text: () => chunks.join("") };
}

describe("downloadFile against a local HTTP server", () => {
  it("downloads, checks size and sha256, and leaves only the final file", async () => {
    const dir = freshDir();
    const dest = join(dir, "ok.bin");
    const out = capture();
    const r = await downloadFile({
      url: `${base}/ok.bin`,
      dest,
      expectedSha256: payloadSha,
      expectedSize: payload.length,
      progress: false,
      progressStream: out.stream,
    });
    assert.deepEqual(r, { path: dest, size: payload.length, sha256: payloadSha, downloaded: true });
    assert.ok(readFileSync(dest).equals(payload));
    assert.deepEqual(files(dir), ["ok.bin"]);
    assert.equal(out.text(), "", "progress off writes nothing");
  });

  it("follows redirects and accepts bodies without Content-Length", async () => {
    const dir = freshDir();
    const a = await downloadFile({ url: `${base}/moved`, dest: join(dir, "a.bin"), progress: false });
    assert.equal(a.sha256, payloadSha);
    const b = await downloadFile({ url: `${base}/chunked.bin`, dest: join(dir, "b.bin"), progress: false });
    assert.equal(b.sha256, payloadSha);
    assert.deepEqual(files(dir).sort(), ["a.bin", "b.bin"]);
  });

  it("draws a progress bar when asked", async () => {
    const out = capture();
    await downloadFile({ url: `${base}/ok.bin`, dest: join(freshDir(), "bar.bin"), progress: true, progressStream: out.stream });
    assert.match(out.text(), /bar\.bin/);
  });

  it("a checksum mismatch fails and removes the partial file", async () => {
    const dir = freshDir();
    await assert.rejects(
      downloadFile({ url: `${base}/ok.bin`, dest: join(dir, "ok.bin"), expectedSha256: "0".repeat(64), progress: false }),
      (err: Error) => {
        assert.match(err.message, /sha256 mismatch: got [0-9a-f]{64}, expected 0{64}/);
        assert.match(err.message, /Nothing was saved/);
        assert.match(err.message, /--data DIR/);
        assert.match(err.message, /QKVFLOW_DATA/);
        return true;
      },
    );
    assert.deepEqual(files(dir), []);
  });

  it("a size mismatch fails before writing anything", async () => {
    const dir = freshDir();
    await assert.rejects(
      downloadFile({ url: `${base}/ok.bin`, dest: join(dir, "x.bin"), expectedSize: 10, progress: false }),
      /server announces 300000 bytes, expected 10/,
    );
    assert.deepEqual(files(dir), []);
  });

  it("HTTP 404 fails with the status and the local-copy advice", async () => {
    const dir = freshDir();
    await assert.rejects(
      downloadFile({ url: `${base}/missing.bin`, dest: join(dir, "missing.bin"), progress: false }),
      /downloadFile: http:\/\/127\.0\.0\.1:\d+\/missing\.bin -> .*missing\.bin: server answered HTTP 404.*Nothing was saved\. To use a local copy instead, download 'missing\.bin' yourself and pass its folder with --data DIR \(or set QKVFLOW_DATA=DIR\)/,
    );
    assert.deepEqual(files(dir), []);
  });

  it("a connection dropped mid-stream fails and leaves no partial file", async () => {
    const dir = freshDir();
    await assert.rejects(
      downloadFile({ url: `${base}/abort.bin`, dest: join(dir, "abort.bin"), progress: false }),
      /connection failed after \d+ bytes|received \d+ bytes, expected 300000/,
    );
    assert.deepEqual(files(dir), []);
  });

  it("times out when the server does not answer", async () => {
    const dir = freshDir();
    await assert.rejects(
      downloadFile({ url: `${base}/silent.bin`, dest: join(dir, "s.bin"), timeoutMs: 150, progress: false }),
      /no response within 150 ms/,
    );
    assert.deepEqual(files(dir), []);
  });

  it("reuses an existing verified file without contacting the server", async () => {
    const dir = freshDir();
    const dest = join(dir, "ok.bin");
    await downloadFile({ url: `${base}/ok.bin`, dest, progress: false });
    const before = hits.get("/ok.bin");
    const r = await downloadFile({ url: `${base}/ok.bin`, dest, expectedSha256: payloadSha, progress: false });
    assert.equal(r.downloaded, false);
    assert.equal(hits.get("/ok.bin"), before);
  });

  it("rejects malformed expectations", async () => {
    await assert.rejects(
      downloadFile({ url: `${base}/ok.bin`, dest: join(freshDir(), "z"), expectedSha256: "abc" }),
      /downloadFile: expectedSha256 must be 64 hex characters, got 'abc'/,
    );
  });
});
