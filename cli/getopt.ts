/**
 * The command line's flag parsing, shared by the server (serve.ts) and the client
 * (cli/client.ts), so both take flags with getopt's habits: `--name value`,
 * `--name=value`, `-p 69`, `-p69`, `-wv` (switches bundled, the last letter may
 * take a value), `--` ending the flags.
 */

/** A mistake on the command line: the caller prints it with the usage and exits 2. */
export class UsageError extends Error {}

/**
 * One flag. `names`: its spellings as --help shows them, the short one first; `also`:
 * spellings accepted but not shown; `arg`: the value's name in --help, absent for a
 * switch; `shown`: --help's left column when the line shows more than this flag ("" for
 * a flag shown on another's line); `action`: a switch that asks for help or the version
 * instead of a run; `set` stores the value (a switch gets "") or throws a UsageError,
 * with `flag` the spelling the user typed.
 */
export interface FlagSpec<F> {
  names: string[];
  also?: string[];
  arg?: string;
  shown?: string;
  help: string;
  action?: "help" | "version";
  set(flags: F, value: string, flag: string): void;
}

/** Integer in min..max, in decimal digits only ("1.5", "0x10", "" are refused). */
export function integer(value: string, flag: string, min: number, max: number): number {
  const n = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${flag} must be an integer from ${min} to ${max}, not "${value}"`);
  return n;
}

/** --help's flag lines, two columns, in the specs' order. */
export function flagLines<F>(specs: FlagSpec<F>[]): string[] {
  const shown = specs.filter((spec) => spec.shown !== "");
  const left = shown.map((spec) => spec.shown ?? `${spec.names.join(", ")}${spec.arg ? ` ${spec.arg}` : ""}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  return shown.map((spec, i) => `  ${left[i].padEnd(width)}${spec.help}`);
}

/**
 * Parses `args` into `flags` by `specs`. Operands (anything not a flag, "-" included, and
 * all after "--") go to `operand`, which throws where a command takes none. Returns the
 * action asked for, help before version, or null.
 */
export function getopt<F>(args: string[], specs: FlagSpec<F>[], flags: F, operand: (arg: string) => void): "help" | "version" | null {
  const byName = new Map(specs.flatMap((spec) => [...spec.names, ...(spec.also ?? [])].map((name) => [name, spec] as const)));
  let asked: "help" | "version" | null = null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      for (const rest of args.slice(i + 1)) operand(rest);
      break;
    }
    // [flag as typed, its inline value or undefined], one per flag in this argument
    const items: [string, string | undefined][] = [];
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      items.push(eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined]);
    } else if (arg.startsWith("-") && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const flag = `-${arg[j]}`;
        const takesValue = byName.get(flag)?.arg !== undefined;
        items.push([flag, takesValue && j + 1 < arg.length ? arg.slice(j + 1) : undefined]);
        if (takesValue) break;
      }
    } else {
      operand(arg);
      continue;
    }
    for (const [flag, inline] of items) {
      const spec = byName.get(flag);
      if (!spec) throw new UsageError(`unknown flag "${flag === arg || arg.startsWith("--") ? arg : `${flag}" in "${arg}`}"`);
      if (spec.arg === undefined) {
        if (inline !== undefined) throw new UsageError(`${flag} takes no value`);
        if (spec.action === "help") asked = "help";
        else if (spec.action === "version") asked ??= "version";
        else spec.set(flags, "", flag);
        continue;
      }
      const value = inline ?? args[++i];
      if (value === undefined || value === "") throw new UsageError(`${flag} needs a value`);
      spec.set(flags, value, flag);
    }
  }
  return asked;
}
