// worker_threads entry of a fuzz campaign: one worker per thread, its
// machines reused across episodes (acquireFuzzHost). Works from tsx source (spawned with
// `--import tsx`) and from compiled JS.

import { parentPort, workerData } from "node:worker_threads";
import { workerLoop, type WorkerJob, type WorkerMsg } from "./campaign.js";

let stop = false;
parentPort!.on("message", (m) => {
  if (m === "stop") stop = true;
});

const job = workerData as WorkerJob;
workerLoop(job, (m: WorkerMsg) => parentPort!.postMessage(m), () => stop)
  .catch((e) => {
    parentPort!.postMessage({ t: "violation", v: { op: 0, invariant: "crash", variant: "crash:worker", atMs: Date.now(), message: `worker error: ${(e as Error)?.stack ?? e}`, excerpt: null }, seed: job.seed, ops: 0, steps: [] } satisfies WorkerMsg);
    parentPort!.postMessage({ t: "done", ops: 0, episodes: 0 } satisfies WorkerMsg);
  })
  .finally(() => {
    parentPort!.close();
  });
