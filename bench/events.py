#!/usr/bin/env python3
"""The measurements of bench/events.sh against one running `yun up` (stdlib only).

  events.py --url http://127.0.0.1:PORT --data-dir DIR --function NAME --out DIR
            [--pid YUN_PID] [--n 5000] [--clients 16] [--queue-n 5000] [--warmup 100]
            [--floor-s 5] [--timeout 600]

The function NAME must already be deployed (a no-op, e.g. examples/hello-rust). In order:

  floor     write 100 bytes + fsync in a loop for --floor-s seconds, one thread, in a file
            next to the data directory (same filesystem, checked): the fsyncs per second the
            disk gives one writer. Every event costs at least one fsync (redb commits with one
            fsync each), so this is the ceiling a single-writer store can approach. Then the
            same with pwrite into a preallocated file + fdatasync (no size change, so no ext4
            journal commit per sync), which is closer to redb's commits.
  warm-up   --warmup events (not measured), waited for until they succeed.
  async     --n events `POST /fn/NAME/` with `x-yun-invocation-type: event` from --clients
            threads (keep-alive connections, one request at a time each), then polls every
            0.5 s the function's internal queue (`GET /v1/queues/yun.fn.NAME`) and, once it is
            empty, `GET /v1/functions/NAME/invocations?limit=10000`, until all --n ids are done
            (see wait_done for the records left `queued`). End to end = n / (the last record's updated_ms - the
            first send); enqueue = n / (the last 202 - the first send); per event:
            updated_ms - created_ms (the wait in the queue + the run).
  queue     a queue without consumers: --queue-n single sends, then --queue-n messages in
            batches of 10, then --clients threads receive (max 10, wait_ms 1000) and delete
            (one delete request per receive, its receipts) until all are deleted.
  floor     both again at the end, to see whether the disk changed during the run.

For every phase it records the wall time, yun's CPU time (/proc/PID/stat, all threads), this
client's CPU time, and the flush requests the disk completed (/sys/dev/block/M:m/stat; the
whole disk, so a quiet machine matters). Writes results.json to --out and prints the table.
Only loopback URLs are accepted.
"""

import argparse
import http.client
import json
import math
import os
import sys
import threading
import time
import urllib.parse

TICK = os.sysconf("SC_CLK_TCK")


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_vals)))
    return sorted_vals[k - 1]


