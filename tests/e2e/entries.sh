#!/usr/bin/env bash
# Several entry nodes (hb-client --server A,B): a client whose first entry
# is down starts anyway.  The server listens on 127.0.0.3 only, so a
# connect to 127.0.0.2 (the first entry) is refused; every user must end
# logged in through the second entry.  The same client given only the
# dead entry logs in nobody: the first half is the fallback's doing.
. "$(dirname "$0")/lib.sh"
PORTS=$(free_ports 1)
P=$(first_port "$PORTS")
start server "$BIN/hb-server" --listen 127.0.0.3 --sets 2 --port "$PORTS" --users 400 --rate 100 --total 100 \
  --journal "$WORK/j" --no-fsync --stats-file "$WORK/server.stats" --stats-every 200
wait_until 10 listening "$P" || fail "server did not listen"
start c1 "$BIN/hb-client" --server 127.0.0.2,127.0.0.3 --port "$PORTS" --users 400 --uid-to 400 --qps 0 \
  --stats-file "$WORK/c1.stats"
hb_wait_stat 20 "$WORK/server.stats" logins -ge 400 || fail "logged in through the second entry: $(stat --default 0 "$WORK/server.stats" logins) of 400"
ok "all 400 users logged in although the first entry (127.0.0.2) refuses every connect"
stop c1
# Negative control, same flags with the dead entry alone: nobody logs in.
start c2 "$BIN/hb-client" --server 127.0.0.2 --port "$PORTS" --users 400 --uid-to 400 --qps 0 --stats-file "$WORK/c2.stats"
sleep 3
before=$(stat --default 0 "$WORK/server.stats" logins)
expect_eq "logins with the dead entry alone (server's count unchanged)" "$before" 400
stop c2
