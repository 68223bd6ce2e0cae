// aws-chunked bodies as the proxy receives them: a Node request's bytes through the decoder
// the gateway runs (common/s3/aws-chunked.ts), with Node's digests for trailing SHA checksums.
// Without a verified signature (a proxy that trusts loopback) signatures are not checked.

import { decodeAwsChunked, type ChunkSigning } from "../../common/s3/aws-chunked.ts";
import type { StreamingMode } from "../../common/s3/sigv4.ts";
import { nodeDigests } from "./node-digests.ts";

export interface ChunkedRequest {
  mode: StreamingMode;
  signing: ChunkSigning | null;
  /** x-amz-decoded-content-length, when the request gave one. */
  decodedLength: number | null;
  /** Lowercased names from x-amz-trailer. */
  trailerNames: string[];
}

export interface DecodedBody {
  /** The object's bytes; fails with an S3Error if the framing, a signature, the length or a trailing checksum is wrong. */
  body: AsyncIterable<Uint8Array>;
  /** The trailing headers (lowercase names, without x-amz-trailer-signature), once the body has ended cleanly. */
  trailers: Promise<Record<string, string>>;
}

export function decodeBody(source: AsyncIterable<Uint8Array>, r: ChunkedRequest): DecodedBody {
  const { stream, trailers } = decodeAwsChunked(webStreamOf(source), { ...r, digests: nodeDigests });
  return { body: bytesOf(stream), trailers };
}

/** Read only as the decoder pulls, so a refused body is not read ahead of its refusal. */
function webStreamOf(source: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const r = await it.next();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
      async cancel() {
        await it.return?.();
      },
    },
    { highWaterMark: 0 },
  );
}

async function* bytesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  let ended = false;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) {
        ended = true;
        return;
      }
      yield r.value;
    }
  } finally {
    // A consumer that stops early lets go of the request body too.
    if (!ended) await reader.cancel().catch(() => {});
  }
}
