#!/usr/bin/env python3
"""Small helpers for scripts/bench.sh (`make bench`). Standard library only.

  benchlib.py ports K              K base ports, each with base..base+3 free for UDP and TCP
                                   on 127.0.0.1 (SIP port, SIPp media port and its +2 neighbour)
  benchlib.py range N              a block LOW-HIGH of N UDP ports free on 127.0.0.1
  benchlib.py cpu PID              CPU seconds (user+system, all threads) of PID and all its
                                   descendants, from /proc/<pid>/stat; 0 if PID is gone
  benchlib.py tree PID             PID's descendants, deepest first (for cleanup)
  benchlib.py rss PID              resident set size of PID in kB (VmRSS)
  benchlib.py udp                  loopback UDP counters: "arrived delivered dropped"
  benchlib.py stat CSV M           read a SIPp -trace_stat CSV of a run of M calls; prints
                                   "ok=… failed=… retrans=… cps=… setup_p99_ms=…" (cps = M over
                                   the time SIPp took to create them, interpolated between
                                   rows; setup_p99_ms = the ResponseTimeRepartition bucket
                                   holding the 99th percentile of first INVITE → 200, "<10")
  benchlib.py rusage OUT -- CMD…   run CMD, write its CPU seconds (it and its waited-for
                                   children) to OUT, exit with its status; SIGINT/SIGTERM are
                                   passed on to CMD as SIGTERM
"""

import csv
import os
import random
import resource
import signal
import socket
import subprocess
import sys

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOW, HIGH = 20000, 32000  # below the kernel's ephemeral range (32768-60999)
# Single ports (SIP, control, HTTP) come from the top band, RTP ranges from the rest, so a
# large RTP range is never cut up by the signalling ports picked just before it.
SPLIT = 30000


def _free(port, kinds=(socket.SOCK_DGRAM, socket.SOCK_STREAM)):
    socks = []
    try:
        for kind in kinds:
            s = socket.socket(socket.AF_INET, kind)
            socks.append(s)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def ports(k):
    taken, out = set(), []
    for _ in range(5000):
        base = random.randrange(SPLIT, HIGH - 4) & ~1  # even: RTP convention
        span = set(range(base, base + 4))
        if span & taken:
            continue
        if all(_free(p) for p in span):
            out.append(base)
            taken |= span
            if len(out) == k:
                return out
    sys.exit("benchlib: no free ports found")


def port_range(n):
    for _ in range(200):
        low = random.randrange(LOW, max(LOW + 1, SPLIT - n)) & ~1
        if all(_free(p, (socket.SOCK_DGRAM,)) for p in range(low, low + n)):
            return low, low + n - 1
    sys.exit("benchlib: no free port range found")


def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return int(rest[1]), int(rest[11]) + int(rest[12])


def _procs():
    ppid_of, ticks = {}, {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                ppid_of[int(name)], ticks[int(name)] = _stat(name)
            except (OSError, ValueError, IndexError):
                pass
    return ppid_of, ticks


def _descendants(root, ppid_of):
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        kids = [p for p, pp in ppid_of.items() if pp == pid]
        out.extend(kids)
        todo.extend(kids)
    return out


def tree(root):
    ppid_of, _ = _procs()
    mine, pid = set(), os.getpid()  # this helper and the shells that run it
    while pid > 1 and pid not in mine:
        mine.add(pid)
        pid = ppid_of.get(pid, 0)
    return [p for p in reversed(_descendants(root, ppid_of)) if p not in mine]


def cpu(root):
    ppid_of, ticks = _procs()
    if root not in ticks:
        return 0.0
    return sum(ticks.get(p, 0) for p in [root] + _descendants(root, ppid_of)) / CLK_TCK


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def udp():
    with open("/proc/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Udp:")]
    c = dict(zip(lines[0][1:], map(int, lines[1][1:])))
    return c["InDatagrams"] + c["InErrors"], c["InDatagrams"], c["RcvbufErrors"]


def _epoch(field):
    return float(field.split("\t")[-1])


def _p99_bucket(head, row):
    # ResponseTimeRepartition1_<10, _<20, …, _>=1000: counts of calls per set-up time bucket.
    buckets = [
        (name[len("ResponseTimeRepartition1_"):], int(row[i] or 0))
        for i, name in enumerate(head)
        if name.startswith("ResponseTimeRepartition1_") and i < len(row)
    ]
    total = sum(n for _, n in buckets)
    if not total:
        return "-"
    seen = 0
    for label, n in buckets:
        seen += n
        if seen >= 0.99 * total:
            return label
    return buckets[-1][0]


def stat(path, m):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    if len(rows) < 2:
        print("ok=0 failed=%d retrans=0 cps=0 setup_p99_ms=-" % m)
        return
    head, rows = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(head)}

    def num(row, name):
        try:
            return int(row[col[name]])
        except (KeyError, ValueError, IndexError):
            return 0

    last = rows[-1]
    ok = num(last, "SuccessfulCall(C)")
    retrans = num(last, "Retransmissions(C)")
    start = _epoch(last[col["StartTime"]])
    # When were all M calls created? Interpolate between the rows around that moment.
    cps, prev_t, prev_n = 0.0, start, 0
    for row in rows:
        t, n = _epoch(row[col["CurrentTime"]]), num(row, "TotalCallCreated")
        if n >= m:
            t_done = prev_t + (t - prev_t) * (m - prev_n) / max(n - prev_n, 1)
            cps = m / max(t_done - start, 1e-3)
            break
        prev_t, prev_n = t, n
    print(
        "ok=%d failed=%d retrans=%d cps=%.0f setup_p99_ms='%s'"
        % (ok, m - ok, retrans, cps, _p99_bucket(head, last))
    )


def rusage(out, cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    except OSError as e:
        print(f"benchlib: {cmd[0]}: {e}", file=sys.stderr)
        sys.exit(127)

    def forward(signum, frame):
        try:
            child.send_signal(signal.SIGTERM)
        except OSError:
            pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    rc = child.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as f:
        f.write(
            "%.2f\n" % (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        )
    sys.exit(rc if rc >= 0 else 128 - rc)


def main(argv):
    what = argv[1] if len(argv) > 1 else ""
    if what == "ports":
        print(" ".join(map(str, ports(int(argv[2])))))
    elif what == "range":
        print("%d-%d" % port_range(int(argv[2])))
    elif what == "cpu":
        print("%.2f" % cpu(int(argv[2])))
    elif what == "tree":
        print(" ".join(map(str, tree(int(argv[2])))))
    elif what == "rss":
        print(rss(int(argv[2])))
    elif what == "udp":
        print("%d %d %d" % udp())
    elif what == "stat":
        stat(argv[2], int(argv[3]))
    elif what == "rusage" and len(argv) > 4 and argv[3] == "--":
        rusage(argv[2], argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
