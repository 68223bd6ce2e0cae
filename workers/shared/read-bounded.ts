// Small bodies read whole, with their cap enforced while reading: a body past the cap is never
// held, whatever its Content-Length claimed (or when it had none).

/** A small request body whole, refusing more than `max` bytes (without reading them). */
export function readBounded(req: Request, max: number, tooLarge: () => Error): Promise<Uint8Array> {
  return req.body ? readStreamBounded(req.body, max, tooLarge) : Promise.resolve(new Uint8Array(0));
}

/** A small stream whole, refusing more than `max` bytes: the stream is cancelled, not read on. */
export async function readStreamBounded(body: ReadableStream<Uint8Array>, max: number, tooLarge: () => Error): Promise<Uint8Array> {
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > max) {
      // The refusal is the answer; a stream that fails to cancel has nothing more to say.
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    parts.push(value);
  }
  const all = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}
