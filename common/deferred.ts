// A promise settled from outside: what waiting for a reply that arrives on another path needs
// (an ack on a socket, a chunk of a batched read).

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * `p` is awaited later, after other work: until then a rejection would be reported as unhandled
 * (workerd fails the request for it, Node may end the process). Nothing is lost: the later
 * await throws it.
 */
export function awaitedLater<T>(p: Promise<T>): Promise<T> {
  // Handled where it is awaited (see above).
  p.catch(() => {});
  return p;
}
