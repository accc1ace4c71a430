"""A process function that keeps state in yun's key-value store and SQL database through the
API yun gives it (YUN_API, YUN_TOKEN): `?incr=KEY` adds one to KEY in store `visits` and logs the
visit in database `app`; `?count` answers the counter and the number of logged visits;
`?store=S&key=K` reads another store (which must be refused unless the function declared it);
`?redis=KEY` increments KEY over the Redis protocol at REDIS_URL (plain sockets: no client
library needed to speak RESP)."""

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = os.environ.get("YUN_API", "")
TOKEN = os.environ.get("YUN_TOKEN", "")


def call(method, path, body=None, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(API + path, data=data, method=method)
    req.add_header("authorization", f"Bearer {TOKEN}")
    if body is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def resp(*args):
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        a = a.encode()
        out += f"${len(a)}\r\n".encode() + a + b"\r\n"
    return out


def redis_incr(key):
    url = urllib.parse.urlparse(os.environ["REDIS_URL"])
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(resp("AUTH", url.username, url.password) + resp("INCR", key))
        data = b""
        while data.count(b"\r\n") < 2:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode().split("\r\n")[:2]


def sql(statements):
    return call("POST", "/v1/sql/app", {"statements": statements})


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query, keep_blank_values=True)
        if "incr" in q:
            key = urllib.parse.quote(q["incr"][0])
            status, body = call("POST", f"/v1/kv/visits/incr?key={key}")
            if status == 200:
                status, body = sql(
                    [
                        {"sql": "CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, who TEXT NOT NULL)"},
                        {"sql": "INSERT INTO visits (who) VALUES (?)", "params": [q["incr"][0]]},
                    ]
                )
        elif "count" in q:
            status, counter = call("GET", "/v1/kv/visits/key?key=hits")
            s2, rows = sql([{"sql": "SELECT count(*) FROM visits"}])
            body = json.dumps(
                {
                    "counter": counter.decode() if status == 200 else None,
                    "rows": json.loads(rows)["results"][0]["rows"][0][0] if s2 == 200 else rows.decode(),
                }
            ).encode()
            status = 200
        elif "redis" in q:
            auth, incr = redis_incr(q["redis"][0])
            status, body = 200, f"{auth} {incr}".encode()
        elif "store" in q:
            status, body = call("GET", f"/v1/kv/{q['store'][0]}/key?key={q['key'][0]}")
        else:
            status, body = 400, b"say ?incr=, ?count or ?store=&key=\n"
        out = f"{status} ".encode() + body
        self.send_response(200)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
