#!/usr/bin/env bash
# Single-node Ceph (mon + memstore OSD, no mgr, auth none) + radosgw on 127.0.0.1, all under $D.
# Adapted from the reference ceph-rgw-example.sh: the monitor port is a parameter (the example fixes 6789),
# waits are bounded, readiness is a TCP connect (no curl), the memstore is 1 GiB, and the last line is
# machine-readable for test/tiering/ceph-rgw.ts, which stops the daemons by the pids in $D/run/*.pid.
# beast runs with tcp_nodelay=1: without it every small ranged GET waited about 40 ms (Nagle against
# delayed ACKs on loopback), 20 times the 2 ms it takes with it.
# Needs: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw
# Env: D (state dir, required), PORT (rgw), MON_PORT, ACCESS_KEY, SECRET_KEY, MEMSTORE_BYTES (the OSD's
# capacity, held in RAM; default 1 GiB. RGW frees a deleted object's data only at its next garbage collection,
# hours later, so what a run uploads adds up).
set -euo pipefail
: "${D:?D must name a fresh state directory}"
PORT=${PORT:-7480}; MON_PORT=${MON_PORT:-6789}
ACCESS_KEY=${ACCESS_KEY:-TESTKEY}; SECRET_KEY=${SECRET_KEY:-TESTSECRET}
MEMSTORE_BYTES=${MEMSTORE_BYTES:-1073741824}
rm -rf "$D"; mkdir -p "$D"/{run,log,mon-a,osd-0}
FSID=$(cat /proc/sys/kernel/random/uuid)
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
run dir = $D/run
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
keyring = $D/keyring
ms bind msgr2 = false
[mon]
mon data = $D/mon-\$id
[osd]
osd data = $D/osd-\$id
osd max object name len = 256
osd max object namespace len = 64
osd crush update on start = false
osd class update on start = false
[client.rgw.local]
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
CONF
C="-c $D/ceph.conf"
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --add a "v1:127.0.0.1:$MON_PORT" --fsid "$FSID" "$D/monmap" >/dev/null
ceph-mon $C --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
ceph-mon $C -i a
U=$(cat /proc/sys/kernel/random/uuid)
ID=$(ceph $C osd create "$U")
ceph-osd $C -i "$ID" --mkfs --osd-uuid "$U" >/dev/null 2>&1
ceph $C osd crush add-bucket local host >/dev/null 2>&1
ceph $C osd crush move local root=default >/dev/null 2>&1
ceph $C osd crush add "osd.$ID" 1.0 host=local >/dev/null 2>&1
ceph-osd $C -i "$ID" 2>/dev/null
wait_for() { # what, command...: up to 60 s
  local what=$1; shift
  for _ in $(seq 200); do "$@" && return 0; sleep 0.3; done
  echo "timed out waiting for $what; logs in $D/log" >&2; exit 1
}
osd_up() { ceph $C osd stat 2>/dev/null | grep -q '1 up'; }
rgw_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
wait_for "the OSD" osd_up
radosgw $C -n client.rgw.local
wait_for "radosgw on port $PORT" rgw_listening
radosgw-admin $C user create --uid=test --display-name=test --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
echo "READY port=$PORT pids=$(cat "$D"/run/*.pid | tr '\n' ' ')"
