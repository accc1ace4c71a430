"""A plain Python web app (standard library only) that yun runs as a resident process function.

Deploy:  yun deploy pyhttp examples/python-http --runtime process --mode http --command "python3 app.py"

It listens on $PORT like any app on a PaaS. The query parameters exist for yun's tests:
  print=TEXT   write TEXT to stdout and stderr
  crash=1      exit the process in the middle of the request
  hog_mb=N     allocate and touch N MiB
  sleep_ms=N   answer after N milliseconds
  loop=1       never answer
  count=1      answer with the number of requests this process served (it is resident)
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

served = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # http.server writes the head and the body separately; with Nagle's algorithm on, a
    # keep-alive client's delayed ACK then adds ~40 ms to every response.
    disable_nagle_algorithm = True

    def handle_any(self):
        global served
        served += 1
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if "print" in q:
            print(q["print"], flush=True)
            print("stderr: " + q["print"], file=sys.stderr, flush=True)
        if q.get("crash"):
            os._exit(3)
        if "hog_mb" in q:
            hog = bytearray(int(q["hog_mb"]) * 1024 * 1024)
            for i in range(0, len(hog), 4096):
                hog[i] = 1
        if "sleep_ms" in q:
            time.sleep(int(q["sleep_ms"]) / 1000)
        if q.get("loop"):
            while True:
                pass
        if q.get("count"):
            out = f"{served}\n".encode()
        else:
            out = json.dumps(
                {
                    "runtime": "python",
                    "method": self.command,
                    "path": url.path,
                    "query": url.query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                    "pid": os.getpid(),
                }
            ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    def log_message(self, fmt, *args):
        sys.stderr.write("access: " + (fmt % args) + "\n")


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on {port}", flush=True)
    server.serve_forever()
