/**
 * File name rewriting before routing: an ordered rule list, as tftpd-hpa's
 * --map-file has it, built from JavaScript or parsed from that file format.
 * Pure: the caller reads the file; this parses text and applies rules to names.
 *
 * Rules run top down, every rule on the name as the rules before left it. A rule
 * that matches may rewrite the name, refuse the request, end the run, or start
 * it over. A run is bounded (MAX_STEPS regex evaluations, MAX_LENGTH characters)
 * so that no rule list can hang or bloat the server.
 */
import { parseAddress } from "./cidr.ts";

/** What a rewrite knows about the request. */
export interface RewriteClient {
  kind: "read" | "write";
  address: string;
}

export interface RewriteRule {
  /** Searched in the name (not anchored: use ^ and $). Its g and y flags are ignored. */
  pattern: RegExp;
  /**
   * Replaces the first match: a string in String.prototype.replace syntax ($1, $<name>, $&),
   * or a function of the match. Absent: the rule only matches (for end, restart, refuse).
   */
  replace?: string | ((match: RegExpExecArray, client: RewriteClient) => string);
  /** Rewrite again, from the start of the new name, while the pattern still matches (tftpd-hpa's g). */
  repeat?: boolean;
  /** Stop after this rule, if it matched (e). */
  end?: boolean;
  /** Start over from the first rule, if this one matched (s). */
  restart?: boolean;
  /** Refuse the request with ERROR 2, if this rule matched; a string (or a function of the match) is the message sent (a). */
  refuse?: boolean | string | ((match: RegExpExecArray | null, client: RewriteClient) => string);
  /** Only for reads (G) or only for writes (P). */
  only?: "read" | "write";
  /** Only for clients of this IP version (4 or 6); an IPv4-mapped IPv6 address counts as 4. */
  family?: 4 | 6;
  /** The rule applies when the pattern does NOT match (~); cannot rewrite. */
  invert?: boolean;
  /** Where the rule came from (a map file's line), for messages. */
  line?: number;
}

export type RewriteResult =
  | { ok: true; filename: string }
  /** `message` goes to the client (ERROR 2); `problem` is set when the rules, not the name, are at fault. */
  | { ok: false; message: string; problem?: string };

/** Regex evaluations in one run (each rule tried, each repeat of a g rule): a loop ends here. */
export const MAX_STEPS = 1000;
/** Longest name a run may produce: a request is at most 4 KiB; a rule that grows names stops here. */
export const MAX_LENGTH = 4096;

/** Refusal message when a refusing rule gives none (tftpd-hpa 5.2 sends "Access denied", ERROR 2). */
const DENIED = "access denied";

function where(rule: RewriteRule, index: number): string {
  return rule.line !== undefined ? `line ${rule.line}` : `rule ${index + 1}`;
}

/** Checks a rule list once, when a server is made: bad combinations are errors, not surprises later. */
export function checkRules(rules: readonly RewriteRule[]): RewriteRule[] {
  return rules.map((r, i) => {
    if (!(r.pattern instanceof RegExp)) throw new TypeError(`rewrite ${where(r, i)}: pattern must be a RegExp`);
    if (r.invert && r.replace !== undefined) throw new RangeError(`rewrite ${where(r, i)}: an inverted rule cannot rewrite`);
    if (r.refuse && (r.replace !== undefined || r.restart || r.end)) {
      throw new RangeError(`rewrite ${where(r, i)}: a refusing rule cannot also rewrite, end or restart`);
    }
    if (r.end && r.restart) throw new RangeError(`rewrite ${where(r, i)}: end and restart cannot be combined`);
    // A stateful (g, y) RegExp would match from its lastIndex: use a clean copy.
    return { ...r, pattern: new RegExp(r.pattern.source, r.pattern.flags.replace(/[gy]/g, "")) };
  });
}

/** A replacement string's $-patterns ($$, $&, $`, $', $1..$99, $<name>), as String.prototype.replace has them. */
function expand(template: string, m: RegExpExecArray, name: string): string {
  return template.replace(/\$(\$|&|`|'|[0-9]{1,2}|<([^>]*)>)/g, (all, what: string, group?: string) => {
    if (what === "$") return "$";
    if (what === "&") return m[0];
    if (what === "`") return name.slice(0, m.index);
    if (what === "'") return name.slice(m.index + m[0].length);
    if (group !== undefined) return m.groups ? m.groups[group] ?? "" : all;
    // $12 is group 12 if there is one, else group 1 then "2", as replace() reads it.
    const n = Number(what);
    if (n > 0 && n < m.length) return m[n] ?? "";
    const one = Number(what[0]);
    if (what.length === 2 && one > 0 && one < m.length) return (m[one] ?? "") + what[1];
    return all;
  });
}

function substitute(name: string, m: RegExpExecArray, rule: RewriteRule, client: RewriteClient): string {
  const r = rule.replace!;
  const middle = typeof r === "function" ? r(m, client) : expand(r, m, name);
  if (typeof middle !== "string") throw new TypeError(`a rewrite function returned ${typeof middle}, not a string`);
  return name.slice(0, m.index) + middle + name.slice(m.index + m[0].length);
}

/** Runs checked rules (checkRules) over `filename`. Exceptions from replace functions propagate. */
export function rewriteName(rules: readonly RewriteRule[], filename: string, client: RewriteClient): RewriteResult {
  const family = parseAddress(client.address)?.family;
  let name = filename;
  let steps = 0;
  const exhausted = (rule: RewriteRule, i: number): RewriteResult => ({
    ok: false,
    message: "file name remapping failed",
    problem: `rewrite rules did not settle within ${MAX_STEPS} steps (last at ${where(rule, i)}) for ${JSON.stringify(filename)}`,
  });
  for (let i = 0; i < rules.length; ) {
    const rule = rules[i];
    if ((rule.only !== undefined && rule.only !== client.kind) || (rule.family !== undefined && rule.family !== family)) {
      i++;
      continue;
    }
    if (++steps > MAX_STEPS) return exhausted(rule, i);
    let m = rule.pattern.exec(name);
    if ((m !== null) === Boolean(rule.invert)) {
      i++;
      continue;
    }
    if (rule.replace !== undefined && m !== null) {
      for (;;) {
        name = substitute(name, m, rule, client);
        if (name.length > MAX_LENGTH) {
          return { ok: false, message: "file name remapping failed", problem: `${where(rule, i)} made a name longer than ${MAX_LENGTH} characters from ${JSON.stringify(filename)}` };
        }
        if (!rule.repeat || (m = rule.pattern.exec(name)) === null) break;
        if (++steps > MAX_STEPS) return exhausted(rule, i);
      }
    }
    if (rule.refuse) {
      const message = typeof rule.refuse === "function" ? rule.refuse(m, client) : rule.refuse;
      return { ok: false, message: typeof message === "string" && message !== "" ? message : DENIED };
    }
    if (rule.end) break;
    i = rule.restart ? 0 : i + 1;
  }
  return { ok: true, filename: name };
}
