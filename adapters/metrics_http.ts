/**
 * The metrics endpoint: Prometheus text exposition on GET /metrics over
 * node:http (which Node, Deno and Bun all provide). Anything else is 404.
 */
import http from "node:http";

export interface MetricsServer {
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The exposition format's content type (text format 0.0.4). */
const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Serves `render()`'s text on http://hostname:port/metrics; resolves once listening, rejects if the port cannot be bound. */
export function serveMetrics(render: () => string, hostname: string, port: number): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end("not found: metrics are on /metrics\n");
      return;
    }
    let body: Uint8Array;
    try {
      body = new TextEncoder().encode(render());
    } catch (error) {
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end(`metrics failed: ${(error as Error)?.message ?? error}\n`);
      return;
    }
    res.writeHead(200, { "content-type": CONTENT_TYPE, "content-length": body.length });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  // A scraper that stalls must not hold a socket for ever.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      server.off("error", reject);
      server.on("error", () => {}); // later errors belong to single connections
      const a = server.address() as { address: string; port: number };
      resolve({
        address: a.address,
        port: a.port,
        close: () => new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections?.();
        }),
      });
    });
  });
}
