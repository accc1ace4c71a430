#!/usr/bin/env python3
"""Load generator of bench/storage.sh: S3 PUT/GET with real, SigV4-signing boto3 clients, and the
raw filesystem floor of the same sizes, from the same harness.

  s3load.py run --target s3 --endpoint URL --key AK --secret SK --bucket B --op put|get ...
  s3load.py run --target fs --dir DIR --op write-fsync|write-fsync-rename-dirsync|read ...
  s3load.py prepare --target s3|fs ...   objects (files) for the GET (read) cells
  s3load.py clean --endpoint ... --bucket B --prefix P   deletes what the PUT cells wrote
  s3load.py null-server --port P         a trivial S3: answers every request without storing
  s3load.py report --out DIR             results.jsonl -> the markdown table

`run` starts --procs worker processes with --clients threads in all (one boto3 client per
thread; processes so the GIL does not cap the load), lets them run --warmup seconds unmeasured,
then counts the operations that complete in the next --duration seconds. It samples the CPU
time of its workers (and of --pid, the server) at both ends of the measured window and prints
one JSON line.
"""

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import threading
import time

WRITE_CHUNK = 1 << 20  # yun's blobs.rs: writes of up to 1 MiB
READ_CHUNK = 256 << 10  # yun's blobs.rs: reads of 256 KiB
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def loadavg():
    return float(open("/proc/loadavg").read().split()[0])


# ---------------------------------------------------------------- operations


def s3_client(a):
    import boto3
    from botocore.config import Config

    cfg = Config(
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1},  # an error is counted, not retried
        max_pool_connections=1,
        connect_timeout=10,
        read_timeout=120,
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=a.endpoint,
        aws_access_key_id=a.key,
        aws_secret_access_key=a.secret,
        region_name=a.region,
        config=cfg,
    )


def get_keys(a):
    return [f"{a.prefix}/{a.size}/{i}" for i in range(a.objects)]


