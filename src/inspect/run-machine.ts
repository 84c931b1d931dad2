// A run document executed for its machine (dump, traces): executeRun, with
// the document accepted as text or object and load errors made typed.

import type { MachineImpl } from "../machine/machine.js";
import { executeRun, loadRunDocument, RunDocumentError, type ExecuteOptions, type RunDocument } from "../run/index.js";
import { XenmmInputError } from "../api/errors.js";

export type RunMachineOptions = ExecuteOptions;

function isLoaded(input: unknown): input is RunDocument {
  const ops = (input as { ops?: unknown })?.ops;
  return Array.isArray(ops) && ops.every((o) => o && typeof (o as { kind?: unknown }).kind === "string");
}

/** Run a document (object or JSON text) to the end; returns the machine. */
export async function runDocumentMachine(input: RunDocument | string | object, opt: RunMachineOptions = {}): Promise<MachineImpl> {
  try {
    const doc = isLoaded(input) ? input : loadRunDocument(input);
    return (await executeRun(doc, opt)).machine;
  } catch (e) {
    if (e instanceof RunDocumentError) throw e;
    if (e instanceof Error && /^domain \d+:/.test(e.message)) throw new XenmmInputError(e.message);
    throw e;
  }
}
