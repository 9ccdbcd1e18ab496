/** Emmer's version; tests/deno_tooling.test.ts holds it equal to package.json's and deno.json's. */
export const VERSION = "0.1.0";
