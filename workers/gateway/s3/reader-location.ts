// Where a read comes from, so that its chunks are served by the nearest copies (seed 004: "the
// namespace orders replicas by client distance"). A location is a path like a target's
// (/region/zone/...): the client may name its own in `x-edgestore-location`; otherwise the
// gateway's, from the Cloudflare colo that took the request (READ_LOCATIONS, a JSON object
// colo -> path) or one fixed path for every request (GATEWAY_LOCATION). None of them: no
// preference, reads spread over holders as before.

import type { Env } from "../../shared/env.ts";
import { S3Error } from "../../../common/s3/errors.ts";

export const LOCATION_HEADER = "x-edgestore-location";

const PATH = /^(\/[A-Za-z0-9._-]{1,64}){1,8}$/;

function valid(path: string, from: string): string {
  if (!PATH.test(path)) {
    throw new S3Error("InvalidArgument", `${from} must be a location path like /region/zone/rack (up to 8 parts of letters, digits, ".", "_" or "-"), got "${path}"`, {
      ArgumentName: from,
      ArgumentValue: path,
    });
  }
  return path;
}

let parsedFor: string | undefined;
let byColo: Record<string, string> = {};

function coloMap(env: Env): Record<string, string> {
  if (env.READ_LOCATIONS !== parsedFor) {
    const parsed: unknown = env.READ_LOCATIONS ? JSON.parse(env.READ_LOCATIONS) : {};
    if (typeof parsed !== "object" || parsed === null || Object.values(parsed).some((v) => typeof v !== "string" || !PATH.test(v))) {
      throw new Error(`READ_LOCATIONS must be a JSON object of colo -> location path, got ${env.READ_LOCATIONS}`);
    }
    byColo = parsed as Record<string, string>;
    parsedFor = env.READ_LOCATIONS;
  }
  return byColo;
}

/** The caller's location for ordering replicas, or null for no preference. A malformed header is a 400. */
export function readerLocation(req: Request, env: Env): string | null {
  const header = req.headers.get(LOCATION_HEADER);
  if (header !== null) return valid(header.trim(), LOCATION_HEADER);
  const colo = (req as Request & { cf?: { colo?: unknown } }).cf?.colo;
  if (typeof colo === "string") {
    const mapped = coloMap(env)[colo];
    if (mapped) return mapped;
  }
  if (!env.GATEWAY_LOCATION) return null;
  if (!PATH.test(env.GATEWAY_LOCATION)) throw new Error(`GATEWAY_LOCATION must be a location path like /region/zone, got "${env.GATEWAY_LOCATION}"`);
  return env.GATEWAY_LOCATION;
}
