/**
 * Transition tables. Each state machine in core/ lists, in one place, which
 * state may follow which; the checker `transitions` makes refuses any other move with a throw, so
 * a call in the wrong state is a loud bug rather than a silent no-op.
 */

/** A move a machine's table does not allow: always a bug in the caller. */
export class IllegalTransition extends Error {
  constructor(machine: string, from: string, to: string) {
    super(`${machine}: no transition from "${from}" to "${to}"`);
    this.name = "IllegalTransition";
  }
}

/** For each state, the states that may follow it (staying put is always allowed). */
export type Table<S extends string> = { readonly [K in S]: readonly S[] };

/** A checker for one machine: `go(from, to)` returns `to`, or throws IllegalTransition. */
export function transitions<S extends string>(machine: string, table: Table<S>): (from: S, to: S) => S {
  return (from, to) => {
    if (from !== to && !table[from].includes(to)) throw new IllegalTransition(machine, from, to);
    return to;
  };
}
