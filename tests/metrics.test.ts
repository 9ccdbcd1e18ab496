// The metrics registry's exposition text, checked line by line against the
// Prometheus text format: names, escaping, cumulative buckets, sums and counts.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Counter, Gauge, Histogram, Registry } from "../core/metrics.ts";

const lines = (text: string) => text.trimEnd().split("\n");

test("a counter renders HELP, TYPE and one sample per label set, in first-seen order", () => {
  const r = new Registry();
  const c = r.add(new Counter("emmer_x_total", "Things.", ["kind"]));
  c.inc({ kind: "read" });
  c.inc({ kind: "write" }, 2);
  c.inc({ kind: "read" }, 3);
  assert.equal(lines(r.render()), [
    "# HELP emmer_x_total Things.",
    "# TYPE emmer_x_total counter",
    'emmer_x_total{kind="read"} 4',
    'emmer_x_total{kind="write"} 2',
  ]);
  assert.is(c.get({ kind: "read" }), 4);
  assert.is(c.get({ kind: "none" }), 0);
});

test("label values are escaped; unknown labels and negative increments are refused", () => {
  const c = new Counter("c_total", "c", ["reason"]);
  c.inc({ reason: 'a"b\\c\nd' });
  assert.is(c.samples(), 'c_total{reason="a\\"b\\\\c\\nd"} 1\n');
  assert.throws(() => c.inc({ file: "x" }), /no label "file"/);
  assert.throws(() => c.inc({}, -1), /cannot go down/);
  assert.throws(() => c.inc({}, NaN), /cannot go down/);
  assert.throws(() => new Counter("bad name", "x", []), /invalid metric name/);
  assert.throws(() => new Counter("ok", "x", ["le"]), /invalid label name/);
});

test("a gauge is read when rendered", () => {
  let live = 3;
  const r = new Registry();
  r.add(new Gauge("emmer_sessions", "Live.", () => live));
  assert.ok(r.render().endsWith("emmer_sessions 3\n"));
  live = 0;
  assert.ok(r.render().endsWith("emmer_sessions 0\n"));
});

test("a histogram's buckets are cumulative, with +Inf, _sum and _count", () => {
  const h = new Histogram("d_seconds", "d", ["kind"], [0.125, 1]);
  // binary fractions: the sum is exact
  for (const v of [0.0625, 0.125, 0.5, 2]) h.observe(v, { kind: "read" });
  assert.equal(lines(h.samples()), [
    'd_seconds_bucket{kind="read",le="0.125"} 2',
    'd_seconds_bucket{kind="read",le="1"} 3',
    'd_seconds_bucket{kind="read",le="+Inf"} 4',
    'd_seconds_sum{kind="read"} 2.6875',
    'd_seconds_count{kind="read"} 4',
  ]);
  assert.throws(() => new Histogram("h", "h", [], [1, 1]), /increasing/);
  assert.throws(() => new Histogram("h", "h", [], []), /increasing/);
});

test("a name is registered once", () => {
  const r = new Registry();
  r.add(new Counter("a_total", "a", []));
  assert.throws(() => r.add(new Counter("a_total", "a", [])), /registered already/);
});

test.run();
