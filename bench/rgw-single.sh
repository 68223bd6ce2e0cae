#!/usr/bin/env bash
: "${SCRATCH:=${TMPDIR:-/tmp}/perf}"
# The anchor that `npm run bench:compare` measures us against: a single-node Ceph (Debian
# bookworm: 16.2.15 pacific) with its RADOS Gateway on loopback, no mgr, auth none, one
# bluestore OSD on a sparse 20 GiB file, pool size 1. For benchmarking only.
# Prereq: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd ceph-common
# Usage: rgw-single.sh start [dir=$SCRATCH/ceph]   -> S3 on http://127.0.0.1:7480, keys BENCHKEY/BENCHSECRET
#        rgw-single.sh stop  [dir]                  -> kills the daemons by the pids in dir/run/*.pid
set -euo pipefail
CMD=${1:-start}; D=${2:-$SCRATCH/ceph}
if [ "$CMD" = stop ]; then
  for p in "$D"/run/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  exit 0
fi
rm -rf "$D"; mkdir -p "$D"/{mon,osd0,rgw,run,log}
FSID=$(cat /proc/sys/kernel/random/uuid)
cat > "$D/ceph.conf" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789]
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
run dir = $D/run
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
public network = 127.0.0.0/8
ms bind ipv4 = true
ms bind ipv6 = false
mon data avail warn = 1
mon data avail crit = 0
osd memory target = 2147483648
[mon]
mon data = $D/mon/\$name
[osd]
osd data = $D/osd\$id
osd objectstore = bluestore
# the block path must NOT be <osd data>/block (mkfs symlinks that name to it -> ELOOP)
bluestore block path = $D/osd\$id.block
bluestore block create = true
bluestore block size = 21474836480
bluestore block db create = false
bluestore block wal create = false
bluestore fsck on mount = false
osd max object name len = 460
osd max object namespace len = 64
[client.rgw.a]
# radosgw defaults ms_mon_client_mode to "secure", which auth=none cannot do (EACCES -13 at connect)
ms mon client mode = crc secure
rgw frontends = beast endpoint=127.0.0.1:7480 tcp_nodelay=1
rgw data = $D/rgw
rgw dns name = localhost
EOF
C=(-c "$D/ceph.conf")
monmaptool --create --clobber --fsid "$FSID" --addv a '[v2:127.0.0.1:3300,v1:127.0.0.1:6789]' "$D/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap"
ceph-mon "${C[@]}" -i a
U=$(cat /proc/sys/kernel/random/uuid)
ID=$(timeout 30 ceph "${C[@]}" osd new "$U")
timeout 180 ceph-osd "${C[@]}" -i "$ID" --mkfs --osd-uuid "$U" 2>/dev/null
ceph-osd "${C[@]}" -i "$ID"
for i in $(seq 30); do timeout 10 ceph "${C[@]}" osd stat 2>/dev/null | grep -q '1 up' && break; sleep 1; done
radosgw "${C[@]}" -n client.rgw.a
for i in $(seq 60); do ss -ltn | grep -q '127.0.0.1:7480' && break; sleep 1; done
timeout 60 radosgw-admin "${C[@]}" user create --uid bench --display-name bench --access-key BENCHKEY --secret-key BENCHSECRET >/dev/null
echo "RGW up: http://127.0.0.1:7480 (BENCHKEY/BENCHSECRET); pids: $(cat "$D"/run/*.pid | tr '\n' ' ')"
