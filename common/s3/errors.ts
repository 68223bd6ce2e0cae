// Every S3 error code this system answers with, and its HTTP status, declared once for the
// gateway and the proxy alike, so a refusal reads the same whichever of them made it.

const STATUS = {
  AccessControlListNotSupported: 400,
  AccessDenied: 403,
  AccessForbidden: 403,
  BadDigest: 400,
  BadRequest: 400,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketAclWithObjectOwnership: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPolicyDocument: 400,
  InvalidTag: 400,
  PolicyTooLarge: 400,
  InvalidPartNumber: 416,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidSnapshotState: 409,
  InvalidStorageClass: 400,
  KeyLeased: 409,
  OperationAborted: 409,
  KeyTooLongError: 400,
  MalformedACLError: 400,
  MalformedJSON: 400,
  MalformedXML: 400,
  MalformedPOSTRequest: 400,
  MalformedPolicy: 400,
  MaxPostPreDataLengthExceededError: 400,
  MaxMessageLengthExceeded: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  MissingSecurityHeader: 400,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchSession: 404,
  NoSuchSnapshot: 404,
  NoSuchTagSet: 404,
  NoSuchBucketPolicy: 404,
  NoSuchPublicAccessBlockConfiguration: 404,
  NoSuchCORSConfiguration: 404,
  NoSuchLifecycleConfiguration: 404,
  NoSuchUpload: 404,
  NoSuchVersion: 404,
  NotImplemented: 501,
  PointInTimeIncomplete: 503,
  PreconditionFailed: 412,
  RequestTimeTooSkewed: 403,
  QuotaExceeded: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  XAmzContentSHA256Mismatch: 400,
  XAmzContentChecksumMismatch: 400,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  ExpiredToken: 400,
  InvalidObjectState: 403,
} as const;

export type S3ErrorCode = keyof typeof STATUS;

export function isS3ErrorCode(code: string): code is S3ErrorCode {
  return Object.hasOwn(STATUS, code);
}

export class S3Error extends Error {
  readonly code: S3ErrorCode;
  readonly status: number;
  /** Extra elements S3 puts in the error body (e.g. BucketName, Key, RangeRequested). */
  readonly details: Record<string, string>;
  /** Extra response headers (e.g. Content-Range on 416, Retry-After on 503). */
  readonly headers: Record<string, string>;

  constructor(code: S3ErrorCode, message: string, details: Record<string, string> = {}, headers: Record<string, string> = {}) {
    super(message);
    this.code = code;
    this.status = STATUS[code];
    this.details = details;
    this.headers = headers;
  }
}

export function statusOf(code: S3ErrorCode): number {
  return STATUS[code];
}

/** An id for one request, as S3 shows it (x-amz-request-id, an error's RequestId). */
export function newRequestId(): string {
  return crypto.randomUUID().replace(/-/g, "").slice(0, 16).toUpperCase();
}
