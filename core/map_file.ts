/**
 * tftpd-hpa's remap file (in.tftpd -m, "FILENAME REMAPPING" in its man page),
 * parsed into rewrite rules (core/remap.ts). Pure: the caller reads the file.
 *
 * A line is `flags regex [replacement]`; `#` starts a comment; a backslash keeps
 * the next character (a space, a #) inside a field. Flags: r rewrite, g repeat
 * while it matches, i ignore case, e end, s start over, a refuse, G reads only,
 * P writes only, 4 / 6 IPv4 / IPv6 clients only, ~ when the regex does not
 * match. Replacements: \0 the match, \1..\9 groups, \i the client's IP address,
 * \x it in hexadecimal, \U \L \E case, \\ a backslash.
 *
 * The regex is POSIX extended (egrep) and is translated to a JavaScript RegExp:
 * bracket expressions (with [:class:]), escapes and back-references carry over.
 * What does not, is refused with the line's number: collating elements and
 * equivalence classes ([. .], [= =]), escapes that are not POSIX (\d), (?...),
 * and tftpd-hpa 5.3's later additions (E, j, labels, gg). One difference cannot
 * be detected: among alternatives POSIX takes the longest match, JavaScript the
 * first that matches: write `(ab|a)`, not `(a|ab)`.
 */
import { parseAddress } from "./cidr.ts";
import type { RewriteClient, RewriteRule } from "./remap.ts";
import { checkRules } from "./remap.ts";

export class MapFileError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = "MapFileError";
  }
}

/** The fields of a line: whitespace separates, `#` ends the line, a backslash escapes one character (kept with it). */
function fields(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i])) i++;
    if (i >= line.length || line[i] === "#") break;
    let field = "";
    while (i < line.length && !/\s/.test(line[i]) && line[i] !== "#") {
      if (line[i] === "\\" && i + 1 < line.length) field += line[i++];
      field += line[i++];
    }
    out.push(field);
  }
  return out;
}

const CLASSES: Record<string, string> = {
  alpha: "a-zA-Z",
  digit: "0-9",
  alnum: "a-zA-Z0-9",
  upper: "A-Z",
  lower: "a-z",
  space: " \\t\\n\\r\\f\\v",
  blank: " \\t",
  punct: "!-\\/:-@\\[-`{-~",
  xdigit: "0-9A-Fa-f",
  cntrl: "\\x00-\\x1f\\x7f",
  print: "\\x20-\\x7e",
  graph: "\\x21-\\x7e",
};

