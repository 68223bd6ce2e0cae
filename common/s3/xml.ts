// The S3 wire format's XML documents, built from plain values and escaped once, here: the
// gateway's answers and every error the gateway or the proxy sends.

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}

export type XmlValue = string | number | boolean | null | undefined | XmlNode | XmlValue[];
export interface XmlNode {
  [name: string]: XmlValue;
}

/** Serialize `{ Name: value }` pairs; arrays repeat the element, null/undefined are omitted. */
export function xmlElements(node: XmlNode): string {
  let out = "";
  for (const [name, value] of Object.entries(node)) out += element(name, value);
  return out;
}

function element(name: string, value: XmlValue): string {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.map((v) => element(name, v)).join("");
  if (typeof value === "object") return `<${name}>${xmlElements(value)}</${name}>`;
  return `<${name}>${esc(String(value))}</${name}>`;
}

export function xmlDocument(root: string, body: XmlNode): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${xmlElements(body)}</${root}>`;
}

/** What an error body says; `code` is a string because a proxy relays codes from further away. */
export interface ErrorBody {
  code: string;
  message: string;
  /** Extra elements S3 puts in the body (e.g. BucketName, Key, RangeRequested). */
  details?: Record<string, string>;
}

/** S3's `<Error>` document (which, unlike the others, has no namespace). */
export function errorDocument(err: ErrorBody, resource: string, requestId: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error>` +
    xmlElements({ Code: err.code, Message: err.message, ...err.details, Resource: resource, RequestId: requestId }) +
    `</Error>`
  );
}
