/**
 * One training step (loss and gradients of every parameter) of the micro DiffEqFormer preset on a chosen
 * backend, deterministic from a fixed key and fixed token ids. Run in the test process or, with `workerData`,
 * as a worker thread (each worker has its own module graph, so module-level caches of one backend's tensors
 * in the models package cannot leak into another backend's run).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { random, setBackend, tensor, valueAndGrad, type Tensor } from "../../src/index.js";
import { createGpuBackend, type GpuMode } from "../../src/backend/gpu/index.js";
import { createModel, preset } from "@qkvflow/models";

/** Loss and gradients as host arrays, plus the mode that ran. */
export interface StepResult {
  mode: string;
  loss: number;
  grads: Record<string, number[]>;
}

/** Which backend to run on: the cpu backend or the gpu backend in a gpu.js mode. */
export type StepBackend = { kind: "cpu" } | { kind: "gpu"; mode: GpuMode };

/** Runs the step; the model is built on the chosen backend. */
export function trainStep(spec: StepBackend): StepResult {
  const gpu = spec.kind === "gpu" ? createGpuBackend({ mode: spec.mode, name: `gpu-step-${spec.mode}` }) : null;
  setBackend(gpu ?? "cpu");
  try {
    const model = createModel(preset("diffeqformer-micro"), random.key(7));
    model.train(false);
    const B = 2,
      T = 8,
      V = model.config.vocabSize;
    const x = tensor(
      Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % V),
      { shape: [B, T], dtype: "int32" },
    );
    const y = tensor(
      Int32Array.from({ length: B * T }, (_, i) => (i * 5 + 1) % V),
      { shape: [B, T], dtype: "int32" },
    );
    const f = (p: Record<string, Tensor>) => {
      model.setParameters(p);
      return model.loss(x, y);
    };
    const [loss, grads] = valueAndGrad(f)(model.parameters()) as [Tensor, Record<string, Tensor>];
    return {
      mode: gpu ? gpu.mode : "cpu-backend",
      loss: loss.item(),
      grads: Object.fromEntries(Object.entries(grads).map(([k, v]) => [k, Array.from(v.data())])),
    };
  } finally {
    setBackend("cpu");
    gpu?.destroy();
  }
}

if (!isMainThread && parentPort && workerData && (workerData as { trainStep?: StepBackend }).trainStep) {
  parentPort.postMessage(trainStep((workerData as { trainStep: StepBackend }).trainStep));
}
