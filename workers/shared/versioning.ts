// A bucket's versioning state, as S3 names it. A bucket starts Unversioned; once Enabled it can
// only be Suspended, never Unversioned again. Writes in a bucket that is not Enabled make the
// key's "null" version, replacing the previous one.

export type Versioning = "Unversioned" | "Enabled" | "Suspended";

/** The version id S3 shows for a version: its UVID, or "null" for a null version. */
export function versionIdOf(uvid: string, isNull: boolean): string {
  return isNull ? "null" : uvid;
}
