// The cluster's own metrics in Prometheus text, from the same state the status page shows
// (status.ts): GET /_admin/metrics, bearing the admin token. Per-host figures (fsync latency,
// bids, verify failures) are each node-target's (node-target/metrics.ts); these are the ones
// only the control plane knows.

import type { ClusterStatus } from "./status.ts";

type Labels = Record<string, string | number>;

class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: "gauge" | "counter", help: string, samples: [Labels, number][]): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) {
      const l = Object.entries(labels).map(([k, x]) => `${k}="${String(x).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
      this.lines.push(`${name}${l.length ? `{${l.join(",")}}` : ""} ${v}`);
    }
  }

  toString(): string {
    return this.lines.join("\n") + "\n";
  }
}

export function clusterMetrics(s: ClusterStatus): string {
  const e = new Exposition();
  const byState = (state: string) => s.targets.filter((t) => t.state === state).length;
  e.family("edgestore_targets", "gauge", "Registered targets by state", [[{ state: "live" }, byState("live")], [{ state: "down" }, byState("down")]]);
  const t = (f: (x: ClusterStatus["targets"][number]) => number) => s.targets.map((x): [Labels, number] => [{ target: x.id, location: x.location }, f(x)]);
  e.family("edgestore_target_up", "gauge", "1 while the target is connected to the cluster", t((x) => (x.live ? 1 : 0)));
  e.family("edgestore_target_capacity_bytes", "gauge", "A target's capacity as it registered", t((x) => x.capacity));
  e.family("edgestore_target_free_bytes", "gauge", "A target's free space at its last heartbeat", t((x) => x.free));
  e.family("edgestore_target_stored_bytes", "gauge", "Bytes a target stored at its last heartbeat", t((x) => x.bytes));
  e.family("edgestore_target_last_heartbeat_seconds", "gauge", "Unix time of a target's last heartbeat", t((x) => Math.floor(x.lastSeen / 1000)));
  e.family("edgestore_copysets", "gauge", "Distinct replica sets the group map allows", [[{}, s.copysets]]);
  e.family("edgestore_placement_warnings", "gauge", "Groups that cannot keep R copies on distinct failure domains", [[{}, s.warnings.length]]);
  const known = s.groups.filter((g) => g.state !== "unknown");
  e.family("edgestore_group_state", "gauge", "1 for each group's current state", s.groups.map((g): [Labels, number] => [{ group: g.group, state: g.state }, 1]));
  e.family("edgestore_group_live_members", "gauge", "Live members of each group", known.map((g): [Labels, number] => [{ group: g.group }, "members" in g ? g.members.filter((m) => m.live).length : 0]));
  e.family("edgestore_group_repair_items_pending", "gauge", "Items a running re-replication sweep has still to go through", known.map((g): [Labels, number] => [{ group: g.group }, "repair" in g && g.repair ? g.repair.short - g.repair.done : 0]));
  const stored = known.flatMap((g) => ("storage" in g && g.storage ? [[g.group, g.storage] as const] : []));
  e.family("edgestore_group_storage_bytes", "gauge", "SQLite storage each group holds (its budget: edgestore_object_storage_budget_bytes)", stored.map(([g, u]): [Labels, number] => [{ group: g }, u.bytes]));
  e.family("edgestore_groups_under_replicated", "gauge", "Groups with a down member not yet re-replicated, or repairing", [[{}, s.groups.filter((g) => g.state === "under-replicated" || g.state === "repairing").length]]);
  const shards = s.shards.filter((x): x is Extract<typeof x, { versions: number }> => "versions" in x);
  e.family("edgestore_shard_versions", "gauge", "Object versions (not removed) each manifest shard lists", shards.map((x): [Labels, number] => [{ shard: x.shard }, x.versions]));
  e.family("edgestore_shard_bytes", "gauge", "Bytes of the versions each shard lists", shards.map((x): [Labels, number] => [{ shard: x.shard }, x.bytes]));
  e.family("edgestore_shard_storage_bytes", "gauge", "SQLite storage each manifest shard holds", shards.map((x): [Labels, number] => [{ shard: x.shard }, x.storage.bytes]));
  e.family("edgestore_object_storage_budget_bytes", "gauge", "What each group and shard keeps its storage to (DO_STORAGE_BUDGET_BYTES)", shards.length > 0 ? [[{}, shards[0]!.storage.budget]] : []);
  e.family("edgestore_shard_develop_seconds", "gauge", "How long settling 'now' took: a snapshot taken now develops in about this long", shards.filter((x) => x.developMs !== null).map((x): [Labels, number] => [{ shard: x.shard }, x.developMs! / 1000]));
  const tot = s.traffic.totals;
  e.family("edgestore_s3_requests_total", "counter", "S3 requests answered, by class", [[{ class: "ok" }, tot.requests - tot.errors4xx - tot.errors5xx], [{ class: "4xx" }, tot.errors4xx], [{ class: "5xx" }, tot.errors5xx]]);
  e.family("edgestore_s3_bytes_total", "counter", "Bytes of S3 request and response bodies (by Content-Length)", [[{ direction: "in" }, tot.bytesIn], [{ direction: "out" }, tot.bytesOut]]);
  return e.toString();
}
