/**
 * The process's memory as gauges, read at each scrape. Here and not in core/:
 * core has no runtime globals. node:process's memoryUsage() exists on Node, Deno and Bun.
 */
import process from "node:process";
import { Gauge, ReadCounter, type Registry } from "../core/metrics.ts";
import { windowStats } from "./gso_windows.ts";
import { batchStats } from "./native_udp.ts";
import { cachedReadStats } from "./cached_read.ts";

export function addProcessMetrics(registry: Registry): void {
  registry.add(new Gauge("process_resident_memory_bytes", "Resident set size of the process.", () => process.memoryUsage().rss));
  registry.add(new Gauge("emmer_js_heap_used_bytes", "JavaScript heap in use.", () => process.memoryUsage().heapUsed));
  registry.add(new Gauge("emmer_external_memory_bytes", "Memory outside the JavaScript heap held by JavaScript objects (buffers, WebAssembly).", () => process.memoryUsage().external));
  // How datagrams left (adapters/gso_windows.ts): on Node and Bun with an FFI, windows go out as one GSO send each.
  registry.add(new ReadCounter("emmer_gso_sends_total", "UDP GSO sends, each carrying several datagrams of a window.", () => windowStats.gsoSends));
  registry.add(new ReadCounter("emmer_gso_datagrams_total", "Datagrams sent inside UDP GSO sends.", () => windowStats.gsoDatagrams));
  // Node with koffi (adapters/native_udp.ts): a wake-up drained by recvmmsg, its answers sent by one sendmmsg.
  registry.add(new ReadCounter("emmer_recvmmsg_calls_total", "recvmmsg calls that received datagrams.", () => batchStats.recvmmsgCalls));
  registry.add(new ReadCounter("emmer_recvmmsg_datagrams_total", "Datagrams received by recvmmsg.", () => batchStats.recvmmsgDatagrams));
  registry.add(new ReadCounter("emmer_sendmmsg_calls_total", "sendmmsg calls that sent datagrams.", () => batchStats.sendmmsgCalls));
  registry.add(new ReadCounter("emmer_sendmmsg_datagrams_total", "Datagrams sent by sendmmsg.", () => batchStats.sendmmsgDatagrams));
  // serveDir's reads that the page cache answered on the event loop (adapters/cached_read.ts), and those that then went to the thread pool.
  registry.add(new ReadCounter("emmer_cached_reads_total", "File reads answered from the page cache without the thread pool.", () => cachedReadStats.reads));
  registry.add(new ReadCounter("emmer_cached_read_bytes_total", "Bytes of file reads answered from the page cache without the thread pool.", () => cachedReadStats.bytes));
  registry.add(new ReadCounter("emmer_cached_read_fallbacks_total", "File fills that went to the thread pool after the page cache did not hold all of them.", () => cachedReadStats.fallbacks));
}
