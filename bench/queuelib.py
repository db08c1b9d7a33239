#!/usr/bin/env python3
"""Helpers for the `queue` phase of scripts/bench.sh (bench/queue.sh). Standard library only.

  queuelib.py config OUT KEY=VALUE…    the switch's TOML for the queue bench: AGENTS agent
                                       extensions FIRST.. (password PASSWORD) in group 3003
                                       (longest-idle, ring_timeout 5, max_wait 60, wrap_up 0),
                                       a trunk at 127.0.0.1:CALLER_PORT and access number 1000
                                       → group:3003, recording off, music_on_hold = MUSIC,
                                       [tts] engine = TTS when TTS is given and not empty
  queuelib.py agents OUT CONTACT K=V…  the REGISTER injection CSV: one line per agent,
                                       "number;x;[authentication username=… password=…];CONTACT"
  queuelib.py calllog DB PREFIX CALLS FIRST AGENTS [WAIT_S]
                                       the call-log rows whose callid starts with PREFIX (the
                                       callers' -cid_str), once CALLS of them are written (or
                                       WAIT_S seconds without a new one); prints shell
                                       assignments: rows distinct dup missing answered lost
                                       agents max_wait_s mean_wait_s max_qdur bad_qdur other
  queuelib.py queue_info URL           GET URL (QUEUE_INFO); prints the body on one line, or
                                       "ERROR …"
"""

import json
import sqlite3
import sys
import time
import urllib.request


def kv(args):
    out = {}
    for a in args:
        k, _, v = a.partition("=")
        out[k] = v
    return out


def config(out, a):
    first, n = int(a["FIRST"]), int(a["AGENTS"])
    lines = [
        "[sip]",
        f'listen = "127.0.0.1:{a["SIP_PORT"]}"',
        'advertise = "127.0.0.1"',
        "",
        "[media]",
        f'rtp_ports = "{a["RTP"]}"',
        f'music_on_hold = "{a["MUSIC"]}"',
        "",
        "[http]",
        f'listen = "127.0.0.1:{a["HTTP_PORT"]}"',
        "",
        "[database]",
        f'url = "sqlite://{a["DB"]}?mode=rwc"',
        "",
        "[storage]",
        f'dir = "{a["DATA"]}"',
        "",
        "[recording]",
        "enabled = false",
        "",
    ]
    if a.get("TTS"):
        # The queue speaks "You are number N in the queue" (TTS) before the music.
        lines += ["[tts]", f'engine = "{a["TTS"]}"', ""]
    lines += [
        "[log]",
        'level = "warn"',
        "",
        "[[groups]]",
        'number = "3003"',
        'name = "bench queue"',
        'strategy = "longest-idle"',
        "ring_timeout = 5",
        "max_wait = 60",
        "wrap_up = 0",
        "",
        "[[trunks]]",
        'name = "callers"',
        f'host = "127.0.0.1:{a["CALLER_PORT"]}"',
        "",
        "[[access_numbers]]",
        'number = "1000"',
        'target = "group:3003"',
        "",
    ]
    for i in range(first, first + n):
        lines += [
            "[[extensions]]",
            f'number = "{i}"',
            f'password = "{a["PASSWORD"]}"',
            'groups = ["3003"]',
            "",
        ]
    with open(out, "w") as f:
        f.write("\n".join(lines))


def agents(out, contact, a):
    first, n, pw = int(a["FIRST"]), int(a["AGENTS"]), a["PASSWORD"]
    with open(out, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(first, first + n):
            # SIPp expands [field2] first, then the [authentication …] keyword it contains:
            # per-line credentials (a literal [authentication username=[field0] …] does not
            # work in SIPp 3.6.1).
            f.write(f"{i};x;[authentication username={i} password={pw}];{contact}\n")


def calllog(db, prefix, calls, first, n, wait_s):
    agent_set = {str(i) for i in range(first, first + n)}
    deadline, last_count, last_change = time.time() + 120, -1, time.time()
    q = (
        'SELECT callid, state, callee, "queueTime", "queueDuration", "pickupTime", business '
        "FROM calllog WHERE substr(callid, 1, ?) = ?"
    )
    while True:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
            rows = con.execute(q, (len(prefix), prefix)).fetchall()
            con.close()
        except sqlite3.Error as e:
            print(f"queuelib: {e}", file=sys.stderr)
            rows = []
        now = time.time()
        if len(rows) != last_count:
            last_count, last_change = len(rows), now
        if len(rows) >= calls or now - last_change > wait_s or now > deadline:
            break
        time.sleep(0.5)
    per_call = {}
    for r in rows:
        per_call.setdefault(r[0], []).append(r)
    answered, waits, qdurs, callees, other = 0, [], [], set(), {}
    for cid, rs in per_call.items():
        if len(rs) != 1:
            continue
        _, state, callee, qtime, qdur, pickup, business = rs[0]
        if state == "STATE_RECEIVED" and callee in agent_set:
            answered += 1
            callees.add(callee)
            if qtime and pickup:
                waits.append((pickup - qtime) / 1000.0)
            qdurs.append(qdur)
        else:
            key = f"{state}/{callee or '-'}/{business or '-'}"
            other[key] = other.get(key, 0) + 1
    distinct = len(per_call)
    dup = sum(1 for rs in per_call.values() if len(rs) > 1)
    bad_qdur = sum(1 for d in qdurs if not 0 <= d <= 1)
    print(
        "rows=%d distinct=%d dup=%d missing=%d answered=%d lost=%d agents=%d "
        "max_wait_s=%s mean_wait_s=%s max_qdur=%s bad_qdur=%d other='%s'"
        % (
            len(rows),
            distinct,
            dup,
            max(calls - distinct, 0),
            answered,
            calls - answered,
            len(callees),
            "%.2f" % max(waits) if waits else "-",
            "%.3f" % (sum(waits) / len(waits)) if waits else "-",
            max(qdurs) if qdurs else "-",
            bad_qdur,
            ",".join(f"{k}:{v}" for k, v in sorted(other.items())),
        )
    )


def queue_info(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read().decode("utf-8", "replace")
        print(json.dumps(json.loads(body), separators=(",", ":")))
    except Exception as e:  # noqa: BLE001 - any failure is reported, not raised
        print(f"ERROR {e}")


def main(argv):
    what = argv[1] if len(argv) > 1 else ""
    if what == "config" and len(argv) > 2:
        config(argv[2], kv(argv[3:]))
    elif what == "agents" and len(argv) > 3:
        agents(argv[2], argv[3], kv(argv[4:]))
    elif what == "calllog" and len(argv) > 6:
        wait = float(argv[7]) if len(argv) > 7 else 10
        calllog(argv[2], argv[3], int(argv[4]), int(argv[5]), int(argv[6]), wait)
    elif what == "queue_info" and len(argv) > 2:
        queue_info(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