def log(msg):
    print(f"[events.py {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- counters around a phase
def disk_stat_path(path):
    """The sysfs stat file of the whole disk holding `path`."""
    st = os.stat(path)
    dev = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    if not os.path.exists(dev):
        return None
    real = os.path.realpath(dev)
    if os.path.exists(os.path.join(real, "partition")):
        real = os.path.dirname(real)
    stat = os.path.join(real, "stat")
    return stat if os.path.exists(stat) else None


class Counters:
    def __init__(self, pid, data_dir):
        self.pid = pid
        self.disk = disk_stat_path(data_dir)

    def snap(self):
        s = {"wall": time.time(), "mono": time.perf_counter(), "client_cpu": time.process_time()}
        if self.pid:
            try:
                f = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()
                s["yun_cpu"] = (int(f[11]) + int(f[12])) / TICK  # utime, stime
            except OSError:
                pass
        if self.disk:
            f = open(self.disk).read().split()
            s["disk_writes"] = int(f[4])
            s["disk_flushes"] = int(f[15]) if len(f) > 15 else None
        return s

    @staticmethod
    def delta(a, b):
        d = {"wall_s": round(b["mono"] - a["mono"], 3),
             "client_cpu_s": round(b["client_cpu"] - a["client_cpu"], 3)}
        if "yun_cpu" in a and "yun_cpu" in b:
            d["yun_cpu_s"] = round(b["yun_cpu"] - a["yun_cpu"], 2)
        for k in ("disk_writes", "disk_flushes"):
            if a.get(k) is not None and b.get(k) is not None:
                d[k] = b[k] - a[k]
        return d


# ---------------------------------------------------------------- HTTP
class Conn:
    """One keep-alive connection; reconnects once if the server closed it."""

    def __init__(self, host, port, token):
        self.host, self.port, self.token = host, port, token
        self.c = None

    def request(self, method, path, body=None, headers=None, auth=False):
        h = dict(headers or {})
        if auth:
            h["Authorization"] = f"Bearer {self.token}"
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        for attempt in (0, 1):
            if self.c is None:
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                t = time.perf_counter()
                self.c.request(method, path, body=body, headers=h)
                r = self.c.getresponse()
                data = r.read()
                return r.status, data, time.perf_counter() - t
            except (http.client.HTTPException, ConnectionError, OSError):
                self.c.close()
                self.c = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def run_clients(n_clients, make_conn, work, items):
    """Runs `work(conn, item) -> record` over `items` from n_clients threads, each with its own
    connection, all released together. Returns (records, first send wall time, errors)."""
    lock = threading.Lock()
    it = iter(items)
    records, errors = [], []
    starts = []
    barrier = threading.Barrier(n_clients)

    def worker():
        conn = make_conn()
        local, first = [], None
        barrier.wait()
        while True:
            with lock:
                item = next(it, None)
            if item is None:
                break
            if first is None:
                first = time.time()
            try:
                local.append(work(conn, item))
            except Exception as e:  # noqa: BLE001 - recorded and reported
                errors.append(f"{type(e).__name__}: {e}")
        with lock:
            records.extend(local)
            if first is not None:
                starts.append(first)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return records, (min(starts) if starts else None), errors


# ---------------------------------------------------------------- phases
def floor(dirpath, seconds, inplace=False):
    """write 100 B + fsync in a loop (appending: every fsync also commits the size change in
    ext4's journal), or with inplace=True pwrite 100 B into a preallocated 4 MiB file (4 KiB
    apart, cycling) + fdatasync, which is closer to what redb does (it rewrites pages of a file
    that already has its size)."""
    path = os.path.join(dirpath, f"fsync-floor.{os.getpid()}")
    buf = b"x" * 99 + b"\n"
    size = 4 << 20
    if inplace:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b"\0" * size)
        os.fsync(fd)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    lat = []
    clock = time.perf_counter
    off = 0
    try:
        t0 = clock()
        while clock() - t0 < seconds:
            t = clock()
            if inplace:
                os.pwrite(fd, buf, off)
                os.fdatasync(fd)
                off = (off + 4096) % size
            else:
                os.write(fd, buf)
                os.fsync(fd)
            lat.append(clock() - t)
        total = clock() - t0
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return {"fsyncs": len(lat), "seconds": round(total, 3), "per_s": round(len(lat) / total, 1),
            "p50_ms": round(pct(lat, 50) * 1000, 3), "p99_ms": round(pct(lat, 99) * 1000, 3)}


def list_records(conn, fn, status=None):
    q = f"status={status}&limit=10000" if status else "limit=10000"
    code, data, _ = conn.request("GET", f"/v1/functions/{fn}/invocations?{q}", auth=True)
    if code != 200:
        raise RuntimeError(f"listing invocations: {code} {data[:300]!r}")
    return json.loads(data)["invocations"]


def backlog(conn, fn):
    """visible + delayed + in flight in the function's internal queue (yun.fn.NAME)."""
    code, data, _ = conn.request("GET", f"/v1/queues/yun.fn.{fn}", auth=True)
    if code != 200:
        return None
    st = json.loads(data)["stats"]
    return st.get("visible", 0) + st.get("delayed", 0) + st.get("in_flight", 0)


