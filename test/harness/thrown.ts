/** What `fn` throws (undefined when it returns), for assertions on error classes and fields. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}
