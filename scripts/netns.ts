// Sites made of Linux network namespaces, for tests and `bench:wan` that run storage targets
// across a real network on this one machine. A site is a namespace joined to the host by a veth
// pair (host 10.77.K.1, site 10.77.K.2), its bandwidth limited both ways with `tc tbf`; delay
// comes from a DelayRelay the caller runs on the host side (this kernel has no netem). A NATed
// site puts its targets one namespace further, behind a router namespace that masquerades
// (nftables): they reach the host, and nothing on the host can open a connection to them.
// Namespaces cannot reach each other (the host does not forward), so targets in different
// sites cannot link as chain-replication peers. Needs root, `ip` and `tc` (and `nft` for NAT).

import { execFileSync } from "node:child_process";
import { connect } from "node:net";

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
}

function has(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Why sites cannot be made here, or null if they can (root, ip, tc; nft when `nat`). */
export function sitesUnavailable(o: { nat?: boolean } = {}): string | null {
  if (process.getuid?.() !== 0) return "network namespaces need root";
  for (const c of ["ip", "tc", ...(o.nat ? ["nft"] : [])]) if (!has(c)) return `\`${c}\` is not installed (iproute2${c === "nft" ? ", nftables" : ""})`;
  return null;
}

export interface SiteOptions {
  /** 0..250, unique among the sites alive at once: it picks the addresses. */
  index: number;
  /** Bandwidth each way, in Mbit/s (null: unlimited). */
  mbit?: number | null;
  /** Targets behind a masquerading router: outbound connections only. */
  nat?: boolean;
}

export class Site {
  /** The namespace targets run in. */
  readonly netns: string;
  /** The host's address on the site's link: where a relay for the site listens. */
  readonly hostAddress: string;
  /** The targets' own address (peer and metrics listeners). */
  readonly address: string;
  private readonly made: string[] = [];

  private constructor(o: SiteOptions) {
    const tag = `es${process.pid % 100000}x${o.index}`;
    this.netns = o.nat ? `${tag}t` : tag;
    this.hostAddress = `10.77.${o.index}.1`;
    this.address = o.nat ? `10.78.${o.index}.2` : `10.77.${o.index}.2`;
  }

  /** Make the namespaces, links and limits; remove() undoes it. */
  static create(o: SiteOptions): Site {
    const s = new Site(o);
    try {
      s.build(o);
    } catch (e) {
      s.remove();
      throw e;
    }
    return s;
  }

  private build(o: SiteOptions): void {
    const tag = `es${process.pid % 100000}x${o.index}`;
    // The namespace on the host's link: the site itself, or its router.
    const edge = o.nat ? `${tag}r` : this.netns;
    this.addNetns(edge);
    const [hostIf, edgeIf] = [`${tag}h`, `${tag}e`];
    run("ip", ["link", "add", hostIf, "type", "veth", "peer", "name", edgeIf]);
    run("ip", ["link", "set", edgeIf, "netns", edge]);
    run("ip", ["addr", "add", `${this.hostAddress}/30`, "dev", hostIf]);
    run("ip", ["link", "set", hostIf, "up"]);
    run("ip", ["-n", edge, "addr", "add", `10.77.${o.index}.2/30`, "dev", edgeIf]);
    run("ip", ["-n", edge, "link", "set", edgeIf, "up"]);
    if (o.mbit) {
      // Both directions: the host side's egress is the site's download, the edge's its upload.
      const burst = `${Math.max(32, Math.ceil(o.mbit / 8))}kb`;
      run("tc", ["qdisc", "add", "dev", hostIf, "root", "tbf", "rate", `${o.mbit}mbit`, "burst", burst, "latency", "200ms"]);
      run("ip", ["netns", "exec", edge, "tc", "qdisc", "add", "dev", edgeIf, "root", "tbf", "rate", `${o.mbit}mbit`, "burst", burst, "latency", "200ms"]);
    }
    if (!o.nat) return;
    // The targets' namespace behind the router: a default route through it, and the router
    // rewrites their connections to its own address; the host has no route back in.
    this.addNetns(this.netns);
    const [inIf, outIf] = [`${tag}i`, `${tag}o`];
    run("ip", ["link", "add", inIf, "netns", edge, "type", "veth", "peer", "name", outIf, "netns", this.netns]);
    run("ip", ["-n", edge, "addr", "add", `10.78.${o.index}.1/30`, "dev", inIf]);
    run("ip", ["-n", edge, "link", "set", inIf, "up"]);
    run("ip", ["-n", this.netns, "addr", "add", `${this.address}/30`, "dev", outIf]);
    run("ip", ["-n", this.netns, "link", "set", outIf, "up"]);
    run("ip", ["-n", this.netns, "route", "add", "default", "via", `10.78.${o.index}.1`]);
    run("ip", ["netns", "exec", edge, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    execFileSync("ip", ["netns", "exec", edge, "nft", "-f", "-"], {
      input: `table ip nat {\n  chain post {\n    type nat hook postrouting priority 100;\n    oifname "${edgeIf}" masquerade\n  }\n}\n`,
      stdio: ["pipe", "ignore", "pipe"],
    });
  }

  private addNetns(name: string): void {
    run("ip", ["netns", "add", name]);
    this.made.push(name);
    run("ip", ["-n", name, "link", "set", "lo", "up"]);
  }

  /** The command prefix that runs a program in the site. */
  get exec(): string[] {
    return ["ip", "netns", "exec", this.netns];
  }

  /** Whether the host can open a TCP connection to `port` on the targets' address (a NATed site: never). */
  reachableFromHost(port: number): Promise<boolean> {
    return new Promise((resolve) => {
      const s = connect({ host: this.address, port, timeout: 2_000 });
      const done = (ok: boolean) => {
        s.destroy();
        resolve(ok);
      };
      s.once("connect", () => done(true));
      s.once("timeout", () => done(false));
      s.once("error", () => done(false));
    });
  }

  /** Delete the namespaces (their links go with them). */
  remove(): void {
    for (const ns of this.made.reverse()) {
      try {
        run("ip", ["netns", "del", ns]);
      } catch {
        // Already gone: removing twice is what a test's cleanup after a failed build does.
      }
    }
    this.made.length = 0;
  }
}
