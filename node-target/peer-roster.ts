// The targets this one may exchange chain frames with: the members of its groups, as each group
// last listed them (address and certificate fingerprint, from what each member told its group
// over its authenticated connection). A peer link is accepted only from a certificate on this
// roster, and made only to an address on it, pinned to that address's certificate; a target
// that leaves every group (revoked, retired) leaves the roster, and its links are closed.

import type { CertFingerprint } from "../common/ids.ts";
import type { PeerEntry } from "../common/protocol.ts";

export class PeerRoster {
  private readonly byGroup = new Map<number, readonly PeerEntry[]>();
  private byAddress = new Map<string, CertFingerprint>();
  private fingerprints = new Set<CertFingerprint>();

  /**
   * A group's members now. Returns the fingerprints no group lists any more (their links are to
   * close) and the addresses whose certificate changed or that are gone (their outgoing links too).
   */
  set(group: number, peers: readonly PeerEntry[]): { gone: Set<CertFingerprint>; moved: Set<string> } {
    if (peers.length === 0) this.byGroup.delete(group);
    else this.byGroup.set(group, peers);
    return this.rebuild();
  }

  /** A group this target no longer serves: its members count no more. */
  drop(group: number): { gone: Set<CertFingerprint>; moved: Set<string> } {
    this.byGroup.delete(group);
    return this.rebuild();
  }

  /** The certificate the target at `address` must present, or null: not a peer of any group. */
  pinFor(address: string): CertFingerprint | null {
    return this.byAddress.get(address) ?? null;
  }

  admits(fingerprint: CertFingerprint): boolean {
    return this.fingerprints.has(fingerprint);
  }

  private rebuild(): { gone: Set<CertFingerprint>; moved: Set<string> } {
    const byAddress = new Map<string, CertFingerprint>();
    const fingerprints = new Set<CertFingerprint>();
    for (const peers of this.byGroup.values()) {
      for (const p of peers) {
        fingerprints.add(p.cert);
        // Two members claiming one address: the first group's word stands; a link pinned to the
        // wrong one fails its handshake, and the group then sends those copies directly.
        if (!byAddress.has(p.address)) byAddress.set(p.address, p.cert);
      }
    }
    const gone = new Set([...this.fingerprints].filter((f) => !fingerprints.has(f)));
    const moved = new Set([...this.byAddress].filter(([a, f]) => byAddress.get(a) !== f).map(([a]) => a));
    this.byAddress = byAddress;
    this.fingerprints = fingerprints;
    return { gone, moved };
  }
}
