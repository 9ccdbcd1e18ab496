// Prints detect()'s answer as one JSON line: for a runtime started with fewer
// permissions than the test's own (tests/native_datagrams.test.ts).
import { detect } from "../../adapters/native/detect.ts";

console.log(JSON.stringify(await detect()));
