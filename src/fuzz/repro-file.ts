// Reading reproducer documents.

import { decodeValue, type FuzzStep } from "./generator.js";
import type { FuzzRepro } from "./shrink.js";

export function decodeRepro(text: string): FuzzRepro {
  const raw = JSON.parse(text) as Record<string, unknown>;
  const doc = (raw.fuzz ?? raw) as Record<string, unknown>;
  if (doc.format !== undefined && doc.format !== "xenmm-fuzz-repro/1") throw new Error(`unknown reproducer format ${String(doc.format)}`);
  const r = decodeValue(doc) as FuzzRepro & { format?: string };
  delete r.format;
  r.steps = (r.steps as FuzzStep[]) ?? [];
  return r;
}
