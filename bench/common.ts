/** Helpers shared by the benchmark suites. */
import * as os from "node:os";
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
