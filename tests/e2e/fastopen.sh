#!/usr/bin/env bash
# TCP Fast Open end to end (hb-server --fastopen, hb-client --fastopen): the
# Login rides in the SYN.  Runs in a network namespace of its own, because
# the sysctl that lets a server take data in a SYN (net.ipv4.tcp_fastopen
# bit 2) is per namespace: the box's own setting is left as it is.
# Asserts that every user logged in, that most Logins came in a SYN by the
# client's count and by the kernel's (TcpExtTCPFastOpenPassive, this
# namespace's), and that a client with a cookie still logs everyone in on a
# server without --fastopen (the kernel resends the data after a plain
# handshake: nothing lost).  Exits 77 (skipped) without root or namespaces.
if [ -z "${HB_FASTOPEN_NS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "skip: needs root (a network namespace)"; exit 77; }
  unshare --net true 2>/dev/null || { echo "skip: no network namespaces here"; exit 77; }
  HB_FASTOPEN_NS=1 exec unshare --net bash "$0" "$@"
fi
ip link set lo up
sysctl -qw net.ipv4.tcp_fastopen=3
. "$(dirname "$0")/lib.sh"
USERS=4000

passive() { awk '/^TcpExt:/ { if (!h) { split($0, k); h = 1 } else { split($0, v); for (i in k) if (k[i] == "TCPFastOpenPassive") print v[i] } }' /proc/net/netstat; }

# run NAME SERVER_FLAGS...: one server and one client of $USERS users, shaking a little, to the end
run() {
  local name=$1 ports
  shift
  ports=$(free_ports 2)
  start "server_$name" "$BIN/hb-server" "$@" --sets 2 --port "$ports" --users $USERS --rate 0 --total 0 \
    --journal "$WORK/$name.journal" --stats-file "$WORK/$name.server.stats"
  wait_until 10 listening "$(first_port "$ports")" || fail "$name: server did not listen"
  start "client_$name" "$BIN/hb-client" --fastopen --server 127.0.0.1 --port "$ports" --uid-from 0 --uid-to $USERS \
    --users $USERS --threads 2 --qps 1000 --duration 4 --drain 3 --stats-file "$WORK/$name.client.stats"
  wait_exit "client_$name" 60
  stop "server_$name"
}

p0=$(passive)
run fo --fastopen 1024
p1=$(passive)
expect_eq "fastopen: client logins" "$(stat "$WORK/fo.client.stats" logins)" $USERS
expect_eq "fastopen: server logins" "$(stat "$WORK/fo.server.stats" logins)" $USERS
expect_ge "fastopen: connects with the Login in the SYN (client)" "$(stat "$WORK/fo.client.stats" fastopen_connects)" \
  $((USERS * 9 / 10))
expect_ge "fastopen: SYNs with data taken (kernel, TCPFastOpenPassive)" $((p1 - p0)) $((USERS * 9 / 10))
expect_eq "fastopen: failed connects" "$(stat "$WORK/fo.client.stats" connect_fail)" 0

# the client holds a cookie now; the server does not take data in SYNs
run plain
p2=$(passive)
expect_eq "no --fastopen on the server: client logins" "$(stat "$WORK/plain.client.stats" logins)" $USERS
expect_eq "no --fastopen on the server: SYNs with data taken" $((p2 - p1)) 0
expect_eq "no --fastopen on the server: failed connects" "$(stat "$WORK/plain.client.stats" connect_fail)" 0
log "fast open: $((p1 - p0)) of $USERS Logins in the SYN; without --fastopen on the server all $USERS logged in too"

# --echo without --echo-login writes nothing at connect: a Fast Open connect would never send its SYN
rc=0
"$BIN/hb-client" --fastopen --echo --uid-to 10 >"$WORK/misuse.log" 2>&1 || rc=$?
expect_eq "--fastopen --echo without --echo-login: usage error" "$rc" 2
grep -q -- "--fastopen with --echo needs --echo-login" "$WORK/misuse.log" || fail "no clear message: $(cat "$WORK/misuse.log")"
