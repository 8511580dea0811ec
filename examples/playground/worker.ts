/**
 * The playground's training worker (a module worker, bundled by build.ts as playground-worker.js): CPU-backend
 * training runs here, so that the page's main thread only draws. Messages in (see {@link TrainRequest}): `start`
 * (a model file, the training token ids, batch and sequence length, the number of the last update done), `resume`
 * (the same session, AdamW state kept) and `pause`. Messages out ({@link TrainReport}): one `step` per finished
 * update, `paused` with the trained model file once a pause request has been seen between updates, and `error`.
 * The page also runs the held-out evaluation on the CPU backend in a second instance: `evaluate` (a model file, the
 * held-out ids, a depth setting) is answered by `evaluated` (engine.ts's `heldOut`).
 */
import { setBackend } from "../../packages/autograd/src/index.js";
import { TrainSession, heldOut, modelFileBytes, modelFromFile, type DepthSetting, type StepRecord } from "./engine.js";

/** What the page sends to the worker. */
export type TrainRequest =
  | { type: "start"; model: Uint8Array; tokens: Int32Array; batchSize: number; seqLen: number; step: number }
  | { type: "resume" }
  | { type: "pause" }
  | { type: "evaluate"; model: Uint8Array; tokens: Int32Array; setting: DepthSetting };

/** What the worker sends back. */
export type TrainReport =
  | { type: "step"; record: StepRecord }
  | { type: "paused"; model: Uint8Array; step: number }
  | { type: "evaluated"; ppl: number; loss: number; evaluations: number; tokens: number }
  | { type: "error"; message: string };

const scope = globalThis as unknown as {
  postMessage(m: TrainReport, transfer?: Transferable[]): void;
  onmessage: ((ev: MessageEvent<TrainRequest>) => void) | null;
};
const post = (m: TrainReport, transfer: Transferable[] = []): void => scope.postMessage(m, transfer);

let session: TrainSession | null = null;
let running = false;
let looping = false;

/** Updates until a pause request arrives (it is read between updates: each update ends its task). */
async function loop(): Promise<void> {
  if (looping) return;
  looping = true;
  try {
    while (running && session) {
      post({ type: "step", record: session.update() });
      await new Promise((ok) => setTimeout(ok, 0));
    }
    if (session) {
      const bytes = modelFileBytes(session.model);
      post({ type: "paused", model: bytes, step: session.step }, [bytes.buffer]);
    }
  } catch (e) {
    running = false;
    post({ type: "error", message: e instanceof Error ? e.message : String(e) });
  } finally {
    looping = false;
  }
}

scope.onmessage = (ev) => {
  const m = ev.data;
  try {
    if (m.type === "pause") {
      running = false;
      return;
    }
    if (m.type === "evaluate") {
      setBackend("cpu");
      post({ type: "evaluated", ...heldOut(modelFromFile(m.model), m.tokens, m.setting) });
      return;
    }
    if (m.type === "start") {
      setBackend("cpu");
      session = new TrainSession(modelFromFile(m.model), m.tokens, { batchSize: m.batchSize, seqLen: m.seqLen });
      session.step = m.step;
    } else if (m.type === "resume") {
      if (!session) throw new Error("resume: no training session in the worker; send 'start' first");
    } else {
      throw new Error(`unknown message type '${(m as { type: unknown }).type}'; expected start, resume, pause or evaluate`);
    }
    running = true;
    void loop();
  } catch (e) {
    post({ type: "error", message: e instanceof Error ? e.message : String(e) });
  }
};
