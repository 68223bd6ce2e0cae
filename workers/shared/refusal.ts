// A request the name's group refuses for a reason the client must hear (an S3 error), as a
// value rather than a thrown Error: an Error crossing a Durable Object RPC keeps only its
// message. The gateway turns a Refusal into the S3 error of the same code.

export type RefusalCode = "NoSuchUpload" | "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "PreconditionFailed" | "MalformedXML" | "InvalidRequest" | "KeyLeased" | "OperationAborted" | "ServiceUnavailable";

export interface Refusal {
  refused: RefusalCode;
  message: string;
  details?: Record<string, string>;
}

export function refusal(refused: RefusalCode, message: string, details?: Record<string, string>): Refusal {
  return details ? { refused, message, details } : { refused, message };
}

export function isRefusal(v: unknown): v is Refusal {
  return typeof v === "object" && v !== null && typeof (v as Refusal).refused === "string";
}
