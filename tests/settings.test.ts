// The server's options table (core/settings.ts): every option's bad values give an error
// naming it, its range and the value; the table's defaults reach a running server (on the
// fake clock); emmer-node's --help and its flag checks take their numbers from the table.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { Emmer, type EmmerOptions } from "../drivers/app.ts";
import { decode, encodeAck, encodeRequest } from "../core/codec.ts";
import { Opcode, type Packet } from "../core/packet.ts";
import { describeRange, type NumberSetting, resolveSettings, type Setting, type SettingName, SETTINGS } from "../core/settings.ts";
import { fakePeer, fakeServer } from "./support/fake_runtime.ts";
import { bytesOf } from "./support/session_driver.ts";
import { buildCli, command } from "./support/cli_command.ts";

const entries = Object.entries(SETTINGS) as [SettingName, Setting][];
const numbers = entries.filter((e): e is [SettingName, NumberSetting] => e[1].type !== "boolean" && "default" in e[1] && typeof e[1].default === "number");
const ms = (s: NumberSetting, v: number) => (s.unit === "s" ? v * 1000 : v);
/** resolveSettings' name for an option: times in milliseconds. */
const resolvedName = (name: SettingName) => (name === "timeout" || name === "handlerTimeout" || name === "drainTimeout" ? `${name}Ms` : name);

/** A message naming the option, what it takes and the value, exactly. */
const says = (name: SettingName, shown: string) => new RegExp(`^${name} must be ${describeRange(name).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}, not ${shown.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);

function throwsWith(options: EmmerOptions, kind: typeof TypeError | typeof RangeError, message: RegExp) {
  let error: unknown = null;
  try {
    resolveSettings(options);
  } catch (e) {
    error = e;
  }
  assert.instance(error, kind, `${JSON.stringify(options, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v))}: no ${kind.name}`);
  assert.match((error as Error).message, message);
}

test("every number's default lies in its range, and the command line's range inside the table's", () => {
  assert.ok(numbers.length >= 10, `${numbers.length} number options`);
  for (const [name, s] of numbers) {
    assert.ok(s.default >= s.min && s.default <= s.max, `${name}: ${s.default} outside ${s.min}..${s.max}`);
    if (s.type === "integer") assert.ok(Number.isInteger(s.default), `${name}: ${s.default}`);
    if (s.cli?.min !== undefined) assert.ok(s.cli.min >= s.min && s.default >= s.cli.min, `${name}: the command line's range is wider`);
  }
});

test("nothing given: every option is the table's default (times in milliseconds), the optional ones absent", () => {
  const r = resolveSettings({}) as unknown as Record<string, unknown>;
  for (const [name, s] of entries) {
    if ("default" in s) assert.is(r[resolvedName(name)], s.type === "boolean" || s.type === "string" ? s.default : ms(s as NumberSetting, s.default as number), name);
  }
  for (const name of ["rewrite", "optionLimits", "portRange", "fd"]) assert.is(r[name], undefined, name);
  // null is "not given", as `??` took it before the table
  assert.equal(resolveSettings({ port: null, maxUploadSize: null } as unknown as EmmerOptions), resolveSettings({}));
});

for (const [name, s] of numbers) {
  test(`${name}: NaN, below ${s.min}, above ${s.max}${s.unlimited ? "" : ", Infinity"}${s.type === "integer" ? ", a fraction" : ""}, a string and a boolean are refused by name`, () => {
    const below = s.min === 0 ? -1 : s.min - (s.type === "integer" ? 1 : s.min / 2);
    const bad: number[] = [NaN, below, s.max + (s.max >= 2 ** 52 ? 2 : 1), -Infinity];
    if (!s.unlimited) bad.push(Infinity);
    if (s.type === "integer") bad.push(s.min + 0.5);
    for (const v of bad) throwsWith({ [name]: v }, RangeError, says(name, String(v)));
    throwsWith({ [name]: String(s.default) } as EmmerOptions, TypeError, says(name, JSON.stringify(String(s.default))));
    throwsWith({ [name]: true } as EmmerOptions, TypeError, says(name, "true"));
    // The API's constructor checks with the table too.
    assert.throws(() => new Emmer({ [name]: NaN }), says(name, "NaN"));
  });

  test(`${name}: ${s.min} and ${s.max}${s.unlimited ? " and Infinity (no limit)" : ""} are taken`, () => {
    const taken = s.unlimited ? [s.min, s.max, Infinity] : [s.min, s.max];
    for (const v of taken) assert.is((resolveSettings({ [name]: v }) as unknown as Record<string, number>)[resolvedName(name)], ms(s, v), `${name} ${v}`);
  });
}

