/**
 * One datagram out, the first answer back: for requests no well-behaved client
 * would send. Uses the running runtime's own adapter.
 */
import { loadRuntime } from "../../adapters/runtime.ts";

export interface Answer {
  data: Uint8Array;
  /** The port the answer came from. */
  port: number;
}

export async function rawExchange(port: number, bytes: number[] | Uint8Array, timeoutMs = 2000): Promise<Answer> {
  const runtime = await loadRuntime();
  let answer: (a: Answer) => void;
  const got = new Promise<Answer>((resolve) => (answer = resolve));
  const transport = await runtime.bind("127.0.0.1", 0, (data, _address, from) => answer({ data: data.slice(), port: from }));
  try {
    transport.send(Uint8Array.from(bytes), port, "127.0.0.1", () => {});
    let timer: { stop(): void } | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = runtime.after(timeoutMs, () => reject(new Error(`no answer within ${timeoutMs} ms`)));
    });
    try {
      return await Promise.race([got, timeout]);
    } finally {
      timer?.stop();
    }
  } finally {
    transport.close();
  }
}

/** The answer's bytes only. */
export async function rawRequest(port: number, bytes: number[] | Uint8Array): Promise<Uint8Array> {
  return (await rawExchange(port, bytes)).data;
}
