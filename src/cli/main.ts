// `xenmm <command>`: one dispatcher, each command in its own module, loaded
// on demand so that `xenmm s2walk` does not pay for the fuzzer.

type CommandMain = (argv: string[]) => Promise<number>;

interface Command { summary: string; load: () => Promise<CommandMain> }

const commands: Record<string, Command> = {
  demo: { summary: "the seed bug across revisions, then a short fuzz campaign", load: async () => (await import("./demo.js")).demoMain },
  scenario: { summary: "run a fact-sheet scenario (stale-gfn, ...) at a revision", load: async () => (await import("../scenario/cli.js")).scenarioMain },
  run: { summary: "replay a run document (JSON) and print every result", load: async () => (await import("../run/cli.js")).runMain },
  fuzz: { summary: "fuzz campaign across worker threads; `fuzz merge` combines summaries", load: async () => (await import("../fuzz/cli.js")).fuzzMain },
  dump: { summary: "print P2M trees, page_info records and grant frames; --svg draws the IPA space", load: async () => (await import("../inspect/dump.js")).dumpMain },
  s2walk: { summary: "architectural stage-2 walks from a JSON description (differential testing)", load: async () => (await import("./s2walk.js")).s2walkMain },
};

function usage(): string {
  const lines = ["usage: xenmm <command> [options]   (xenmm <command> --help for details)", "", "commands:"];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(9)} ${c.summary}`);
  return lines.join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    console.error(`xenmm: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  let fn: CommandMain;
  try {
    fn = await cmd.load();
  } catch (e) {
    console.error(`xenmm ${name}: not available in this build (${(e as Error).message.split("\n")[0]})`);
    return 2;
  }
  try {
    return await fn(rest);
  } catch (e) {
    // Last resort: a bug in xenmm itself. Say so in one line, keep the detail for XENMM_DEBUG.
    console.error(`xenmm ${name}: internal error: ${(e as Error).message.split("\n")[0]}`);
    if (process.env.XENMM_DEBUG) console.error(e);
    return 1;
  }
}
