// A multipart/form-data body read as it streams, for browser form uploads: the small text fields
// before the file are read whole (within a cap), and the file part is handed on as a stream
// that ends at the next boundary, so no request holds a whole file in memory. S3 takes the file
// as the last field; anything after it is ignored.

import { S3Error } from "../../../common/s3/errors.ts";

const CRLF = new Uint8Array([13, 10]);
const HEADERS_END = new TextEncoder().encode("\r\n\r\n");
const enc = new TextEncoder();
const dec = new TextDecoder();

export interface FormUpload {
  /** The text fields before the file, names lower-cased (S3 matches form field names without case). */
  fields: Map<string, string>;
  /** The file part's own filename, if it gave one. */
  filename: string | null;
  /** The file's bytes, ending at its boundary; errors if the body ends first. */
  file: ReadableStream<Uint8Array>;
  /**
   * Read the rest of the request and drop it: a refused upload still reads what the client is
   * sending, so the client gets the error rather than a reset connection. Works whatever holds
   * the file stream.
   */
  discard(): Promise<void>;
}

/** The boundary of a multipart/form-data Content-Type, or null if it is not one. */
export function boundaryOf(contentType: string | null): string | null {
  if (!contentType || !/^multipart\/form-data\s*;/i.test(contentType)) return null;
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]!) : null;
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0]!;
  for (let i = hay.indexOf(first, from); i >= 0 && i + needle.length <= hay.length; i = hay.indexOf(first, i + 1)) {
    let k = 1;
    while (k < needle.length && hay[i + k] === needle[k]) k++;
    if (k === needle.length) return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A part's headers: its field name and filename from Content-Disposition. */
function partHeaders(text: string): { name: string; filename: string | null } {
  const disposition = text.split("\r\n").find((l) => /^content-disposition:/i.test(l)) ?? "";
  const name = /;\s*name="([^"]*)"/i.exec(disposition)?.[1];
  if (name === undefined) throw new S3Error("MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.");
  const filename = /;\s*filename="([^"]*)"/i.exec(disposition)?.[1] ?? null;
  return { name, filename };
}

/** Reads the fields up to the file part; `fieldsMax` caps what the fields may take. */
export async function readFormUpload(body: ReadableStream<Uint8Array>, boundary: string, fieldsMax: number): Promise<FormUpload> {
  const malformed = () => new S3Error("MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.");
  const delimiter = enc.encode(`\r\n--${boundary}`);
  const reader = body.getReader();
  // The body starts with "--boundary": reading as if a CRLF came before it makes every delimiter alike.
  let buf: Uint8Array = CRLF;
  const tooLarge = () => new S3Error("MaxPostPreDataLengthExceededError", "Your POST request fields preceeding the upload file was too large.");
  /** Bytes the fields took so far: what S3 caps (a read may also bring file bytes, which do not count). */
  let fieldBytes = 0;
  const more = async (): Promise<boolean> => {
    // Still looking for the end of a part that has run past the cap on its own: it cannot fit.
    if (fieldBytes + buf.length > fieldsMax + 2 * delimiter.length + 1024) throw tooLarge();
    const { done, value } = await reader.read();
    if (done) return false;
    buf = concat(buf, value);
    return true;
  };
  const fields = new Map<string, string>();
  // Each round: buf starts at a delimiter; find the part's headers, then its end.
  for (;;) {
    let headersEnd = indexOf(buf, HEADERS_END, delimiter.length);
    while (headersEnd < 0) {
      if (!(await more())) throw malformed();
      headersEnd = indexOf(buf, HEADERS_END, delimiter.length);
    }
    if (indexOf(buf, delimiter) !== 0) throw malformed();
    const head = dec.decode(buf.subarray(delimiter.length + 2, headersEnd));
    const { name, filename } = partHeaders(head);
    fieldBytes += headersEnd + 4;
    buf = buf.subarray(headersEnd + 4);
    if (name.toLowerCase() === "file") return { fields, filename, file: fileStream(reader, buf, delimiter), discard: () => drain(reader) };
    let end = indexOf(buf, delimiter);
    while (end < 0) {
      if (!(await more())) throw malformed();
      end = indexOf(buf, delimiter);
    }
    fields.set(name.toLowerCase(), dec.decode(buf.subarray(0, end)));
    fieldBytes += end;
    if (fieldBytes > fieldsMax) throw tooLarge();
    buf = buf.subarray(end);
  }
}

async function drain(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  try {
    for (let r = await reader.read(); !r.done; r = await reader.read());
  } catch {
    // The body failed or was cancelled: there is nothing left to read.
  }
}

/** The file part's bytes from `start` on, up to the delimiter; bytes that could begin it are held back until known. */
function fileStream(reader: ReadableStreamDefaultReader<Uint8Array>, start: Uint8Array, delimiter: Uint8Array): ReadableStream<Uint8Array> {
  let held = start;
  let ended = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        if (ended) return;
        const at = indexOf(held, delimiter);
        if (at >= 0) {
          if (at > 0) controller.enqueue(held.slice(0, at));
          ended = true;
          controller.close();
          // What follows the file is not read: S3 ignores fields after it. A cancel that fails
          // leaves nothing behind: the request ends with its answer either way.
          await reader.cancel().catch(() => undefined);
          return;
        }
        // All but the last delimiter-length bytes are file for certain.
        const safe = held.length - (delimiter.length - 1);
        if (safe > 0) {
          controller.enqueue(held.slice(0, safe));
          held = held.slice(safe);
          return;
        }
        const { done, value } = await reader.read();
        if (done) {
          controller.error(new S3Error("IncompleteBody", "The request body ended before the file's closing boundary."));
          return;
        }
        held = concat(held, value);
      }
    },
    async cancel(reason) {
      await reader.cancel(reason);
    },
  });
}
