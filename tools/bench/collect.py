#!/usr/bin/env python3
"""collect.py -- the benchmark's ear: receives the once-a-second Report
datagrams that hb-server and hb-client send with --monitor (proto/hongbao.proto:
a varint length, then a Frame whose field 10 is the Report) and writes one TSV
line per report, flushed at once so the benchmark can judge a step while the
run goes on.  The per-second latency histogram is kept whole ("index:count"
pairs), so any set of seconds can be merged exactly later (series.py).

With --relay HOST:PORT every datagram is also forwarded unchanged, so a live
hb-monitor dashboard can watch the same run.  Stops on SIGTERM/SIGINT.
Pure standard library: the wire format is decoded by hand."""
import argparse
import signal
import socket
import sys
import time

# Report field numbers (proto/hongbao.proto) -> TSV column, in column order.
FIELDS = {1: "role", 2: "instance", 3: "second", 4: "boot_id", 5: "connections", 6: "requests",
          7: "replies", 8: "wins", 9: "losses", 10: "packets_created", 11: "amount_won",
          12: "notices", 13: "opens", 14: "errors", 15: "reports_dropped", 16: "chats",
          17: "packets_won", 23: "target_qps"}
COLUMNS = ["recv_us"] + list(FIELDS.values()) + ["lat"]
ROLES = {1: "server", 2: "client"}


def varint(buf, i):
    """Decode a varint at buf[i]; returns (value, next index)."""
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(buf):
    """Yield (field number, wire type, value) of one message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = int.from_bytes(buf[i:i + 8], "little"), i + 8
        elif wt == 5:
            v, i = int.from_bytes(buf[i:i + 4], "little"), i + 4
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, v


def packed(v, wt):
    """A repeated varint field: packed (bytes) or one element per occurrence."""
    if wt == 0:
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = varint(v, i)
        out.append(x)
    return out


def decode(dgram):
    """Datagram -> dict of the Report's fields, or None if it is not one."""
    n, i = varint(dgram, 0)
    frame = dgram[i:i + n]
    for num, wt, v in fields(frame):
        if num == 10 and wt == 2:
            rep = {name: 0 for name in FIELDS.values()}
            idx, cnt = [], []
            for f, fwt, fv in fields(v):
                if f == 20:
                    idx += packed(fv, fwt)
                elif f == 21:
                    cnt += packed(fv, fwt)
                elif f in FIELDS:
                    rep[FIELDS[f]] = fv.decode("utf-8", "replace") if f == 2 else fv
            rep["role"] = ROLES.get(rep["role"], "unknown")
            rep["lat"] = ",".join("%d:%d" % p for p in zip(idx, cnt)) or "-"
            return rep
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True, metavar="ADDR:PORT", help="UDP address the reports are sent to")
    ap.add_argument("--out", required=True, metavar="FILE", help="TSV file to write (replaced)")
    ap.add_argument("--relay", metavar="HOST:PORT", help="also forward every datagram here (hb-monitor --udp)")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # 17 clients + server report at once
    sock.bind((host, int(port)))
    sock.settimeout(0.5)
    relay = None
    if a.relay:
        rh, rp = a.relay.rsplit(":", 1)
        relay = (rh, int(rp))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    bad = 0
    with open(a.out, "w", buffering=1) as out:
        out.write("\t".join(COLUMNS) + "\n")
        while not stop:
            try:
                dgram = sock.recv(65536)
            except socket.timeout:
                continue
            except InterruptedError:
                continue
            if relay:
                sock.sendto(dgram, relay)
            try:
                rep = decode(dgram)
            except (IndexError, ValueError):
                rep = None
            if rep is None:
                bad += 1
                continue
            rep["recv_us"] = int(time.time() * 1e6)
            out.write("\t".join(str(rep[c]) for c in COLUMNS) + "\n")
    if bad:
        print("collect.py: %d datagram(s) were not reports" % bad, file=sys.stderr)


if __name__ == "__main__":
    main()