def make_op(a, worker, thread):
    """A callable doing one operation and returning the bytes it moved."""
    size = a.size
    seq = [0]
    rng = random.Random(worker * 1000 + thread)
    if a.target == "s3":
        client = s3_client(a)
        if a.op == "put":
            body = os.urandom(size)

            def put():
                seq[0] += 1
                client.put_object(Bucket=a.bucket, Key=f"{a.prefix}/{worker}-{thread}-{seq[0]}", Body=body)
                return size

            return put
        if a.op == "get":
            keys = get_keys(a)

            def get():
                r = client.get_object(Bucket=a.bucket, Key=rng.choice(keys))
                n = len(r["Body"].read())
                if n != size:
                    raise RuntimeError(f"GET returned {n} bytes, expected {size}")
                return n

            return get
        raise SystemExit(f"unknown s3 op {a.op}")

    # The floor: what the same bytes cost on the same filesystem without a server.
    body = memoryview(os.urandom(size))
    if a.op in ("write-fsync", "write-fsync-rename-dirsync"):
        tmp = os.path.join(a.dir, "tmp")
        final = os.path.join(a.dir, "blobs")
        os.makedirs(tmp, exist_ok=True)
        os.makedirs(final, exist_ok=True)
        rename = a.op == "write-fsync-rename-dirsync"

        def write():
            seq[0] += 1
            name = f"{worker}-{thread}-{seq[0]}"
            path = os.path.join(tmp if rename else final, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                off = 0
                while off < size:
                    off += os.write(fd, body[off : off + WRITE_CHUNK])
                os.fsync(fd)
            finally:
                os.close(fd)
            if rename:
                os.rename(path, os.path.join(final, name))
                dfd = os.open(final, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            return size

        return write
    if a.op == "read":
        paths = [os.path.join(a.dir, "get", str(size), str(i)) for i in range(a.objects)]
        buf = bytearray(READ_CHUNK)

        def read():
            n = 0
            with open(rng.choice(paths), "rb", buffering=0) as f:
                while True:
                    k = f.readinto(buf)
                    if not k:
                        break
                    n += k
            if n != size:
                raise RuntimeError(f"read {n} bytes, expected {size}")
            return n

        return read
    raise SystemExit(f"unknown fs op {a.op}")


# ---------------------------------------------------------------- the run


def worker_main(a, worker, threads, conn):
    ops = [make_op(a, worker, t) for t in range(threads)]
    conn.send("ready")
    t_meas, t_end = conn.recv()
    results = [None] * threads

    def loop(i):
        op = ops[i]
        lat, nbytes, errors, first_error = [], 0, 0, None
        while True:
            t0 = time.monotonic()
            if t0 >= t_end:
                break
            try:
                n = op()
                ok = True
            except Exception as e:  # counted; the run goes on
                ok = False
                if first_error is None:
                    first_error = f"{type(e).__name__}: {e}"[:300]
                time.sleep(0.01)
            t1 = time.monotonic()
            if t_meas <= t1 <= t_end:
                if ok:
                    lat.append(t1 - t0)
                    nbytes += n
                else:
                    errors += 1
        results[i] = (lat, nbytes, errors, first_error)

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    conn.send(results)


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def cmd_run(a):
    procs = max(1, min(a.procs, a.clients))
    split = [a.clients // procs + (1 if i < a.clients % procs else 0) for i in range(procs)]
    ctx = mp.get_context("fork")  # nothing but this thread exists yet; boto3 loads in the workers
    workers = []
    for w, n in enumerate(split):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker_main, args=(a, w, n, child), daemon=True)
        p.start()
        workers.append((p, parent))
    for p, conn in workers:
        if conn.recv() != "ready":
            raise SystemExit("a worker did not start")
    t_start = time.monotonic() + 0.2
    t_meas = t_start + a.warmup
    t_end = t_meas + a.duration
    for _, conn in workers:
        conn.send((t_meas, t_end))

    def sample():
        c = sum(cpu_seconds(p.pid) or 0.0 for p, _ in workers)
        s = cpu_seconds(a.pid) if a.pid else None
        return time.monotonic(), c, s

    time.sleep(max(0.0, t_meas - time.monotonic()))
    w0, c0, s0 = sample()
    load_start = loadavg()
    time.sleep(max(0.0, t_end - time.monotonic()))
    w1, c1, s1 = sample()
    results = []
    for p, conn in workers:
        results.extend(conn.recv())
        p.join()
    lat = [x for r in results for x in r[0]]
    nbytes = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    first_error = next((r[3] for r in results if r[3]), None)
    wall = w1 - w0
    out = {
        "label": a.label,
        "system": a.system,
        "op": a.op,
        "cell": a.op if a.target == "s3" else ("get" if a.op == "read" else "put"),
        "name": a.system if a.target == "s3" else a.op,
        "size": a.size,
        "round": a.round,
        "clients": a.clients,
        "procs": procs,
        "warmup_s": a.warmup,
        "duration_s": round(wall, 3),
        "ops": len(lat),
        "bytes": nbytes,
        "ops_s": len(lat) / wall,
        "mb_s": nbytes / wall / 1e6,
        "p50_ms": (pct(lat, 0.50) or 0) * 1000,
        "p99_ms": (pct(lat, 0.99) or 0) * 1000,
        "mean_ms": statistics.fmean(lat) * 1000 if lat else 0,
        "errors": errors,
        "first_error": first_error,
        "client_cpu_cores": (c1 - c0) / wall,
        "client_cpu_ms_per_op": (c1 - c0) * 1000 / len(lat) if lat else None,
        "server_cpu_cores": (s1 - s0) / wall if s0 is not None and s1 is not None else None,
        "loadavg_1m_start": load_start,
        "loadavg_1m_end": loadavg(),
    }
    print(json.dumps(out), flush=True)
    print(
        f"{a.label}: {out['ops_s']:.1f} ops/s, {out['mb_s']:.1f} MB/s, p50 {out['p50_ms']:.2f} ms, "
        f"p99 {out['p99_ms']:.2f} ms, errors {errors}, client {out['client_cpu_cores']:.2f} cores"
        + (f", server {out['server_cpu_cores']:.2f} cores" if out["server_cpu_cores"] is not None else "")
        + (f" (first error: {first_error})" if first_error else ""),
        file=sys.stderr,
    )


# ---------------------------------------------------------------- setup and cleanup


def cmd_prepare(a):
    """The objects GET reads: a.objects of a.size under a.prefix/a.size/."""
    if a.target == "fs":
        d = os.path.join(a.dir, "get", str(a.size))
        os.makedirs(d, exist_ok=True)
        body = os.urandom(a.size)
        for i in range(a.objects):
            with open(os.path.join(d, str(i)), "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
        return
    client = s3_client(a)
    try:
        client.create_bucket(Bucket=a.bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    except client.exceptions.BucketAlreadyExists:
        pass
    body = os.urandom(a.size)
    keys = get_keys(a)

    def put(ks):
        c = s3_client(a)
        for k in ks:
            c.put_object(Bucket=a.bucket, Key=k, Body=body)

    ts = [threading.Thread(target=put, args=(keys[i::4],)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    listed = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=a.bucket, Prefix=f"{a.prefix}/{a.size}/"):
        listed += sum(1 for o in page.get("Contents", []) if o["Size"] == a.size)
    if listed != a.objects:
        raise SystemExit(f"prepared {a.objects} objects of {a.size} bytes, the bucket lists {listed}")


def cmd_clean(a):
    """Deletes every object under a.prefix (what a PUT cell wrote); prints how many."""
    client = s3_client(a)
    n = 0
    while True:
        page = client.list_objects_v2(Bucket=a.bucket, Prefix=a.prefix + "/", MaxKeys=1000)
        objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if not objs:
            break
        r = client.delete_objects(Bucket=a.bucket, Delete={"Objects": objs, "Quiet": True})
        if r.get("Errors"):
            raise SystemExit(f"delete_objects: {r['Errors'][:3]}")
        n += len(objs)
    print(n)


# ---------------------------------------------------------------- the trivial baseline server


def cmd_null_server(a):
    """Answers like S3 without storing anything: PUT reads and drops the body (after a
    100 Continue when asked), GET of .../<size>/<i> sends <size> bytes. What the load generator
    reaches against it is its own ceiling (with this server sharing the cores)."""
    import asyncio

    bodies = {}

    def body_of(path):
        parts = path.split("?", 1)[0].rstrip("/").split("/")
        try:
            size = int(parts[-2])
        except (IndexError, ValueError):
            return b""
        if size not in bodies:
            bodies[size] = os.urandom(size)
        return bodies[size]

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                n = int(headers.get("content-length", "0"))
                while n > 0:
                    chunk = await reader.read(min(n, 1 << 20))
                    if not chunk:
                        return
                    n -= len(chunk)
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                body = body_of(path) if method == "GET" else b""
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\netag: \"0\"\r\n"
                    b"last-modified: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
                    b"content-type: application/octet-stream\r\n\r\n" % len(body)
                )
                if body:
                    writer.write(body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", a.port, limit=1 << 20)
        print(f"null server on http://127.0.0.1:{a.port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------- the table


NAMES = {
    "write-fsync": "floor: write + fsync",
    "write-fsync-rename-dirsync": "floor: write + fsync + rename + dir fsync",
    "read": "floor: read (page cache)",
    "yun": "yun up (S3 API)",
    "s3s-fs": "s3s-fs (peer; no fsync)",
    "null": "null server (client ceiling)",
}


def human_size(n):
    for unit, m in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= m and n % m == 0:
            return f"{n // m} {unit}"
    return f"{n} B"


def cmd_report(a):
    runs = [json.loads(l) for l in open(os.path.join(a.out, "results.jsonl")) if l.startswith("{")]
    env = open(os.path.join(a.out, "env.txt")).read().strip()
    groups = {}
    for r in runs:
        groups.setdefault((r["size"], r["cell"], r["name"]), []).append(r)

    def med(rs, k):
        xs = [r[k] for r in rs if r.get(k) is not None]
        return statistics.median(xs) if xs else None

    def f(x, d=1):
        return "–" if x is None else f"{x:,.{d}f}"

    print(env.replace("\n", "  \n"))
    print()
    print("| size | op | system | ops/s | MB/s | p50 ms | p99 ms | × floor (yun's path) | × write+fsync | client CPU (cores) | client CPU ms/op | server CPU (cores) | errors | rounds |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    order = ["write-fsync", "write-fsync-rename-dirsync", "read", "yun", "s3s-fs", "null"]
    notes = []
    for size in sorted({k[0] for k in groups}):
        for op in ("put", "get"):
            rows = {k[2]: v for k, v in groups.items() if k[0] == size and k[1] == op}
            if not rows:
                continue
            floor_main = rows.get("write-fsync-rename-dirsync" if op == "put" else "read")
            floor_plain = rows.get("write-fsync") if op == "put" else None
            fm = med(floor_main, "ops_s") if floor_main else None
            fp = med(floor_plain, "ops_s") if floor_plain else None
            for name in sorted(rows, key=lambda n: order.index(n) if n in order else 99):
                rs = rows[name]
                ops = med(rs, "ops_s")
                ratio = f"{ops / fm:.2f}x" if fm and ops is not None else "–"
                ratio2 = f"{ops / fp:.2f}x" if fp and ops is not None else "–"
                print(
                    f"| {human_size(size)} | {op.upper()} | {NAMES.get(name, name)} | {f(ops)} | {f(med(rs, 'mb_s'))} | "
                    f"{f(med(rs, 'p50_ms'), 3)} | {f(med(rs, 'p99_ms'), 3)} | {ratio} | {ratio2} | "
                    f"{f(med(rs, 'client_cpu_cores'), 2)} | {f(med(rs, 'client_cpu_ms_per_op'), 3)} | "
                    f"{f(med(rs, 'server_cpu_cores'), 2)} | {sum(r['errors'] for r in rs)} | {len(rs)} |"
                )
                errs = [r["first_error"] for r in rs if r.get("first_error")]
                if errs:
                    notes.append(f"{human_size(size)} {op.upper()} {name}: {errs[0]}")
            if "null" in rows and "yun" in rows:
                y, n = med(rows["yun"], "ops_s"), med(rows["null"], "ops_s")
                if y and n:
                    notes.append(
                        f"{human_size(size)} {op.upper()}: yun reaches {y / n:.0%} of the load generator's "
                        f"ceiling (null server, {n:,.0f} ops/s)"
                        + (" — the client may be the limit here" if y / n > 0.7 else "")
                    )
    print()
    print(
        "ops/s, MB/s (10^6 bytes/s) and latencies: medians over the rounds; × floor = ops/s over the "
        "floor of the same size on the same filesystem in the same run (PUT: write + fsync + rename + "
        "dir fsync, the path yun's blobs take; GET: read from the page cache); × write+fsync = over the "
        "plain write + fsync floor. CPU: cores used during the measured window (utime + stime / wall). "
        "The null server answers without storing; what the clients reach against it is their ceiling "
        "on this machine (it shares the cores with them)."
    )
    for n in notes:
        print(f"- {n}")


# ---------------------------------------------------------------- arguments


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--target", choices=["s3", "fs"], default="s3")
        sp.add_argument("--endpoint")
        sp.add_argument("--key")
        sp.add_argument("--secret")
        sp.add_argument("--region", default="us-east-1")
        sp.add_argument("--bucket", default="bench")
        sp.add_argument("--prefix", default="get")
        sp.add_argument("--dir", help="fs target: the directory to write and read in")
        sp.add_argument("--size", type=int, default=4096)
        sp.add_argument("--objects", type=int, default=64, help="objects GET picks from")

    r = sub.add_parser("run")
    common(r)
    r.add_argument("--op", required=True)
    r.add_argument("--clients", type=int, default=16)
    r.add_argument("--procs", type=int, default=4)
    r.add_argument("--warmup", type=float, default=2)
    r.add_argument("--duration", type=float, default=10)
    r.add_argument("--pid", type=int, help="the server's pid, for its CPU time")
    r.add_argument("--label", default="")
    r.add_argument("--system", default="")
    r.add_argument("--round", type=int, default=1)
    common(sub.add_parser("prepare"))
    common(sub.add_parser("clean"))
    ns = sub.add_parser("null-server")
    ns.add_argument("--port", type=int, required=True)
    rep = sub.add_parser("report")
    rep.add_argument("--out", required=True)
    a = p.parse_args()
    {"run": cmd_run, "prepare": cmd_prepare, "clean": cmd_clean, "null-server": cmd_null_server, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
