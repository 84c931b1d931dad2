/** The xenmm package version (kept equal to package.json's by test/api/pack.test.ts). */
export const XENMM_VERSION = "0.1.0";
