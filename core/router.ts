/**
 * Flask-like routes: a pattern and a handler; the first route that matches a
 * requested file name wins. A pattern is a RegExp, used as written (anchor it
 * with ^ and $ to match whole names; named groups become `params`), or a string
 * that must match the whole name, in which `*` matches any run of characters,
 * `/` included.
 */

export type Pattern = string | RegExp;

export interface Match<H> {
  handler: H;
  params: Record<string, string>;
}

function compile(pattern: Pattern): RegExp {
  if (pattern instanceof RegExp) {
    // A global or sticky RegExp keeps state between calls: drop those flags.
    return new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ""));
  }
  const source = pattern.split("*").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*");
  return new RegExp(`^(?:${source})$`, "s");
}

export class Router<H> {
  #routes: { re: RegExp; handler: H }[] = [];

  add(pattern: Pattern, handler: H): void {
    this.#routes.push({ re: compile(pattern), handler });
  }

  match(filename: string): Match<H> | null {
    for (const route of this.#routes) {
      const m = route.re.exec(filename);
      if (m === null) continue;
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.groups ?? {})) if (v !== undefined) params[k] = v;
      return { handler: route.handler, params };
    }
    return null;
  }
}