test("fd, portRange, hostname, singlePort, rewrite and the functions: wrong values are refused by name", () => {
  for (const v of [-1, 1.5, NaN, 2 ** 31]) throwsWith({ fd: v }, RangeError, says("fd", String(v)));
  throwsWith({ fd: "3" } as unknown as EmmerOptions, TypeError, says("fd", '"3"'));
  assert.is(resolveSettings({ fd: 3 }).fd, 3);

  throwsWith({ portRange: [5000] as unknown as [number, number] }, TypeError, /^portRange must be \[first, last\] with 1 <= first <= last <= 65535, not \[5000\]$/);
  throwsWith({ portRange: "5000-5010" as unknown as [number, number] }, TypeError, /^portRange must be \[first, last\].*, not "5000-5010"$/);
  throwsWith({ portRange: [0, 10] }, RangeError, /^portRange\[0\] must be an integer from 1 to 65535, not 0$/);
  throwsWith({ portRange: [10, 5] }, RangeError, /^portRange\[1\] must be an integer from 10 to 65535, not 5$/);
  throwsWith({ portRange: [10, 70000] }, RangeError, /^portRange\[1\] must be an integer from 10 to 65535, not 70000$/);
  throwsWith({ portRange: [NaN, 10] }, RangeError, /^portRange\[0\] .*, not NaN$/);
  assert.equal(resolveSettings({ portRange: [5000, 5000] }).portRange, [5000, 5000]);

  for (const v of [5, ["::"]]) throwsWith({ hostname: v } as unknown as EmmerOptions, TypeError, /^hostname must be an address such as "127\.0\.0\.1"/);
  throwsWith({ hostname: "" }, RangeError, /^hostname must be an address such as "127\.0\.0\.1", "0\.0\.0\.0" or "::", not ""$/);
  assert.is(resolveSettings({ hostname: "::" }).hostname, "::");

  for (const v of ["yes", 1, 0]) throwsWith({ singlePort: v } as unknown as EmmerOptions, TypeError, /^singlePort must be true or false, not /);
  assert.is(resolveSettings({ singlePort: true }).singlePort, true);

  throwsWith({ rewrite: "^a a" } as unknown as EmmerOptions, TypeError, /^rewrite must be an array of rules, not "\^a a"$/);
  throwsWith({ rewrite: [{ pattern: "a" }] } as unknown as EmmerOptions, TypeError, /^rewrite rule 1: pattern must be a RegExp$/);

  for (const name of ["optionLimits", "onTransfer", "onTransferStart", "onError"] as const) {
    throwsWith({ [name]: 5 } as unknown as EmmerOptions, TypeError, new RegExp(`^${name} must be a function, not 5$`));
    throwsWith({ [name]: "log" } as unknown as EmmerOptions, TypeError, new RegExp(`^${name} must be a function, not "log"$`));
    resolveSettings({ [name]: () => {} });
  }
});

// ---- the defaults reach a server --------------------------------------------------------------

const PORT = SETTINGS.port.default;
const packets = (inbox: { data: Uint8Array; port: number }[]) => inbox.map((m) => ({ ...(decode(m.data) as Packet), from: m.port }));

/** A server on the fake network with the table's defaults (fakeServer's own test values taken back out). */
function defaultServer(configure: (app: Emmer) => void, options: EmmerOptions = {}) {
  return fakeServer(configure, { hostname: undefined, port: undefined, timeout: undefined, retries: undefined, drainTimeout: undefined, ...options });
}

test("hostname, port, singlePort: the server listens on the defaults and answers from a port of the transfer's own", async () => {
  const { net, app } = await defaultServer((app) => app.read("f", () => "x"));
  assert.equal(app.address, { address: SETTINGS.hostname.default, port: PORT });
  const client = await fakePeer(net);
  client.send(encodeRequest(Opcode.RRQ, "f", "octet", {}), PORT);
  await net.deliver();
  const [d] = packets(client.take());
  assert.is(d.op, Opcode.DATA);
  assert.is.not(d.from, PORT, "answered from the listening port: singlePort is not off by default");
});

test("maxBlksize, maxWindowsize: a client asking for more than the defaults is granted the defaults", async () => {
  const { net } = await defaultServer((app) => app.read("f", () => bytesOf(100)));
  const client = await fakePeer(net);
  client.send(encodeRequest(Opcode.RRQ, "f", "octet", { blksize: "65535", windowsize: "65535" }), PORT);
  await net.deliver();
  const [oack] = packets(client.take());
  assert.equal(oack.op === Opcode.OACK && oack.options, { blksize: String(SETTINGS.maxBlksize.default), windowsize: String(SETTINGS.maxWindowsize.default) });
});

