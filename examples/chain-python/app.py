"""A process function that uses yun's own API from inside its sandbox, with the scoped token yun
gives it (YUN_API, YUN_TOKEN): `?queue=Q&body=B` sends B to queue Q, `?call=NAME` invokes
function NAME and answers with its body, `?admin=1` tries an administrator's call (and must be
refused)."""

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = os.environ.get("YUN_API", "")
TOKEN = os.environ.get("YUN_TOKEN", "")


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(API + path, data=data, method=method)
    req.add_header("authorization", f"Bearer {TOKEN}")
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        if "queue" in q:
            status, body = call("POST", f"/v1/queues/{q['queue'][0]}/messages", {"body": q["body"][0]})
        elif "call" in q:
            status, body = call("GET", f"/fn/{q['call'][0]}/?print=called-by-python")
        elif "admin" in q:
            status, body = call("GET", "/v1/functions")
        else:
            status, body = 400, b"say ?queue=, ?call= or ?admin=\n"
        out = f"{status} ".encode() + body
        self.send_response(200)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
