"""A process function that uses yun's object storage with boto3, unchanged: yun puts
AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION in its environment,
for a key scoped to the buckets it was deployed with (`yun deploy ... --bucket notes`).

    GET /?bucket=notes&put=KEY&text=hello   stores an object, then
    GET /?bucket=notes                      lists the bucket: {"keys": [...]}
    GET /?bucket=other                      a bucket outside the key's scope: 403 from S3

Deploy (boto3 must be importable: ship it in the directory, e.g. `pip install --target . boto3`):
    yun deploy notes examples/python-s3 --runtime process --mode http --command "python3 app.py" --bucket notes
"""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import boto3
from botocore.exceptions import ClientError

s3 = boto3.client("s3")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        q = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        bucket = q.get("bucket", "notes")
        try:
            if "put" in q:
                s3.put_object(Bucket=bucket, Key=q["put"], Body=q.get("text", "").encode())
            listed = s3.list_objects_v2(Bucket=bucket)
            status, body = 200, {"keys": [o["Key"] for o in listed.get("Contents", [])],
                                 "endpoint": os.environ.get("AWS_ENDPOINT_URL_S3")}
        except ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            body = {"error": e.response["Error"]["Code"]}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
