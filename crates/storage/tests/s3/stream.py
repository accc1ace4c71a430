"""Sends a large object through presigned SigV4 URLs and reads it back, streaming both ways
(http.client, 1 MiB at a time), for crates/storage/tests/streaming.rs. Prints the MD5s."""

import hashlib
import http.client
import os
import sys
import time
import urllib.parse

import boto3
from botocore.config import Config

size = int(os.environ["S3_SIZE"])
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_ENDPOINT"],
    aws_access_key_id=os.environ["S3_KEY"],
    aws_secret_access_key=os.environ["S3_SECRET"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
)
s3.create_bucket(Bucket="stream")
chunk = hashlib.sha256(b"stream").digest() * (1 << 15)  # 1 MiB


def request(method, url, body=None, headers=None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    conn.request(method, u.path + "?" + u.query, body=body, headers=headers or {})
    return conn.getresponse()


def body():
    left = size
    while left:
        n = min(left, len(chunk))
        yield chunk[:n]
        left -= n


sent = hashlib.md5()
for part in body():
    sent.update(part)
t = time.time()
url = s3.generate_presigned_url("put_object", Params={"Bucket": "stream", "Key": "big"}, ExpiresIn=3600)
resp = request("PUT", url, body=body(), headers={"Content-Length": str(size)})
resp.read()
if resp.status != 200:
    sys.exit(f"PUT: {resp.status}")
print(f"PUT {size} bytes in {time.time() - t:.1f}s, ETag {resp.getheader('ETag')}", flush=True)
if resp.getheader("ETag").strip('"') != sent.hexdigest():
    sys.exit("the ETag is not the body's MD5")

t = time.time()
url = s3.generate_presigned_url("get_object", Params={"Bucket": "stream", "Key": "big"}, ExpiresIn=3600)
resp = request("GET", url)
got = hashlib.md5()
n = 0
while True:
    b = resp.read(1 << 20)
    if not b:
        break
    got.update(b)
    n += len(b)
print(f"GET {n} bytes in {time.time() - t:.1f}s", flush=True)
if resp.status != 200 or n != size or got.hexdigest() != sent.hexdigest():
    sys.exit(f"GET: {resp.status}, {n} bytes, md5 {got.hexdigest()}")
