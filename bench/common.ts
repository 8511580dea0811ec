/** Helpers shared by the benchmark suites. */
import * as os from "node:os";
import { pathToFileURL } from "node:url";
import type Benchmark from "benchmark";

/** Runs a benchmark.js suite synchronously and resolves when it completes. */
export function runSuite(suite: Benchmark.Suite): Promise<void> {
  return new Promise((resolve) => {
    suite.on("complete", () => resolve());
    suite.run({ async: false });
  });
}

/** A case-insensitive name filter (everything passes without a filter). */
export function nameFilter(filter?: string): (name: string) => boolean {
  return (name) => !filter || name.toLowerCase().includes(filter.toLowerCase());
}

/** Hardware threads available to this process. */
export function hardwareThreads(): number {
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
}

/** Reproducible uniform values in [lo, hi) (a 32-bit LCG), for benchmark inputs. */
export function randomArray(n: number, seed: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = lo + (s / 4294967296) * (hi - lo);
  }
  return a;
}

/** Runs `run(argv[2])` when the suite file at `moduleUrl` is the script being executed (`npx tsx bench/x.bench.ts [filter]`). */
export function runIfMain(moduleUrl: string, run: (filter?: string) => Promise<void>): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  run(process.argv[2]).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
