/**
 * A small metrics registry rendered in the Prometheus text exposition format
 * (version 0.0.4): counters, gauges and histograms with labels. Pure: values go
 * in through calls, text comes out of render(). Label values must come from
 * small fixed sets (a kind, an outcome, a reason): a file name or a client
 * address as a label would make a series per request and grow without bound.
 */

type Labels = Record<string, string>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** `{a="x",b="y"}` for the label names of a metric, in their declared order; "" without labels. */
function labelText(names: readonly string[], labels: Labels, extra?: [string, string]): string {
  const parts = names.map((n) => `${n}="${escapeLabel(labels[n] ?? "")}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length > 0 ? `{${parts.join(",")}}` : "";
}

abstract class Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: string;

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!NAME.test(name)) throw new Error(`invalid metric name "${name}"`);
    for (const l of labelNames) if (!NAME.test(l) || l.startsWith("__") || l === "le") throw new Error(`invalid label name "${l}"`);
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  protected key(labels: Labels): string {
    for (const k of Object.keys(labels)) {
      if (!this.labelNames.includes(k)) throw new Error(`${this.name} has no label "${k}"`);
    }
    return this.labelNames.map((n) => labels[n] ?? "").join("\u0000");
  }

  header(): string {
    return `# HELP ${this.name} ${this.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n# TYPE ${this.name} ${this.type}\n`;
  }

  abstract samples(): string;
}

/** A value that only goes up (resets only when the process restarts). */
export class Counter extends Metric {
  readonly type = "counter";
  #values = new Map<string, { labels: Labels; value: number }>();

  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new Error(`${this.name}: a counter cannot go down (inc by ${by})`);
    const k = this.key(labels);
    const v = this.#values.get(k);
    if (v) v.value += by;
    else this.#values.set(k, { labels: { ...labels }, value: by });
  }

  get(labels: Labels = {}): number {
    return this.#values.get(this.key(labels))?.value ?? 0;
  }

  samples(): string {
    let out = "";
    for (const { labels, value } of this.#values.values()) out += `${this.name}${labelText(this.labelNames, labels)} ${formatValue(value)}\n`;
    return out;
  }
}

/** A value read when the registry is rendered (live sessions, memory). */
export class Gauge extends Metric {
  readonly type: string = "gauge";
  #read: () => number;

  constructor(name: string, help: string, read: () => number) {
    super(name, help, []);
    this.#read = read;
  }

  samples(): string {
    return `${this.name} ${formatValue(this.#read())}\n`;
  }
}

/** A counter kept elsewhere (an adapter's tally), read when the registry is rendered. */
export class ReadCounter extends Gauge {
  override readonly type: string = "counter";
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram extends Metric {
  readonly type = "histogram";
  readonly buckets: readonly number[];
  #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames);
    if (buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
      throw new Error(`${name}: buckets must be finite and increasing`);
    }
    this.buckets = buckets;
  }

  observe(value: number, labels: Labels = {}): void {
    const k = this.key(labels);
    let s = this.#series.get(k);
    if (!s) this.#series.set(k, (s = { labels: { ...labels }, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  samples(): string {
    let out = "";
    for (const s of this.#series.values()) {
      this.buckets.forEach((b, i) => {
        out += `${this.name}_bucket${labelText(this.labelNames, s.labels, ["le", formatValue(b)])} ${s.counts[i]}\n`;
      });
      out += `${this.name}_bucket${labelText(this.labelNames, s.labels, ["le", "+Inf"])} ${s.count}\n`;
      out += `${this.name}_sum${labelText(this.labelNames, s.labels)} ${formatValue(s.sum)}\n`;
      out += `${this.name}_count${labelText(this.labelNames, s.labels)} ${s.count}\n`;
    }
    return out;
  }
}

/** The metrics of one process, rendered together. */
export class Registry {
  #metrics = new Map<string, Metric>();

  add<M extends Metric>(metric: M): M {
    if (this.#metrics.has(metric.name)) throw new Error(`metric ${metric.name} is registered already`);
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  /** The exposition text (content type `text/plain; version=0.0.4`). */
  render(): string {
    let out = "";
    for (const m of this.#metrics.values()) out += m.header() + m.samples();
    return out;
  }
}
