// The long fuzz run: npm run fuzz [-- --datagrams N --seed S --rate PER_SECOND]
// Prints progress and a final report; exits 1 if anything went wrong.
import process from "node:process";
import { runFuzz } from "../tests/support/fuzz.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const datagrams = arg("--datagrams", 1_000_000);
const seed = arg("--seed", 1);
const rate = arg("--rate", 10_000);
console.log(`fuzzing a live server with ${datagrams} datagrams (seed ${seed})`);
const r = await runFuzz({ datagrams, seed, rate, log: console.log });
console.log(JSON.stringify(r, null, 2));
const ok = r.unhandledRejections === 0 && r.validFailures.length === 0 && r.validTransfers > 0 && r.sessionsAfter === 0 && r.arenaInUseAfter === 0;
console.log(ok ? "fuzz: ok" : "fuzz: FAILED");
process.exit(ok ? 0 : 1);
