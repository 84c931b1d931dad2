// (f) teardown: once a destroyed domain is really gone, no frame in use may
// still name it as owner. The dead domain has no domid slot any more, so the
// checker finds such frames by the owner field (the struct domain address).
import { describe, expect, it } from "vitest";
import { defaultDomains } from "../../src/fuzz/generator.js";
import { createFuzzHost } from "../../src/fuzz/machine-host.js";
import { FuzzSession } from "../../src/fuzz/runner.js";

async function world() {
  const host = await createFuzzHost({ revision: "head", arch: "arm64", domains: defaultDomains() });
  const core = host.m.core;
  const ft = Number(core.frame_table_ptr());
  const base = Number(core.frametable_base_pdx());
  const size = core.page_info_size();
  const [lo, hi] = host.ramRange();
  const ownerAt = (mfn: number) => ft + (mfn - base) * size + 32; // page_info.v.inuse._domain (arm64)
  const frameOf = (domid: number) => {
    for (let m = lo; m < hi; m++) if (host.page(m)?.owner === domid) return m;
    throw new Error(`no frame of d${domid}`);
  };
  return { host, core, ownerAt, frameOf };
}

describe("teardown invariant", () => {
  it("destroying a domain leaves no frame naming it", async () => {
    const { host } = await world();
    const s = new FuzzSession(host, { fullEvery: 1 });
    s.exec({ kind: "destroy", domid: 2 });
    expect(host.domids()).not.toContain(2);
    expect(s.violations).toEqual([]);
  });

  it("a frame still naming the dead domain is reported", async () => {
    const { host, core, ownerAt, frameOf } = await world();
    const s = new FuzzSession(host, { fullEvery: 1000 });
    const victim = frameOf(1);
    const dead = new BigUint64Array(core.memory.buffer, ownerAt(frameOf(2)), 1)[0];
    const destroy = host.destroyDomain.bind(host);
    // Model a destruction that forgets one frame: d1's frame ends up naming d2 after d2 is gone.
    host.destroyDomain = (d: number) => {
      destroy(d);
      new BigUint64Array(core.memory.buffer, ownerAt(victim), 1)[0] = dead;
      core.frame_log_note(BigInt(victim)); // as the core's own stores are
    };
    s.exec({ kind: "destroy", domid: 2 });
    const v = s.violations.filter((x) => x.invariant === "teardown");
    expect(v.map((x) => x.message)).toEqual([`destroyed d2 still owns 1 frame(s), e.g. mfn 0x${victim.toString(16)}`]);
  });
});
