// A bucket's CORS rules as S3 defines them (PutBucketCors): which origins may use which methods
// with which request headers, which response headers a page may read, and how long a browser
// may remember a preflight. Matching follows S3: the first rule whose origin, method and every
// requested header match decides; `*` in an origin or header pattern matches any run of
// characters (one per origin, as S3 allows), headers compare without case.

export const CORS_METHODS = ["GET", "PUT", "HEAD", "POST", "DELETE"] as const;
export type CorsMethod = (typeof CORS_METHODS)[number];
export const CORS_RULES_MAX = 100;

export interface CorsRule {
  id: string | null;
  allowedOrigins: string[];
  allowedMethods: CorsMethod[];
  allowedHeaders: string[];
  exposeHeaders: string[];
  maxAgeSeconds: number | null;
}

/** What a browser asks: from which origin, for which method, sending which headers. */
export interface CorsAsk {
  origin: string;
  method: string;
  headers: string[];
}

function wildcard(pattern: string, value: string, ignoreCase: boolean): boolean {
  const p = ignoreCase ? pattern.toLowerCase() : pattern;
  const v = ignoreCase ? value.toLowerCase() : value;
  const star = p.indexOf("*");
  if (star < 0) return p === v;
  const [head, tail] = [p.slice(0, star), p.slice(star + 1)];
  return v.length >= head.length + tail.length && v.startsWith(head) && v.endsWith(tail);
}

/** The rule that lets `ask` through, or null. */
export function matchingRule(rules: readonly CorsRule[], ask: CorsAsk): CorsRule | null {
  for (const r of rules) {
    if (!r.allowedOrigins.some((o) => wildcard(o, ask.origin, false))) continue;
    if (!r.allowedMethods.includes(ask.method as CorsMethod)) continue;
    if (!ask.headers.every((h) => r.allowedHeaders.some((a) => wildcard(a, h, true)))) continue;
    return r;
  }
  return null;
}

/** The headers that tell the browser what `rule` allows `ask`. */
export function corsHeaders(rule: CorsRule, ask: CorsAsk, preflight: boolean): Record<string, string> {
  const anyOrigin = rule.allowedOrigins.includes("*");
  const h: Record<string, string> = {
    "access-control-allow-origin": anyOrigin ? "*" : ask.origin,
    "access-control-allow-methods": rule.allowedMethods.join(", "),
    vary: "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
  };
  if (!anyOrigin) h["access-control-allow-credentials"] = "true";
  if (rule.exposeHeaders.length > 0) h["access-control-expose-headers"] = rule.exposeHeaders.join(", ");
  if (preflight && ask.headers.length > 0) h["access-control-allow-headers"] = ask.headers.join(", ");
  if (rule.maxAgeSeconds !== null) h["access-control-max-age"] = String(rule.maxAgeSeconds);
  return h;
}
