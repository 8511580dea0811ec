import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

// A small DiffEqFormer (E 64, 2 layers, vocabulary 512, batch 4 × 32, dropout 0.1, AdamW with clipping) trained
// through Trainer in a child process (node --expose-gc), memory read after two full collections.
// Checks between step 100 and step 220:
//  - the WebAssembly kernel memory keeps its byte length (its arena is reused, never grown after warm-up);
//  - the JS heap in use plus ArrayBuffer bytes grow by at most HEAP_SLACK (2 MiB, i.e. under 18 KiB a step over
//    120 steps: smaller than the model's activations, e.g. one [4, 32, 64] float32 tensor is 32 KiB);
//  - the RSS grows by at most RSS_SLACK (16 MiB; allocator noise, catches native leaks of more than ~100 KiB a step).
// The second test keeps one parameter tensor (512 × 64 float32, 128 KiB) per step and requires the same check to
// fail, so the first cannot pass because the measurement misses retained tensors.
const here = path.dirname(fileURLToPath(import.meta.url));
const child = path.join(here, "fixtures", "memory-loop.ts");
const HEAP_SLACK = 2 * 1024 * 1024;
const RSS_SLACK = 16 * 1024 * 1024;

interface Snap {
  rss: number;
  heapUsed: number;
  arrayBuffers: number;
  kernelMemory: number | null;
}

function runLoop(steps: number, from: number, leak: boolean): { from: Snap; end: Snap; simd: boolean } {
  const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", child, String(steps), String(from), ...(leak ? ["leak"] : [])], {
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `memory-loop exited with ${r.status}: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { from: Snap; end: Snap; simd: boolean };
  assert.ok(out.from && out.end, "memory-loop did not report both snapshots");
  return out;
}

function problems(a: Snap, b: Snap): string[] {
  const out: string[] = [];
  if (a.kernelMemory !== b.kernelMemory) out.push(`kernel memory ${a.kernelMemory} -> ${b.kernelMemory} bytes`);
  const js = b.heapUsed + b.arrayBuffers - (a.heapUsed + a.arrayBuffers);
  if (js > HEAP_SLACK) out.push(`JS heap + ArrayBuffers grew by ${js} bytes (> ${HEAP_SLACK})`);
  if (b.rss - a.rss > RSS_SLACK) out.push(`RSS grew by ${b.rss - a.rss} bytes (> ${RSS_SLACK})`);
  return out;
}

test("training loop: memory does not grow after step 100 (kernel memory, JS heap + ArrayBuffers, RSS)", () => {
  const r = runLoop(220, 100, false);
  assert.deepEqual(problems(r.from, r.end), []);
  if (r.simd) assert.ok(r.from.kernelMemory! > 0, "the WebAssembly kernels ran but no kernel memory was reported");
});

test("training loop: the memory check fails when one tensor per step is kept", () => {
  const r = runLoop(80, 40, true);
  const p = problems(r.from, r.end);
  assert.ok(
    p.some((x) => x.startsWith("JS heap")),
    `keeping 40 tensors of 128 KiB was not caught: ${JSON.stringify(r)}`,
  );
});
