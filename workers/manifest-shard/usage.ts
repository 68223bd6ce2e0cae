// What each tenant keeps in this shard: bytes and count of its object versions (current and
// noncurrent, delete markers not counted), kept in step with the versions table inside the
// same transaction as each record, so it is exact and never needs a scan to answer. A tenant's
// usage is the sum over the S shards (gateway/s3/quota.ts); quotas are checked against it.

export interface Usage {
  bytes: number;
  objects: number;
}

export class UsageBook {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
    const exists = sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tenant_usage'").toArray().length > 0;
    if (!exists) {
      sql.exec("CREATE TABLE tenant_usage (tenant TEXT PRIMARY KEY, bytes INTEGER NOT NULL, objects INTEGER NOT NULL)");
      // A shard from before usage was kept counts its rows once, on its first start with this code.
      this.recount();
    }
  }

  /** Counted again from the versions table (a shard that has just taken in its names from another). */
  recount(): void {
    this.sql.exec("DELETE FROM tenant_usage");
    this.sql.exec(
      `INSERT INTO tenant_usage (tenant, bytes, objects)
       SELECT tenant, sum(size), count(*) FROM versions WHERE removed = 0 AND delete_marker = 0 GROUP BY tenant`,
    );
  }

  /** The versions of these names are no longer counted here (handed to another shard); `where` narrows the versions table. */
  drop(where: { sql: string; args: number[] }): void {
    this.sql.exec(
      `UPDATE tenant_usage SET bytes = tenant_usage.bytes - d.bytes, objects = tenant_usage.objects - d.objects
       FROM (SELECT tenant, sum(size) AS bytes, count(*) AS objects FROM versions WHERE removed = 0 AND delete_marker = 0 AND ${where.sql} GROUP BY tenant) AS d
       WHERE tenant_usage.tenant = d.tenant`,
      ...where.args,
    );
  }

  /** Changes of this batch of records, written by `settle` (one statement per tenant, not per record). */
  private readonly pending = new Map<string, Usage>();

  /** A version row became visible (inserted, not removed) or stopped being (`sign` -1). Written by `settle`. */
  change(tenant: string, size: number, sign: 1 | -1): void {
    const u = this.pending.get(tenant) ?? { bytes: 0, objects: 0 };
    u.bytes += sign * size;
    u.objects += sign;
    this.pending.set(tenant, u);
  }

  /** Write the batch's changes, in the transaction that applied its records. */
  settle(): void {
    for (const [tenant, u] of this.pending) {
      this.sql.exec(
        `INSERT INTO tenant_usage (tenant, bytes, objects) VALUES (?1, ?2, ?3)
         ON CONFLICT(tenant) DO UPDATE SET bytes = bytes + ?2, objects = objects + ?3`,
        tenant, u.bytes, u.objects,
      );
    }
    this.pending.clear();
  }

  /** The batch's transaction rolled back: its changes go with it. */
  discard(): void {
    this.pending.clear();
  }

  of(tenant: string): Usage {
    const r = this.sql.exec("SELECT bytes, objects FROM tenant_usage WHERE tenant = ?", tenant).toArray()[0];
    return r ? { bytes: Number(r.bytes), objects: Number(r.objects) } : { bytes: 0, objects: 0 };
  }

  /** Every tenant's together: what the shard holds, for status. */
  total(): Usage {
    const r = this.sql.exec("SELECT coalesce(sum(bytes), 0) AS bytes, coalesce(sum(objects), 0) AS objects FROM tenant_usage").one();
    return { bytes: Number(r.bytes), objects: Number(r.objects) };
  }
}
