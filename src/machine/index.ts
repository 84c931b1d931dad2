// Public entry of the host layer.
export * from "./api.js";
export { createMachine, MachineImpl, Domain, type Machine, type CallOptions } from "./machine.js";
export { XenCrash, XenError } from "./crash.js";
export * from "./errno.js";
export { policyFor, POLICIES, type RevisionPolicy } from "../revisions/index.js";
export { GuestMemory, type RawCall } from "../hypercall/abi.js";
