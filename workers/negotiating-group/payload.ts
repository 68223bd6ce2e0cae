// Payload arrives from the gateway as one byte stream carrying the items back to back, not as
// RPC arguments (an argument is capped at 32 MiB and must be whole before the call starts).
// The group keeps each item until R replicas confirm it, since a failed target is retried with
// another, so an item is read into one buffer of its announced size.

export function readItems(stream: ReadableStream<Uint8Array>, sizes: readonly number[]): Promise<Uint8Array>[] {
  const settle = sizes.map(() => {
    let resolve!: (b: Uint8Array) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<Uint8Array>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    return { promise, resolve, reject };
  });
  void (async () => {
    const reader = stream.getReader();
    let item = 0;
    let buf = new Uint8Array(sizes[0] ?? 0);
    let at = 0;
    // The last item settles only at end of stream, so trailing bytes are an error, not ignored.
    const advance = () => {
      while (item < sizes.length - 1 && at === sizes[item]) {
        settle[item]!.resolve(buf);
        item++;
        buf = new Uint8Array(sizes[item] ?? 0);
        at = 0;
      }
    };
    try {
      advance();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        let off = 0;
        while (off < value.length) {
          const room = item < sizes.length ? sizes[item]! - at : 0;
          if (room === 0) throw new Error(`payload stream is longer than the ${sizes.length} items announced`);
          const n = Math.min(value.length - off, room);
          buf.set(value.subarray(off, off + n), at);
          at += n;
          off += n;
          advance();
        }
      }
      if (item < sizes.length - 1 || (item === sizes.length - 1 && at !== sizes[item])) {
        throw new Error(`payload stream ended in item ${item} at byte ${at} of ${sizes[item]}`);
      }
      if (item === sizes.length - 1) settle[item]!.resolve(buf);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      for (let i = item; i < sizes.length; i++) settle[i]!.reject(err);
      await reader.cancel(err).catch(() => {});
    }
  })();
  return settle.map((s) => s.promise);
}

/** The gateway's side: one chunk as a stream of pieces no larger than a frame. */
export function streamOf(bytes: Uint8Array, piece = 1024 * 1024): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (off >= bytes.length) {
        c.close();
        return;
      }
      const end = Math.min(bytes.length, off + piece);
      c.enqueue(bytes.subarray(off, end));
      off = end;
    },
  });
}