def wait_done(conn, fn, ids, timeout, label):
    """Polls (every 0.5 s) until every id has succeeded, or until the function's internal queue
    is empty and none of the ids is running any more. The second case exists because of a race
    in yun at 4d3e309 (crates/triggers `enqueue`): the `queued` record is written after the
    message is committed, so when the dispatcher delivers the event first, the `queued` record
    overwrites the `succeeded` one and stays (attempts 0, updated_ms = created_ms). Returns
    (succeeded records, stale `queued` records), or None on timeout."""
    deadline = time.monotonic() + timeout
    last_log = 0.0
    ok = []
    while True:
        # The queue's stats are cheap; the list (up to 10,000 records) only once it is empty.
        left = backlog(conn, fn)
        if left == 0:
            mine = [r for r in list_records(conn, fn) if r["id"] in ids]
            ok = [r for r in mine if r["status"] == "succeeded"]
            stale = [r for r in mine if r["status"] == "queued" and r.get("attempts", 0) == 0]
            if len(ok) + len(stale) >= len(ids):
                return ok, stale
        now = time.monotonic()
        if now > deadline:
            log(f"{label}: {len(ok)}/{len(ids)} succeeded after {timeout} s; statuses {status_counts(conn, fn)}")
            return None
        if now - last_log > 10:
            log(f"{label}: {left} left in the queue")
            last_log = now
        time.sleep(0.5)


def status_counts(conn, fn):
    counts = {}
    for r in list_records(conn, fn):
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def send_events(a, make_conn, n):
    path = f"/fn/{a.function}/"
    headers = {"x-yun-invocation-type": "event", "Content-Type": "application/json"}

    def work(conn, i):
        status, data, dt = conn.request("POST", path, body=b'{"i": %d}' % i, headers=headers)
        if status != 202:
            raise RuntimeError(f"event {i}: status {status} {data[:200]!r}")
        return (json.loads(data)["invocation_id"], dt, time.time())

    return run_clients(a.clients, make_conn, work, range(n))


def phase_async(a, make_conn, counters, admin):
    log(f"warm-up: {a.warmup} events")
    recs, _, errors = send_events(a, make_conn, a.warmup)
    if errors:
        raise RuntimeError(f"warm-up: {len(errors)} failed sends, e.g. {errors[0]}")
    if wait_done(admin, a.function, {r[0] for r in recs}, a.timeout, "warm-up") is None:
        raise RuntimeError("the warm-up events did not all succeed")
    time.sleep(1)

    log(f"async: {a.n} events from {a.clients} clients")
    c0 = counters.snap()
    sends, t_first, errors = send_events(a, make_conn, a.n)
    c_sent = counters.snap()
    if errors:
        raise RuntimeError(f"async: {len(errors)} failed sends, e.g. {errors[0]}")
    ids = {s[0] for s in sends}
    t_last_202 = max(s[2] for s in sends)
    log(f"async: {len(ids)} accepted in {t_last_202 - t_first:.2f} s; waiting for delivery")
    done = wait_done(admin, a.function, ids, a.timeout, "async")
    if done is None:
        raise RuntimeError("not every event succeeded in time")
    records, stale = done
    # A stale record was delivered before its `queued` record was written: its updated_ms is
    # within about a millisecond after the real completion, so it counts for the end too.
    last_done = max(r["updated_ms"] for r in records + stale) / 1000
    # the counters run until the poll saw the end; cut them at the last completion for the rates
    c1 = counters.snap()
    delays = sorted(r["updated_ms"] - r["created_ms"] for r in records)
    send_lat = sorted(s[1] * 1000 for s in sends)
    done_by_last_202 = sum(1 for r in records if r["updated_ms"] / 1000 <= t_last_202)
    e2e_s = last_done - t_first
    enq_s = t_last_202 - t_first
    return {
        "n": a.n,
        "clients": a.clients,
        "e2e_s": round(e2e_s, 3),
        "e2e_per_s": round(a.n / e2e_s, 1),
        "enqueue_s": round(enq_s, 3),
        "enqueue_per_s": round(a.n / enq_s, 1),
        "accept_p50_ms": round(pct(send_lat, 50), 2),
        "accept_p99_ms": round(pct(send_lat, 99), 2),
        "delay_p50_ms": pct(delays, 50),
        "delay_p99_ms": pct(delays, 99),
        "delay_max_ms": delays[-1],
        "succeeded_records": len(records),
        "stale_queued_records": len(stale),
        "retried": sum(1 for r in records if r.get("attempts", 1) > 1),
        "succeeded_by_last_202": done_by_last_202,
        "drain_after_last_202_s": round(last_done - t_last_202, 3),
        "counters_enqueue": Counters.delta(c0, c_sent),
        "counters_total_to_poll_end": Counters.delta(c0, c1),
    }