test("timeout, retries: an unanswered block is resent after the default timeout, the default number of times", async () => {
  const { net } = await defaultServer((app) => app.read("f", () => bytesOf(600)));
  const client = await fakePeer(net);
  client.send(encodeRequest(Opcode.RRQ, "f", "octet", {}), PORT);
  await net.deliver();
  client.send(encodeAck(1), client.take()[0].port); // a client that answered once, then went silent
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => p.op === Opcode.DATA && p.block), [2]);
  const timeoutMs = SETTINGS.timeout.default * 1000;
  await net.advance(timeoutMs - 100); // the clock ticks every 100 ms at most: not a whole timeout yet
  await net.deliver();
  assert.equal(client.take(), [], "resent before the timeout");
  await net.advance(200);
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => p.op === Opcode.DATA && p.block), [2], "not resent after the timeout");
  for (let i = 0; i < 60; i++) await net.advance(1000).then(() => net.deliver());
  const rest = packets(client.take());
  assert.is(rest.filter((p) => p.op === Opcode.DATA).length, SETTINGS.retries.default - 1, "resends after the first");
  assert.is(rest.at(-1)!.op, Opcode.ERROR, "the transfer was not given up");
});

test("handlerTimeout: a handler that never settles is answered ERROR 0 after the default, not before", async () => {
  const { net } = await defaultServer((app) => app.read("*", () => new Promise(() => {})));
  const client = await fakePeer(net);
  client.send(encodeRequest(Opcode.RRQ, "stuck", "octet", {}), PORT);
  await net.deliver();
  await net.advance(SETTINGS.handlerTimeout.default * 1000 - 1);
  await net.deliver();
  assert.equal(client.take(), []);
  await net.advance(1);
  await net.deliver();
  assert.equal(packets(client.take()).map((p) => p.op === Opcode.ERROR && p.message), ["handler timed out"]);
});

test("maxUploadSize: an announced upload of the default size is taken, one byte more refused with ERROR 3", async () => {
  const { net } = await defaultServer((app) => app.write("*", () => {}));
  const max = SETTINGS.maxUploadSize.default;
  const answers: Packet[] = [];
  for (const size of [max, max + 1]) {
    const client = await fakePeer(net);
    client.send(encodeRequest(Opcode.WRQ, "up", "octet", { tsize: String(size) }), PORT);
    await net.deliver();
    answers.push(...packets(client.take()));
  }
  assert.equal(answers.map((p) => p.op), [Opcode.OACK, Opcode.ERROR]);
  assert.equal(answers[0].op === Opcode.OACK && answers[0].options, { tsize: String(max) });
  assert.equal(answers[1].op === Opcode.ERROR && [answers[1].code, answers[1].message], [3, `file too large: the limit is ${max} bytes`]);
});

test("maxUploadSize: NaN is refused (it compared false with every size: no cap by accident); Infinity is no cap", async () => {
  assert.throws(() => new Emmer({ maxUploadSize: NaN }), /^maxUploadSize must be .*, or Infinity for no limit, not NaN$/);
  const huge = "999999999999999"; // the largest tsize the server reads (15 digits)
  const answers: Packet[] = [];
  for (const maxUploadSize of [Infinity, undefined]) {
    const { net } = await defaultServer((app) => app.write("*", () => {}), { maxUploadSize });
    const client = await fakePeer(net);
    client.send(encodeRequest(Opcode.WRQ, "up", "octet", { tsize: huge }), PORT);
    await net.deliver();
    answers.push(...packets(client.take()));
  }
  assert.equal(answers.map((p) => p.op), [Opcode.OACK, Opcode.ERROR]);
});

test("drainTimeout: close() lets a live transfer run for the default, then ends it", async () => {
  const { net, app } = await defaultServer((app) => app.read("f", () => bytesOf(5000)), { retries: 100 });
  const client = await fakePeer(net);
  client.send(encodeRequest(Opcode.RRQ, "f", "octet", {}), PORT);
  await net.deliver();
  client.send(encodeAck(1), client.take()[0].port);
  await net.deliver();
  client.take();
  let closed = false;
  const closing = app.close().then(() => (closed = true));
  await net.advance(SETTINGS.drainTimeout.default - 1);
  assert.not.ok(closed, "closed before the drain time");
  await net.advance(1);
  await closing;
  await net.deliver();
  const last = packets(client.take()).pop()!;
  assert.equal(last.op === Opcode.ERROR && last.message, "server shutting down");
});

