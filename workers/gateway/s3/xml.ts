// The S3 wire format: XML documents built from plain values, escaped once, here.

import type { S3Error } from "./errors.ts";

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

export function xmlResponse(root: string, body: XmlNode, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(xmlDocument(root, body), { status, headers: { "content-type": "application/xml", ...headers } });
}

export function errorResponse(err: S3Error, resource: string, requestId: string, head: boolean): Response {
  const headers: Record<string, string> = { "x-amz-request-id": requestId, ...err.headers };
  if (head) return new Response(null, { status: err.status, headers });
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error>` +
    xmlElements({ Code: err.code, Message: err.message, ...err.details, Resource: resource, RequestId: requestId }) +
    `</Error>`;
  return new Response(body, { status: err.status, headers: { "content-type": "application/xml", ...headers } });
}

/** S3 timestamps: ISO 8601 with milliseconds, UTC. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** Last-Modified header form. */
export function httpTime(ms: number): string {
  return new Date(ms).toUTCString();
}
