/**
 * Output folders are checked before any work starts: each missing level is created on its own (Node 20's
 * recursive mkdir never returns under some special folders, e.g. /proc), an existing file in the way or a
 * folder that cannot be written is reported with the path and the reason.
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** Creates `dir` (and missing parents) and checks that files can be created in it; `what` names the setting in errors. */
export function ensureOutDir(dir: string, what: string): string {
  const abs = path.resolve(dir);
  const fail = (why: string): never => {
    throw new Error(`${what}: cannot use '${abs}' as the output folder: ${why}; expected a folder that can be created and written`);
  };
  const { root } = path.parse(abs);
  const parts = abs
    .slice(root.length)
    .split(path.sep)
    .filter((p) => p !== "");
  let cur = root;
  for (const p of parts) {
    cur = path.join(cur, p);
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(cur);
    } catch {
      st = undefined;
    }
    if (st !== undefined) {
      if (!st.isDirectory()) fail(`'${cur}' exists and is not a folder`);
      continue;
    }
    try {
      fs.mkdirSync(cur);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== "EEXIST") fail(`creating '${cur}' failed (${e.code ?? e.message})`);
    }
  }
  const probe = path.join(abs, `.write-test-${process.pid}-${Date.now()}`);
  try {
    fs.closeSync(fs.openSync(probe, "wx"));
    fs.rmSync(probe, { force: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    fail(`it is not writable (${e.code ?? e.message})`);
  }
  return abs;
}