test("maxRequestsPerSecond, maxSessions: one address gets the default's worth of requests a second; all addresses the default's worth of sessions", async () => {
  let calls = 0;
  const { net } = await defaultServer((app) => app.read("*", () => (calls++, new Promise(() => {}))));
  const rate = SETTINGS.maxRequestsPerSecond.default;
  const sessions = SETTINGS.maxSessions.default;
  const one = await Promise.all(Array.from({ length: rate + 1 }, () => fakePeer(net, "127.0.0.2")));
  one.forEach((p, i) => p.send(encodeRequest(Opcode.RRQ, `f${i}`, "octet", {}), PORT));
  await net.deliver();
  assert.is(calls, rate, "requests from one address let through");
  // The other addresses fill the sessions up, each under its rate.
  for (let a = 3; calls < sessions && a < 250; a++) {
    const peers = await Promise.all(Array.from({ length: rate }, () => fakePeer(net, `127.0.0.${a}`)));
    peers.forEach((p, i) => p.send(encodeRequest(Opcode.RRQ, `g${i}`, "octet", {}), PORT));
    await net.deliver();
  }
  assert.is(calls, sessions, "requests in their handlers at once");
  const late = await fakePeer(net, "127.0.1.1");
  late.send(encodeRequest(Opcode.RRQ, "h", "octet", {}), PORT);
  await net.deliver();
  assert.is(calls, sessions, "a request beyond maxSessions reached its handler");
  assert.equal(late.take(), [], "a request beyond maxSessions was answered");
});

// ---- the command line -------------------------------------------------------------------------

const built = buildCli();
const run = (args: string[]) => spawnSync(process.execPath, [...command, ...args], { encoding: "utf8", timeout: 30_000 });

/** emmer-node's flags for the table's options. */
const FLAGS: [string, SettingName][] = [
  ["--port", "port"],
  ["--max-blksize", "maxBlksize"],
  ["--max-windowsize", "maxWindowsize"],
  ["--timeout", "timeout"],
  ["--retries", "retries"],
  ["--max-sessions", "maxSessions"],
  ["--max-requests-per-second", "maxRequestsPerSecond"],
];
const cliMin = (s: NumberSetting) => s.cli?.min ?? s.min;

test("emmer-node --help shows the table's defaults, and its ranges where it states one", () => {
  assert.ok(built, "no CLI bundle");
  const r = run(["--help"]);
  assert.is(r.status, 0, r.stderr);
  const line = (flag: string) => r.stdout.split("\n").find((l) => l.includes(`${flag} `)) ?? "";
  const s = (name: SettingName) => SETTINGS[name] as NumberSetting;
  assert.ok(line("--host").includes(`(${SETTINGS.hostname.default};`), line("--host"));
  assert.ok(line("--port").includes(`(${s("port").default};`), line("--port"));
  for (const name of ["maxBlksize", "maxWindowsize"] as const) {
    const flag = FLAGS.find((f) => f[1] === name)![0];
    assert.ok(line(flag).includes(`${cliMin(s(name))}..${s(name).max} (${s(name).default})`), line(flag));
  }
  const timeouts = line("--timeout");
  for (const name of ["timeout", "retries"] as const) assert.ok(timeouts.includes(`(${cliMin(s(name))}..${s(name).max}; ${s(name).default})`), `${name}: ${timeouts}`);
  for (const name of ["maxSessions", "maxRequestsPerSecond"] as const) {
    const flag = FLAGS.find((f) => f[1] === name)![0];
    assert.ok(line(flag).includes(`(${s(name).default})`), line(flag));
  }
});

for (const [flag, name] of FLAGS) {
  const s = SETTINGS[name] as NumberSetting;
  const bad = [String(cliMin(s) - 1), String(s.max + 1), "abc", ...(s.type === "number" ? ["1.5"] : [])];
  test(`emmer-node ${flag}: ${bad.join(", ")} exit 2 naming the flag and the table's range`, () => {
    assert.ok(built, "no CLI bundle");
    for (const v of bad) {
      const r = run([`${flag}=${v}`]);
      assert.is(r.status, 2, `${flag}=${v}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, `emmer-node: ${flag} must be an integer from ${cliMin(s)} to ${s.max}, not "${v}"`);
    }
  });
}

test.run();