def phase_queue(a, make_conn, counters, admin):
    q = f"bench-{os.getpid()}"
    status, data, _ = admin.request("PUT", f"/v1/queues/{q}", body=b"", auth=True)
    if status not in (200, 201):
        raise RuntimeError(f"creating queue {q}: {status} {data[:300]!r}")
    out = {"queue": q, "clients": a.clients}
    body = "x" * 64

    def send_one(conn, i):
        status, data, dt = conn.request("POST", f"/v1/queues/{q}/messages", body={"body": body}, auth=True)
        if status != 201:
            raise RuntimeError(f"send: {status} {data[:200]!r}")
        return (len(json.loads(data)["ids"]), dt)

    def send_batch(conn, i):
        msgs = [{"body": body} for _ in range(10)]
        status, data, dt = conn.request("POST", f"/v1/queues/{q}/messages", body={"messages": msgs}, auth=True)
        if status != 201:
            raise RuntimeError(f"batch send: {status} {data[:200]!r}")
        return (len(json.loads(data)["ids"]), dt)

    for label, work, count in (("send_single", send_one, a.queue_n), ("send_batch10", send_batch, a.queue_n // 10)):
        log(f"queue: {label}: {count} requests from {a.clients} clients")
        c0 = counters.snap()
        recs, t_first, errors = run_clients(a.clients, make_conn, work, range(count))
        c1 = counters.snap()
        if errors:
            raise RuntimeError(f"{label}: {len(errors)} failed, e.g. {errors[0]}")
        msgs = sum(r[0] for r in recs)
        lat = sorted(r[1] * 1000 for r in recs)
        d = Counters.delta(c0, c1)
        out[label] = {"requests": count, "messages": msgs, "msgs_per_s": round(msgs / d["wall_s"], 1),
                      "requests_per_s": round(count / d["wall_s"], 1),
                      "p50_ms": round(pct(lat, 50), 2), "p99_ms": round(pct(lat, 99), 2),
                      "max_ms": round(lat[-1], 2), "counters": d}
    total = out["send_single"]["messages"] + out["send_batch10"]["messages"]

    log(f"queue: receive+delete of {total} messages from {a.clients} clients")
    lock = threading.Lock()
    state = {"deleted": 0, "received": 0, "last_delete": None, "empty": 0}
    seen = set()
    recv_lat, del_lat, errors = [], [], []
    deadline = time.monotonic() + a.timeout
    barrier = threading.Barrier(a.clients)

    def consumer():
        conn = make_conn()
        barrier.wait()
        while time.monotonic() < deadline:
            with lock:
                if state["deleted"] >= total:
                    return
            try:
                status, data, dt = conn.request("POST", f"/v1/queues/{q}/receive",
                                                body={"max": 10, "wait_ms": 1000}, auth=True)
                if status != 200:
                    raise RuntimeError(f"receive: {status} {data[:200]!r}")
                msgs = json.loads(data)["messages"]
                if not msgs:
                    with lock:
                        state["empty"] += 1
                    continue
                status, data2, dt2 = conn.request("POST", f"/v1/queues/{q}/delete",
                                                  body={"receipts": [m["receipt"] for m in msgs]}, auth=True)
                if status != 200:
                    raise RuntimeError(f"delete: {status} {data2[:200]!r}")
                done = time.perf_counter()
                n_del = json.loads(data2)["deleted"]
                with lock:
                    recv_lat.append(dt * 1000)
                    del_lat.append(dt2 * 1000)
                    state["received"] += len(msgs)
                    state["deleted"] += n_del
                    seen.update(m["id"] for m in msgs)
                    state["last_delete"] = done
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                    if len(errors) > 20:
                        return

    c0 = counters.snap()
    threads = [threading.Thread(target=consumer, daemon=True) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c1 = counters.snap()
    if errors:
        raise RuntimeError(f"receive+delete: {len(errors)} errors, e.g. {errors[0]}")
    if state["deleted"] < total:
        raise RuntimeError(f"receive+delete: only {state['deleted']}/{total} deleted in time")
    wall = state["last_delete"] - c0["mono"]
    recv_lat.sort()
    del_lat.sort()
    out["receive_delete"] = {
        "messages": total, "deleted": state["deleted"], "received": state["received"],
        "unique": len(seen), "receives": len(recv_lat), "empty_receives": state["empty"],
        "seconds": round(wall, 3), "msgs_per_s": round(state["deleted"] / wall, 1),
        "receive_p50_ms": round(pct(recv_lat, 50), 2), "receive_p99_ms": round(pct(recv_lat, 99), 2),
        "delete_p50_ms": round(pct(del_lat, 50), 2), "delete_p99_ms": round(pct(del_lat, 99), 2),
        "counters": Counters.delta(c0, c1),
    }
    admin.request("DELETE", f"/v1/queues/{q}", auth=True)
    return out


# ---------------------------------------------------------------- report
def ratio(v, f):
    return f"{v / f:.2f}x" if f else "-"


def per_op(c, ops, key):
    v = c.get(key)
    return f"{v / ops:.2f}" if v is not None and ops else "-"


def table(r):
    fl = r["floor_start"]["per_s"]
    fl_end = r["floor_end"]["per_s"]
    fi = r["floor_inplace_start"]["per_s"]
    fi_end = r["floor_inplace_end"]["per_s"]
    a = r["async"]
    q = r["queue"]
    lines = [
        f"fsync floor: {fl:.0f}/s at the start, {fl_end:.0f}/s at the end "
        f"(write 100 B + fsync, appending, one thread; p50 {r['floor_start']['p50_ms']} ms, p99 {r['floor_start']['p99_ms']} ms); "
        f"in place (pwrite + fdatasync): {fi:.0f}/s, {fi_end:.0f}/s (p50 {r['floor_inplace_start']['p50_ms']} ms). "
        "vs floor = value / the appending floor at the start",
        "",
        "| metric | value | vs floor |",
        "|---|---|---|",
        f"| fsync'd appends, one writer (start / end) | {fl:.0f} / {fl_end:.0f} /s | 1.00x |",
        f"| in-place writes + fdatasync, one writer (start / end) | {fi:.0f} / {fi_end:.0f} /s | {ratio(fi, fl)} |",
        f"| async events, enqueue → function done ({a['n']} events, {a['clients']} clients) | {a['e2e_per_s']:.0f} /s | {ratio(a['e2e_per_s'], fl)} |",
        f"| async enqueue alone (202s, dispatcher running) | {a['enqueue_per_s']:.0f} /s | {ratio(a['enqueue_per_s'], fl)} |",
        f"| 202 latency p50 / p99 | {a['accept_p50_ms']} / {a['accept_p99_ms']} ms | |",
        f"| updated_ms − created_ms p50 / p99 / max ({a['succeeded_records']} succeeded records) | {a['delay_p50_ms']} / {a['delay_p99_ms']} / {a['delay_max_ms']} ms | |",
        f"| events delivered but left `queued` (record race) | {a['stale_queued_records']} of {a['n']} | |",
        f"| queue send, 1 message per request | {q['send_single']['msgs_per_s']:.0f} msg/s | {ratio(q['send_single']['msgs_per_s'], fl)} |",
        f"| queue send p50 / p99 (1 message) | {q['send_single']['p50_ms']} / {q['send_single']['p99_ms']} ms | |",
        f"| queue send, batches of 10 | {q['send_batch10']['msgs_per_s']:.0f} msg/s ({q['send_batch10']['requests_per_s']:.0f} req/s) | {ratio(q['send_batch10']['msgs_per_s'], fl)} |",
        f"| queue send p50 / p99 (batch of 10) | {q['send_batch10']['p50_ms']} / {q['send_batch10']['p99_ms']} ms | |",
        f"| queue receive (10) + delete, {q['clients']} clients | {q['receive_delete']['msgs_per_s']:.0f} msg/s | {ratio(q['receive_delete']['msgs_per_s'], fl)} |",
        f"| receive p99 / delete p99 | {q['receive_delete']['receive_p99_ms']} / {q['receive_delete']['delete_p99_ms']} ms | |",
        "",
        "| phase | ops | wall s | yun CPU (cores) | client CPU (cores) | disk flushes per op | disk writes per op |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(name, ops, c):
        w = c["wall_s"]
        yc = f"{c['yun_cpu_s'] / w:.2f}" if "yun_cpu_s" in c else "-"
        lines.append(f"| {name} | {ops} | {w:.2f} | {yc} | {c['client_cpu_s'] / w:.2f} | "
                     f"{per_op(c, ops, 'disk_flushes')} | {per_op(c, ops, 'disk_writes')} |")

    row("async: sending", a["n"], a["counters_enqueue"])
    row("async: sending to all done (+ ≤0.5 s of polling)", a["n"], a["counters_total_to_poll_end"])
    row("queue: send single", q["send_single"]["messages"], q["send_single"]["counters"])
    row("queue: send batch (per message)", q["send_batch10"]["messages"], q["send_batch10"]["counters"])
    row("queue: send batch (per request)", q["send_batch10"]["requests"], q["send_batch10"]["counters"])
    row("queue: receive+delete (per message)", q["receive_delete"]["deleted"], q["receive_delete"]["counters"])
    row("floor at the start: append + fsync (per fsync)", r["floor_start"]["fsyncs"], r["floor_start"]["counters"])
    row("floor at the start: in place + fdatasync (per fdatasync)", r["floor_inplace_start"]["fsyncs"],
        r["floor_inplace_start"]["counters"])
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--function", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pid", type=int, default=None)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--queue-n", type=int, default=5000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--floor-s", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--floor-dir", default=None, help="default: the data directory's parent")
    a = ap.parse_args()

    u = urllib.parse.urlsplit(a.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"events.py: refusing non-loopback URL {a.url}")
    if a.n + a.warmup > 10_000:
        sys.exit("events.py: --n + --warmup must be at most 10000 (the invocation records kept per function)")
    token = open(os.path.join(a.data_dir, "admin-token")).read().strip()
    make_conn = lambda: Conn(u.hostname, u.port or 80, token)  # noqa: E731
    admin = make_conn()
    counters = Counters(a.pid, a.data_dir)
    floor_dir = a.floor_dir or os.path.dirname(os.path.abspath(a.data_dir))
    if os.stat(floor_dir).st_dev != os.stat(a.data_dir).st_dev:
        sys.exit(f"events.py: {floor_dir} is not on the data directory's filesystem")

    r = {"url": a.url, "function": a.function, "disk_stat": counters.disk,
         "loadavg_start": open("/proc/loadavg").read().split()[:3]}
    def floors(when):
        for key, inplace in (("floor", False), ("floor_inplace", True)):
            what = "pwrite 100 B + fdatasync (in place)" if inplace else "write 100 B + fsync (append)"
            log(f"{key} ({when}): {a.floor_s} s of {what} in {floor_dir}")
            c0 = counters.snap()
            f = floor(floor_dir, a.floor_s, inplace)
            f["counters"] = Counters.delta(c0, counters.snap())
            r[f"{key}_{when}"] = f
            log(f"{key} ({when}): {f['per_s']}/s, p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms")

    floors("start")
    r["async"] = phase_async(a, make_conn, counters, admin)
    log(f"async: {r['async']['e2e_per_s']} events/s end to end, {r['async']['enqueue_per_s']} /s enqueue")
    r["queue"] = phase_queue(a, make_conn, counters, admin)
    floors("end")
    r["loadavg_end"] = open("/proc/loadavg").read().split()[:3]

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(r, f, indent=1)
    print(table(r))


if __name__ == "__main__":
    main()