/** POSIX ERE source to JavaScript RegExp source; throws a message saying what is not supported. */
export function ereToRegExp(ere: string): string {
  let out = "";
  for (let i = 0; i < ere.length; ) {
    const c = ere[i];
    if (c === "\\") {
      const n = ere[i + 1];
      if (n === undefined) throw new Error("the regex ends with a lone backslash");
      if (/[1-9]/.test(n)) out += "\\" + n; // a back-reference
      else if ("wWsSbB".includes(n)) out += "\\" + n; // GNU extensions with JavaScript's meaning
      else if (n === "<") out += "\\b(?=\\w)";
      else if (n === ">") out += "\\b(?<=\\w)";
      else if (/[A-Za-z0-9]/.test(n)) throw new Error(`\\${n} is not POSIX extended regex syntax`);
      else out += "\\" + n; // an escaped punctuation mark or space: itself
      i += 2;
    } else if (c === "[") {
      let j = i + 1;
      let cls = "[";
      if (ere[j] === "^") (cls += "^"), j++;
      if (ere[j] === "]") (cls += "\\]"), j++; // a ] first is a member
      for (; j < ere.length && ere[j] !== "]"; j++) {
        const d = ere[j];
        if (d === "[" && (ere[j + 1] === ":" || ere[j + 1] === "=" || ere[j + 1] === ".")) {
          const kind = ere[j + 1];
          const end = ere.indexOf(kind + "]", j + 2);
          if (end < 0) throw new Error(`unterminated [${kind} in a bracket expression`);
          const name = ere.slice(j + 2, end);
          if (kind !== ":") throw new Error(`[${kind}${name}${kind}] (collating elements, equivalence classes) is not supported`);
          if (!(name in CLASSES)) throw new Error(`[:${name}:] is not a character class`);
          cls += CLASSES[name];
          j = end + 1;
        } else if (d === "\\" || d === "[") cls += "\\" + d; // a backslash is a member in POSIX brackets, not an escape
        else cls += d;
      }
      if (j >= ere.length) throw new Error("unterminated [");
      out += cls + "]";
      i = j + 1;
    } else if (c === "{" && ere[i + 1] === ",") {
      out += "{0,"; // POSIX {,n} is {0,n}; JavaScript would take it literally
      i += 2;
    } else if (c === "(" && ere[i + 1] === "?") {
      throw new Error("(? is not POSIX extended regex syntax");
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

type Part = string | { group: number } | { macro: "i" | "x" } | { fold: "U" | "L" | "E" };

/** A replacement field's escapes, parsed once. */
function template(field: string): Part[] {
  const parts: Part[] = [];
  let text = "";
  const flush = () => (text && parts.push(text), (text = ""));
  for (let i = 0; i < field.length; i++) {
    if (field[i] !== "\\" || i + 1 === field.length) {
      text += field[i];
      continue;
    }
    const n = field[++i];
    if (/[0-9]/.test(n)) (flush(), parts.push({ group: Number(n) }));
    else if (n === "i" || n === "x") (flush(), parts.push({ macro: n }));
    else if (n === "U" || n === "L" || n === "E") (flush(), parts.push({ fold: n }));
    else if (/[A-Za-z]/.test(n)) throw new Error(`\\${n} in the replacement is not an escape tftpd-hpa knows (\\0-\\9 \\i \\x \\U \\L \\E \\\\)`);
    else text += n; // \\, \ , \#, and any other mark: itself
  }
  flush();
  return parts;
}

function hex(address: string): string {
  const a = parseAddress(address);
  return a ? [...a.bytes].map((b) => b.toString(16).padStart(2, "0")).join("").toUpperCase() : "";
}

/** The client's address as tftpd-hpa's \i writes it: an IPv4-mapped address as plain IPv4. */
function plain(address: string): string {
  const a = parseAddress(address);
  return a?.family === 4 ? [...a.bytes].join(".") : address;
}

function render(parts: Part[], m: RegExpExecArray | null, client: RewriteClient): string {
  let fold = (s: string) => s;
  let out = "";
  for (const p of parts) {
    if (typeof p === "string") out += fold(p);
    else if ("group" in p) out += fold(m?.[p.group] ?? "");
    else if ("macro" in p) out += fold(p.macro === "i" ? plain(client.address) : hex(client.address));
    else fold = p.fold === "U" ? (s) => s.toUpperCase() : p.fold === "L" ? (s) => s.toLowerCase() : (s) => s;
  }
  return out;
}

/** Parses a remap file's text. Throws a MapFileError naming the first bad line. */
export function parseMapFile(text: string): RewriteRule[] {
  const rules: RewriteRule[] = [];
  const lines = text.replace(/[\r\0]/g, "").split("\n");
  lines.forEach((raw, index) => {
    const line = index + 1;
    const f = fields(raw);
    if (f.length === 0) return;
    const fail = (message: string): never => {
      throw new MapFileError(line, message);
    };
    const [flags, regex, replacement] = f;
    if (f.length > 3) fail(`expected "flags regex [replacement]", found ${f.length} fields (escape spaces with a backslash)`);
    if (flags.startsWith(":")) fail("labels (tftpd-hpa 5.3) are not supported");
    const rule: RewriteRule = { pattern: /(?:)/, line };
    let rewrite = false;
    let ignoreCase = false;
    let globals = 0;
    for (const flag of flags) {
      switch (flag) {
        case "r": rewrite = true; break;
        case "g": globals++; break;
        case "i": ignoreCase = true; break;
        case "e": rule.end = true; break;
        case "s": rule.restart = true; break;
        case "a": rule.refuse = true; break;
        case "G": rule.only = rule.only === "write" ? fail("G and P exclude each other") : "read"; break;
        case "P": rule.only = rule.only === "read" ? fail("G and P exclude each other") : "write"; break;
        case "4": rule.family = 4; break;
        case "6": rule.family = 6; break;
        case "~": rule.invert = true; break;
        case "E":
        case "j":
          fail(`flag ${flag} (tftpd-hpa 5.3) is not supported`);
          break;
        default:
          fail(`unknown flag "${flag}" (known: r g i e s a G P 4 6 ~)`);
      }
    }
    if (globals > 1) fail("gg (tftpd-hpa 5.3's replace-every-match) is not supported; g repeats the rule while it matches");
    if (rule.family !== undefined && flags.includes("4") && flags.includes("6")) fail("4 and 6 exclude each other");
    for (const [a, b, why] of [
      [rewrite && rule.invert, "r~", "an inverted rule has no match to rewrite"],
      [rewrite && rule.refuse, "ra", "a refusing rule cannot rewrite"],
      [rule.refuse && rule.restart, "as", "a refusing rule cannot start over"],
      [rule.refuse && rule.end, "ae", "a refusing rule ends the run already"],
      [rule.end && rule.restart, "es", "a rule cannot both end and start over"],
    ] as const) {
      if (a) fail(`flags ${b[0]} and ${b[1]} cannot be combined: ${why}`);
    }
    if (regex === undefined) fail("the regex is missing");
    let source = "";
    try {
      source = ereToRegExp(regex);
      rule.pattern = new RegExp(source, ignoreCase ? "is" : "s");
    } catch (error) {
      fail(`bad regex ${JSON.stringify(regex)}: ${(error as Error).message}`);
    }
    let parts: Part[] = [];
    try {
      parts = template(replacement ?? "");
    } catch (error) {
      fail((error as Error).message);
    }
    if (rewrite) {
      rule.replace = (m, client) => render(parts, m, client);
      if (globals > 0) rule.repeat = true;
    } else if (rule.refuse && replacement !== undefined) {
      // tftpd-hpa sends an abort rule's replacement as the error message.
      rule.refuse = (m, client) => render(parts, m, client);
    }
    rules.push(rule);
  });
  return checkRules(rules);
}
