// xenmm: the package entry. Everything an embedding Node tool needs.

// ---- machines -------------------------------------------------------------------
export { createMachine, validateMachineConfig } from "./api/machine.js";
export { MachineImpl, Domain, type Machine, type CallOptions } from "./machine/machine.js";
export {
  REVISIONS, DOMID_SELF, DOMID_IO, DOMID_XEN,
  type Arch, type Revision, type XenOptions, type MachineConfig, type DomainConfig,
  type HypercallRequest, type HypercallResult, type HypervisorCrash, type P2mEntry, type PageInfo,
} from "./machine/api.js";
export { XENMM_VERSION } from "./api/version.js";

// ---- runs ---------------------------------------------------------------------------
export { executeRun, loadRunDocument, RunDocumentError, type RunDocument, type RunResults, type OpResult } from "./run/index.js";
export { runDocumentMachine } from "./inspect/run-machine.js";

// ---- snapshots and hashes -------------------------------------------------------------
export { snapshotMachine, restoreMachine, stateHash, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC } from "./snapshot/index.js";
export { parseSnapshot, type SnapshotHeader } from "./snapshot/format.js";
export { captureTemplate, resetMachine, templateFits, MachineTemplate } from "./snapshot/template.js";

// ---- errors ------------------------------------------------------------------------------
export {
  XenmmError, XenmmArgumentError, SnapshotFormatError, XenmmStateError, XenmmInputError, type SnapshotProblem,
} from "./api/errors.js";

// ---- zero-copy views and decoders ------------------------------------------------------------
export { CoreViews, viewsOf, type ViewCore } from "./api/views.js";
export {
  decodePageInfo, encodePageInfo, decodeCountInfo, encodeCountInfo, decodeTypeInfo, encodeTypeInfo,
  decodeFree, encodeFree, countInfoFlagNames, countInfoMasks, typeInfoMasks, pageInfoSize,
  decodeDescriptor, encodeDescriptor, describeDescriptor, descriptorKind, p2mTypeName, P2M_TYPE_NAMES,
  type Layout, type PageInfoRecord, type CountInfo, type TypeInfo, type FreeInfo, type PgcState,
  type Stage2Descriptor, type DescriptorKind, type P2mTypeName,
} from "./inspect/decode.js";

// ---- inspection ----------------------------------------------------------------------------------
export {
  readHeader, p2mRoot, p2mTree, p2mLeaves, mappedRanges,
  type CoreHeader, type P2mLeaf, type P2mTableNode, type MappedRange,
} from "./inspect/core-info.js";
export { renderIpaSvg, type SvgOptions } from "./inspect/svg.js";
export { dumpText, domainSvg, domainRanges, loadMachineFile, dumpMain } from "./inspect/dump.js";

// ---- hooks -----------------------------------------------------------------------------------------
export {
  observe, observerCount, machineLocks, flushP2mEvents,
  type Observer, type HypercallEntryEvent, type HypercallExitEvent, type P2mChangeEvent, type LockEvent,
} from "./hooks/index.js";
export { traceMachine, traceRun, traceToArray, traceLine, type TraceOptions, type LineSink } from "./hooks/trace.js";
