/**
 * Runs `fn` with queueMicrotask replaced by one that runs each task at once and keeps what it
 * throws: how the batch path surfaces a handler's error (a microtask that rethrows it, Node's
 * uncaught exception) is checked without the exception ending the test run.
 */
export function microtaskErrors(fn: () => void): unknown[] {
  const errors: unknown[] = [];
  const queued = globalThis.queueMicrotask;
  globalThis.queueMicrotask = (task) => {
    try {
      task();
    } catch (error) {
      errors.push(error);
    }
  };
  try {
    fn();
  } finally {
    globalThis.queueMicrotask = queued;
  }
  return errors;
}
