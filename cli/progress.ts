/**
 * The progress line of `emmer-node get|put` on a terminal: bytes, percent, a bar, rate
 * and ETA when the total is known; bytes and rate otherwise. Redrawn in place (\r) at
 * most ten times a second; finish() or fail() leaves a final line.
 */

export interface ProgressOutput {
  write(text: string): unknown;
  readonly columns?: number;
}

const REDRAW_MS = 100;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * The line for `bytes` of `total` after `seconds`: exported for its own sake (what the
 * terminal shows), `width` the terminal's columns.
 */
export function progressLine(label: string, bytes: number, total: number | undefined, seconds: number, width: number, done = false): string {
  const rate = seconds > 0 ? bytes / seconds : 0;
  const rateText = `${formatBytes(Math.round(rate))}/s`;
  if (total === undefined || total <= 0 || bytes > total) {
    const tail = done ? `in ${seconds.toFixed(1)} s` : "";
    return fit(`${label}  ${formatBytes(bytes)}  ${rateText}  ${tail}`.trimEnd(), width);
  }
  const percent = Math.floor((bytes / total) * 100);
  const time = done ? `in ${seconds.toFixed(1)} s` : `ETA ${formatDuration(rate > 0 ? (total - bytes) / rate : Infinity)}`;
  // Fixed widths, so that the bar does not jitter as the numbers change length.
  const right = ` ${String(percent).padStart(3)}% ${formatBytes(bytes).padStart(9)} / ${formatBytes(total)} ${rateText.padStart(12)}  ${time}`;
  const name = label.length > 24 ? `…${label.slice(-23)}` : label;
  const room = width - 1 - name.length - right.length - 3; // " [" and "]"
  if (room < 10) return fit(`${name}${right}`, width);
  const filled = Math.round((bytes / total) * room);
  return `${name} [${"#".repeat(filled)}${" ".repeat(room - filled)}]${right}`;
}

function fit(line: string, width: number): string {
  return line.length < width ? line : `${line.slice(0, Math.max(1, width - 2))}…`;
}

export class ProgressBar {
  #out: ProgressOutput;
  #label: string;
  #now: () => number;
  #start: number;
  #lastDraw = -Infinity;
  #bytes = 0;
  #total: number | undefined;
  #ended = false;

  constructor(out: ProgressOutput, label: string, now: () => number = () => performance.now()) {
    this.#out = out;
    this.#label = label;
    this.#now = now;
    this.#start = now();
  }

  update(bytes: number, total?: number): void {
    this.#bytes = bytes;
    this.#total = total;
    const t = this.#now();
    if (t - this.#lastDraw < REDRAW_MS) return;
    this.#lastDraw = t;
    this.#draw(false);
  }

  /** The final line: the total bytes, the rate and the time taken. */
  finish(bytes = this.#bytes): void {
    if (this.#ended) return;
    this.#bytes = bytes;
    this.#draw(true);
    this.#out.write("\n");
    this.#ended = true;
  }

  /** Ends the line where it stands, so that an error message starts on a line of its own. */
  fail(): void {
    if (this.#ended) return;
    if (this.#lastDraw > -Infinity) this.#out.write("\n");
    this.#ended = true;
  }

  #draw(done: boolean): void {
    const width = this.#out.columns || 80;
    const seconds = (this.#now() - this.#start) / 1000;
    // \x1b[K clears what a longer previous line left to the right.
    this.#out.write(`\r${progressLine(this.#label, this.#bytes, this.#total, seconds, width, done)}\x1b[K`);
  }
}
