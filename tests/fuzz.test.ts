// A short fuzz run against a live server (see tests/support/fuzz.ts; the long
// run is `npm run fuzz`): no crash, no unhandled rejection, bounded memory, and
// the valid transfers running alongside all complete with the right bytes.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { runFuzz } from "./support/fuzz.ts";

const DATAGRAMS = Number(process.env.EMMER_FUZZ_DATAGRAMS ?? 30_000);

test(`${DATAGRAMS} fuzzed datagrams to the listening port and to live transfer ports`, async () => {
  const r = await runFuzz({ datagrams: DATAGRAMS, seed: 4242 });
  console.log(`    ${JSON.stringify(r)}`);
  assert.is(r.unhandledRejections, 0);
  assert.is(r.sessionsAfter, 0, "sessions left behind");
  assert.is(r.arenaInUseAfter, 0, "linear memory left handed out");
  assert.equal(r.validFailures, [], "valid transfers disturbed");
  assert.ok(r.validTransfers >= 3, `only ${r.validTransfers} valid transfers ran alongside`);
  assert.ok(r.toTransferPorts > DATAGRAMS / 4, "live transfer ports were not fuzzed");
  assert.ok(r.answers > 0, "the server answered nothing");
  assert.ok(r.rssPeakMiB - r.rssBeforeMiB < 200, `memory grew by ${r.rssPeakMiB - r.rssBeforeMiB} MiB`);
});

test.run();
