"""A queue consumer as a yun process function: yun posts it batches of messages in the shape
of AWS Lambda's SQS event, inside a CloudEvent (ce-* headers).

Each record's body decides what happens to it:
- "poison": the whole batch fails (500), as a handler that crashes on one message would;
  yun splits the batch until that message fails alone.
- "fail": this record is reported as failed (batchItemFailures); the rest succeed.
- anything else: processed, and printed as "processed BODY".
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        event = json.loads(self.rfile.read(length) or b"{}")
        records = event.get("Records", [])
        if any(r["body"] == "poison" for r in records):
            print(f"batch of {len(records)} failed on a poison message", flush=True)
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"poisoned\n")
            return
        failures = []
        for r in records:
            if r["body"] == "fail":
                failures.append({"itemIdentifier": r["messageId"]})
            else:
                print(f"processed {r['body']}", flush=True)
        body = json.dumps({"batchItemFailures": failures}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
