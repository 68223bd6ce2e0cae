// Shared by the unit tests: what a parser threw, and the request router.

import { expect } from "vitest";
import { route, type Endpoint } from "../../workers/gateway/router.ts";
import { S3Error } from "../../common/s3/errors.ts";

/** The S3Error `fn` throws (failing the test if it throws anything else, or nothing). */
export function caught(fn: () => unknown): S3Error {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(S3Error);
    return e as S3Error;
  }
  throw new Error("expected an S3Error");
}

export function routeOf(path: string, method = "GET", headers: Record<string, string> = {}): Promise<Endpoint> {
  const url = new URL(`http://gateway.test${path}`);
  return route(new Request(url, { method, headers }), url);
}
