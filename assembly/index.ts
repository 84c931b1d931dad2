// The Wasm ABI of the xenmm core. Each module re-exports what the host needs.

export { machine_init, machine_ready, arm32_xenheap_pages } from "./mm/init";
export * from "./mm/abi";
export * from "./walk/walker";
export * from "./p2m/abi";
export { check_next_in_use, check_next_valid_entry } from "./check/scan";
