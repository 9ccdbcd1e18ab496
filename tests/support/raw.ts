/**
 * One datagram out, the first answer back: for requests no well-behaved client
 * would send. Uses the running runtime's own adapter.
 */
import { loadRuntime } from "../../adapters/runtime.ts";
import type { Runtime } from "../../core/transport.ts";

export interface Answer {
  data: Uint8Array;
  /** The port the answer came from. */
  port: number;
}

/** `promise`, or a rejection naming `what` once `ms` have passed on the runtime's clock. */
export function within<T>(runtime: Runtime, promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: { stop(): void } | undefined;
  const late = new Promise<never>((_, reject) => (timer = runtime.after(ms, () => reject(new Error(`no ${what} within ${ms} ms`)))));
  return Promise.race([promise, late]).finally(() => timer?.stop());
}

export async function rawExchange(port: number, bytes: number[] | Uint8Array, timeoutMs = 2000): Promise<Answer> {
  const runtime = await loadRuntime();
  let answer: (a: Answer) => void;
  const got = new Promise<Answer>((resolve) => (answer = resolve));
  const transport = await runtime.bind("127.0.0.1", 0, (data, _address, from) => answer({ data: data.slice(), port: from }));
  try {
    transport.send(Uint8Array.from(bytes), port, "127.0.0.1", () => {});
    return await within(runtime, got, timeoutMs, "answer");
  } finally {
    transport.close();
  }
}

/** The answer's bytes only. */
export async function rawRequest(port: number, bytes: number[] | Uint8Array): Promise<Uint8Array> {
  return (await rawExchange(port, bytes)).data;
}
