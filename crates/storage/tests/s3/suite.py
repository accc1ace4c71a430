"""The S3 API as boto3 and the aws CLI use it, with their default settings (checksums,
aws-chunked trailers, multipart), against yun's storage server.

Run by crates/storage/tests/s3.rs, which starts the server and passes in the environment:
S3_ENDPOINT, S3_KEY/S3_SECRET (read-write, every bucket), S3_RO_KEY/S3_RO_SECRET (read-only),
S3_SCOPED_KEY/S3_SCOPED_SECRET (read-write, only S3_SCOPED_BUCKET). Exits non-zero on the
first failed check.
"""

import base64
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib

import boto3
import botocore
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]
MiB = 1024 * 1024


def client(key, secret, **config):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


s3 = client(os.environ["S3_KEY"], os.environ["S3_SECRET"])
step_started = time.time()


def step(name):
    global step_started
    now = time.time()
    print(f"  ({now - step_started:.2f}s)", flush=True)
    step_started = now
    print(f"- {name}", end="", flush=True)


def check(cond, what):
    if not cond:
        print(f"\nFAILED: {what}", flush=True)
        sys.exit(1)


def error_of(fn, *args, **kwargs):
    """(HTTP status, error code) of a call that must fail."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    check(False, f"{fn.__name__} was expected to fail")


def _crc_reflected(poly, width, data):
    mask = (1 << width) - 1
    crc = mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return (crc ^ mask).to_bytes(width // 8, "big")


def crc32c(data):
    return base64.b64encode(_crc_reflected(0x82F63B78, 32, data)).decode()


def crc64nvme(data):
    return base64.b64encode(_crc_reflected(0x9A6C9329AC4BC9B5, 64, data)).decode()


assert _crc_reflected(0x82F63B78, 32, b"123456789").hex() == "e3069283"
assert _crc_reflected(0x9A6C9329AC4BC9B5, 64, b"123456789").hex() == "ae8b14860a799888"


def data(n, seed=b"yun"):
    block = hashlib.sha256(seed).digest() * (MiB // 32)
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}")

step("buckets: create, list, head")
s3.create_bucket(Bucket="suite")
check(error_of(s3.create_bucket, Bucket="suite")[0] == 409, "creating an existing bucket is 409")
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
check("suite" in names, f"list_buckets shows the bucket: {names}")
s3.head_bucket(Bucket="suite")
check(error_of(s3.head_bucket, Bucket="nope-none")[0] == 404, "head of a missing bucket is 404")
check(error_of(s3.create_bucket, Bucket="Bad_Name")[0] == 400, "an invalid bucket name is 400")

step("put and get with metadata, content type and encoding (default checksums)")
body = b"hello, yun storage\n" * 100
r = s3.put_object(
    Bucket="suite",
    Key="dir/hello.txt",
    Body=body,
    ContentType="text/plain; charset=utf-8",
    ContentEncoding="identity",
    CacheControl="max-age=60",
    Metadata={"owner": "ann", "purpose": "test"},
)
etag = r["ETag"]
check(etag == '"%s"' % hashlib.md5(body).hexdigest(), f"the ETag is the MD5: {etag}")
g = s3.get_object(Bucket="suite", Key="dir/hello.txt")
check(g["Body"].read() == body, "the body round-trips")
check(g["ContentType"] == "text/plain; charset=utf-8", f"content type: {g['ContentType']}")
check(g["Metadata"] == {"owner": "ann", "purpose": "test"}, f"metadata: {g['Metadata']}")
check(g["CacheControl"] == "max-age=60" and g["ContentEncoding"] == "identity", "cache control and encoding")
h = s3.head_object(Bucket="suite", Key="dir/hello.txt", ChecksumMode="ENABLED")
check(h["ContentLength"] == len(body) and h["ETag"] == etag, "head agrees")
check(any(k.startswith("Checksum") for k in h), f"head returns the stored checksum when asked: {list(h)}")
check(error_of(s3.get_object, Bucket="suite", Key="missing")[1] == "NoSuchKey", "a missing key is NoSuchKey")

step("explicit checksums: each algorithm verified, a wrong one refused")
# botocore computes CRC32C and CRC64NVME only with awscrt: give it those values ready-made.
given = {"CRC32C": {"ChecksumCRC32C": crc32c(body)}, "CRC64NVME": {"ChecksumCRC64NVME": crc64nvme(body)}}
for alg in ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]:
    r = s3.put_object(Bucket="suite", Key=f"sum/{alg}", Body=body, **given.get(alg, {"ChecksumAlgorithm": alg}))
    check(f"Checksum{alg}" in r, f"{alg} is returned by the PUT: {list(r)}")
    g = s3.get_object(Bucket="suite", Key=f"sum/{alg}", ChecksumMode="ENABLED")
    check(g["Body"].read() == body, f"{alg} object reads back (botocore validated the checksum)")
for wrong in [{"ChecksumCRC32": "AAAAAA=="}, {"ChecksumCRC64NVME": crc64nvme(b"other")}, {"ChecksumSHA256": base64.b64encode(b"x" * 32).decode()}]:
    status, code = error_of(s3.put_object, Bucket="suite", Key="sum/bad", Body=body, **wrong)
    check(status == 400 and code in ("BadDigest", "InvalidRequest"), f"a wrong {wrong} is refused: {status} {code}")
status, code = error_of(s3.put_object, Bucket="suite", Key="sum/bad", Body=body, ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
check(status == 400 and code == "BadDigest", f"a wrong Content-MD5 is refused: {status} {code}")
check(error_of(s3.head_object, Bucket="suite", Key="sum/bad")[0] == 404, "a refused body is not stored")

step("aws-chunked bodies with checksum trailers (what botocore sends over https)")
import botocore.httpchecksum as hc  # noqa: E402

real_urlparse = hc.urlparse
# botocore puts the checksum in an aws-chunked trailer only over TLS; the test endpoint is http.
hc.urlparse = lambda url: real_urlparse(url)._replace(scheme="https")
try:
    seen = {}

    def remember(request, **_):
        seen.update(request.headers)

    s3.meta.events.register("before-send.s3.PutObject", remember)
    r = s3.put_object(Bucket="suite", Key="chunked/one", Body=body)
    check(seen.get("X-Amz-Content-SHA256") == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER" or
          seen.get("X-Amz-Content-SHA256") == "STREAMING-UNSIGNED-PAYLOAD-TRAILER", f"an aws-chunked body was sent: {seen}")
    check(r["ChecksumCRC32"] == base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode(), "the trailer's CRC32 was stored")
    check(s3.get_object(Bucket="suite", Key="chunked/one", ChecksumMode="ENABLED")["Body"].read() == body, "and reads back")
    real_digest = hc.Crc32Checksum.b64digest
    hc.Crc32Checksum.b64digest = lambda self: "AAAAAA=="
    try:
        status, code = error_of(s3.put_object, Bucket="suite", Key="chunked/bad", Body=body)
    finally:
        hc.Crc32Checksum.b64digest = real_digest
    check(status == 400 and code == "BadDigest", f"a wrong trailer checksum is refused: {status} {code}")
    check(error_of(s3.head_object, Bucket="suite", Key="chunked/bad")[0] == 404, "and nothing is stored")
    s3.meta.events.unregister("before-send.s3.PutObject", remember)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "ten.bin")
        ten = data(10 * MiB, b"chunked")
        with open(src, "wb") as f:
            f.write(ten)
        s3.upload_file(src, "suite", "chunked/multi", Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
        check(s3.get_object(Bucket="suite", Key="chunked/multi")["Body"].read() == ten, "a multipart upload with trailers")
finally:
    hc.urlparse = real_urlparse

step("multipart: upload_file of 20 MiB in 5 MiB parts, boto3's default checksums")
big = data(20 * MiB)
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "big.bin")
    with open(src, "wb") as f:
        f.write(big)
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_file(src, "suite", "multi/big.bin", Config=cfg)
    h = s3.head_object(Bucket="suite", Key="multi/big.bin", ChecksumMode="ENABLED")
    check(h["ContentLength"] == len(big), "the assembled size")
    check(h["ETag"].endswith('-4"'), f"a multipart ETag names its 4 parts: {h['ETag']}")
    dst = os.path.join(tmp, "back.bin")
    s3.download_file("suite", "multi/big.bin", dst)
    with open(dst, "rb") as f:
        check(hashlib.sha256(f.read()).digest() == hashlib.sha256(big).digest(), "the download matches")
g = s3.get_object(Bucket="suite", Key="multi/big.bin", ChecksumMode="ENABLED")
check(g["Body"].read() == big, "a plain GET of the multipart object matches")

step("multipart by hand: list uploads and parts, upload part copy, abort")
mp = s3.create_multipart_upload(Bucket="suite", Key="multi/copied", ChecksumAlgorithm="CRC32")
uid = mp["UploadId"]
ups = s3.list_multipart_uploads(Bucket="suite")["Uploads"]
check([u["UploadId"] for u in ups] == [uid], f"the upload is listed: {ups}")
p1 = s3.upload_part_copy(
    Bucket="suite", Key="multi/copied", UploadId=uid, PartNumber=1,
    CopySource={"Bucket": "suite", "Key": "multi/big.bin"}, CopySourceRange=f"bytes=0-{6 * MiB - 1}",
)["CopyPartResult"]
p2 = s3.upload_part(Bucket="suite", Key="multi/copied", UploadId=uid, PartNumber=2, Body=b"tail", ChecksumAlgorithm="CRC32")
parts = s3.list_parts(Bucket="suite", Key="multi/copied", UploadId=uid)["Parts"]
check([p["PartNumber"] for p in parts] == [1, 2] and parts[0]["Size"] == 6 * MiB, f"list_parts: {parts}")
done = s3.complete_multipart_upload(
    Bucket="suite", Key="multi/copied", UploadId=uid,
    MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["ETag"], "ChecksumCRC32": p1["ChecksumCRC32"]},
        {"PartNumber": 2, "ETag": p2["ETag"], "ChecksumCRC32": p2["ChecksumCRC32"]},
    ]},
)
check(done["ETag"].endswith('-2"'), f"complete's ETag: {done['ETag']}")
got = s3.get_object(Bucket="suite", Key="multi/copied")["Body"].read()
check(got == big[: 6 * MiB] + b"tail", "the copied range plus the uploaded part")
mp = s3.create_multipart_upload(Bucket="suite", Key="multi/aborted")
s3.upload_part(Bucket="suite", Key="multi/aborted", UploadId=mp["UploadId"], PartNumber=1, Body=b"x")
s3.abort_multipart_upload(Bucket="suite", Key="multi/aborted", UploadId=mp["UploadId"])
check("Uploads" not in s3.list_multipart_uploads(Bucket="suite"), "no upload left")
check(error_of(s3.head_object, Bucket="suite", Key="multi/aborted")[0] == 404, "an aborted upload is no object")

step("presigned GET and PUT, through urllib (no SDK)")
# boto3 presigns with SigV2 unless told otherwise; SigV4 is what the other SDKs use.
url = s3.generate_presigned_url("get_object", Params={"Bucket": "suite", "Key": "dir/hello.txt"}, ExpiresIn=300)
with urllib.request.urlopen(url) as resp:
    check(resp.status == 200 and resp.read() == body, "a presigned GET (SigV2)")
v4 = client(os.environ["S3_KEY"], os.environ["S3_SECRET"], signature_version="s3v4")
url = v4.generate_presigned_url("get_object", Params={"Bucket": "suite", "Key": "dir/hello.txt"}, ExpiresIn=300)
check("X-Amz-Signature=" in url, f"a SigV4 presigned URL: {url}")
with urllib.request.urlopen(url) as resp:
    check(resp.status == 200 and resp.read() == body, "a presigned GET (SigV4)")
url = v4.generate_presigned_url("put_object", Params={"Bucket": "suite", "Key": "presigned/up"}, ExpiresIn=300)
req = urllib.request.Request(url, data=b"via presigned PUT", method="PUT")
try:
    with urllib.request.urlopen(req) as resp:
        check(resp.status == 200, "a presigned PUT")
except urllib.error.HTTPError as e:
    check(False, f"a presigned PUT: {e.code} {e.read()!r}")
check(s3.get_object(Bucket="suite", Key="presigned/up")["Body"].read() == b"via presigned PUT", "its body")
bad = url.replace("presigned%2Fup", "presigned%2Fother").replace("presigned/up", "presigned/other")
try:
    urllib.request.urlopen(urllib.request.Request(bad, data=b"x", method="PUT"))
    check(False, "a presigned URL for another key must fail")
except urllib.error.HTTPError as e:
    check(e.code == 403, f"a tampered presigned URL is 403: {e.code}")

step("ListObjectsV2 pagination: 25 keys, 10 a page; prefix and delimiter")
for i in range(25):
    s3.put_object(Bucket="suite", Key=f"page/{'d%d/' % (i % 3) if i < 15 else ''}k{i:02d}", Body=b"%d" % i)
pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket="suite", Prefix="page/", PaginationConfig={"PageSize": 10}))
keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
check(len(pages) == 3 and len(keys) == 25 and keys == sorted(keys), f"{len(pages)} pages, {len(keys)} keys")
pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket="suite", Prefix="page/", Delimiter="/", PaginationConfig={"PageSize": 10}))
prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
flat = [o["Key"] for p in pages for o in p.get("Contents", [])]
check(prefixes == ["page/d0/", "page/d1/", "page/d2/"], f"common prefixes: {prefixes}")
check(len(flat) == 10 and all("/" not in k[len("page/"):] for k in flat), f"keys beside them: {flat}")
r = s3.list_objects_v2(Bucket="suite", Prefix="page/", StartAfter="page/k20")
check([o["Key"] for o in r["Contents"]] == ["page/k21", "page/k22", "page/k23", "page/k24"], "start-after")
r = s3.list_objects(Bucket="suite", Prefix="page/d1/", MaxKeys=2)
check(r["IsTruncated"] and len(r["Contents"]) == 2, "ListObjects v1 truncates")
r2 = s3.list_objects(Bucket="suite", Prefix="page/d1/", Marker=r["Contents"][-1]["Key"])
check(len(r2["Contents"]) == 3 and not r2["IsTruncated"], "and continues from a marker")
s3.put_object(Bucket="suite", Key="odd/a b+c&d=é", Body=b"odd")
r = s3.list_objects_v2(Bucket="suite", Prefix="odd/")
check([o["Key"] for o in r["Contents"]] == ["odd/a b+c&d=é"], f"url encoding round-trips odd keys: {r['Contents']}")

step("range GET is 206")
g = s3.get_object(Bucket="suite", Key="dir/hello.txt", Range="bytes=7-10")
check(g["ResponseMetadata"]["HTTPStatusCode"] == 206, "206")
check(g["Body"].read() == body[7:11] and g["ContentRange"] == f"bytes 7-10/{len(body)}", "the range's bytes")
g = s3.get_object(Bucket="suite", Key="dir/hello.txt", Range="bytes=-5")
check(g["Body"].read() == body[-5:], "a suffix range")
check(error_of(s3.get_object, Bucket="suite", Key="dir/hello.txt", Range="bytes=99999-")[0] == 416, "past the end is 416")

step("conditional requests")
s3.put_object(Bucket="suite", Key="cond/once", Body=b"1", IfNoneMatch="*")
check(error_of(s3.put_object, Bucket="suite", Key="cond/once", Body=b"2", IfNoneMatch="*")[0] == 412, "If-None-Match: * on an existing key is 412")
e = s3.head_object(Bucket="suite", Key="cond/once")["ETag"]
check(error_of(s3.get_object, Bucket="suite", Key="cond/once", IfNoneMatch=e)[0] == 304, "If-None-Match with the ETag is 304")
check(error_of(s3.get_object, Bucket="suite", Key="cond/once", IfMatch='"nope"')[0] == 412, "If-Match with another ETag is 412")
check(s3.get_object(Bucket="suite", Key="cond/once", IfMatch=e)["Body"].read() == b"1", "If-Match with the ETag is 200")
lm = s3.head_object(Bucket="suite", Key="cond/once")["LastModified"]
check(error_of(s3.get_object, Bucket="suite", Key="cond/once", IfModifiedSince=lm)[0] == 304, "If-Modified-Since its own time is 304")
check(error_of(s3.get_object, Bucket="suite", Key="cond/once", IfUnmodifiedSince=lm.replace(year=2000))[0] == 412, "If-Unmodified-Since the past is 412")

step("copy, metadata kept or replaced")
c = s3.copy_object(Bucket="suite", Key="copy/one", CopySource={"Bucket": "suite", "Key": "dir/hello.txt"})
check(c["CopyObjectResult"]["ETag"] == etag, "the copy's ETag")
h = s3.head_object(Bucket="suite", Key="copy/one")
check(h["Metadata"] == {"owner": "ann", "purpose": "test"} and h["ContentType"].startswith("text/plain"), "metadata copied")
s3.copy_object(Bucket="suite", Key="copy/two", CopySource="suite/dir/hello.txt", MetadataDirective="REPLACE", Metadata={"new": "1"}, ContentType="application/x-test")
h = s3.head_object(Bucket="suite", Key="copy/two")
check(h["Metadata"] == {"new": "1"} and h["ContentType"] == "application/x-test", f"metadata replaced: {h['Metadata']}")
check(s3.get_object(Bucket="suite", Key="copy/two")["Body"].read() == body, "the copy's body")

step("delete and delete_objects")
r = s3.delete_objects(Bucket="suite", Delete={"Objects": [{"Key": "copy/one"}, {"Key": "copy/two"}, {"Key": "never/was"}]})
check(sorted(d["Key"] for d in r["Deleted"]) == ["copy/one", "copy/two", "never/was"], f"deleted: {r['Deleted']}")
check("Contents" not in s3.list_objects_v2(Bucket="suite", Prefix="copy/"), "gone from the listing")
r = s3.delete_object(Bucket="suite", Key="presigned/up")
check(r["ResponseMetadata"]["HTTPStatusCode"] == 204, "delete is 204")
check(error_of(s3.delete_bucket, Bucket="suite")[1] == "BucketNotEmpty", "a bucket with objects cannot be deleted")

step("auth: a wrong secret, an unknown key, a read-only key, an out-of-scope bucket")
wrong = client(os.environ["S3_KEY"], "x" * 40)
status, code = error_of(wrong.list_objects_v2, Bucket="suite")
check(status == 403 and code == "SignatureDoesNotMatch", f"wrong secret: {status} {code}")
status, code = error_of(wrong.put_object, Bucket="suite", Key="w", Body=b"x")
check(status == 403, f"wrong secret on a PUT: {status} {code}")
unknown = client("AKYNUNKNOWNUNKNOWN00", "x" * 40)
status, code = error_of(unknown.get_object, Bucket="suite", Key="dir/hello.txt")
check(status == 403 and code == "InvalidAccessKeyId", f"unknown key: {status} {code}")
ro = client(os.environ["S3_RO_KEY"], os.environ["S3_RO_SECRET"])
check(ro.get_object(Bucket="suite", Key="dir/hello.txt")["Body"].read() == body, "a read-only key reads")
check(len(ro.list_objects_v2(Bucket="suite", Prefix="page/")["Contents"]) == 25, "and lists")
for fn, kw in [
    (ro.put_object, {"Bucket": "suite", "Key": "ro", "Body": b"x"}),
    (ro.delete_object, {"Bucket": "suite", "Key": "dir/hello.txt"}),
    (ro.create_multipart_upload, {"Bucket": "suite", "Key": "ro"}),
    (ro.create_bucket, {"Bucket": "ro-made"}),
]:
    status, code = error_of(fn, **kw)
    check(status == 403 and code == "AccessDenied", f"read-only {fn.__name__}: {status} {code}")
scoped_bucket = os.environ["S3_SCOPED_BUCKET"]
s3.create_bucket(Bucket=scoped_bucket)
sc = client(os.environ["S3_SCOPED_KEY"], os.environ["S3_SCOPED_SECRET"])
sc.put_object(Bucket=scoped_bucket, Key="mine", Body=b"ok")
check(sc.get_object(Bucket=scoped_bucket, Key="mine")["Body"].read() == b"ok", "the scoped key in its bucket")
for fn, kw in [
    (sc.get_object, {"Bucket": "suite", "Key": "dir/hello.txt"}),
    (sc.put_object, {"Bucket": "suite", "Key": "x", "Body": b"x"}),
    (sc.list_objects_v2, {"Bucket": "suite"}),
    (sc.copy_object, {"Bucket": scoped_bucket, "Key": "stolen", "CopySource": "suite/dir/hello.txt"}),
]:
    status, code = error_of(fn, **kw)
    check(status == 403 and code == "AccessDenied", f"scoped {fn.__name__} outside its bucket: {status} {code}")
check([b["Name"] for b in sc.list_buckets()["Buckets"]] == [scoped_bucket], "list_buckets shows only its bucket")

step("aws CLI: s3 cp (12 MiB, multipart by its defaults), ls, rm; s3api")
with tempfile.TemporaryDirectory() as tmp:
    cfg = os.path.join(tmp, "config")
    with open(cfg, "w") as f:
        f.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=os.environ["S3_KEY"], AWS_SECRET_ACCESS_KEY=os.environ["S3_SECRET"],
               AWS_CONFIG_FILE=cfg, AWS_SHARED_CREDENTIALS_FILE=os.path.join(tmp, "none"), AWS_MAX_ATTEMPTS="1")

    def aws(*args):
        p = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", ENDPOINT, *args],
                           env=env, capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, f"aws {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p.stdout

    src = os.path.join(tmp, "twelve.bin")
    twelve = data(12 * MiB, b"cli")
    with open(src, "wb") as f:
        f.write(twelve)
    aws("s3", "cp", src, "s3://suite/cli/twelve.bin")
    h = s3.head_object(Bucket="suite", Key="cli/twelve.bin")
    check(h["ContentLength"] == 12 * MiB and h["ETag"].endswith('-2"'), f"the CLI uploaded in 2 parts: {h['ETag']}")
    out = aws("s3", "ls", "s3://suite/cli/")
    check("twelve.bin" in out and str(12 * MiB) in out, f"ls: {out}")
    back = os.path.join(tmp, "back.bin")
    aws("s3", "cp", "s3://suite/cli/twelve.bin", back)
    with open(back, "rb") as f:
        check(f.read() == twelve, "the CLI's download matches")
    out = aws("s3api", "head-object", "--bucket", "suite", "--key", "cli/twelve.bin")
    check('"ContentLength": %d' % (12 * MiB) in out, f"s3api head-object: {out}")
    aws("s3api", "put-object", "--bucket", "suite", "--key", "cli/small", "--body", src)
    aws("s3", "rm", "s3://suite/cli/twelve.bin")
    aws("s3", "rm", "s3://suite/cli/small")
    check("Contents" not in s3.list_objects_v2(Bucket="suite", Prefix="cli/"), "rm removed them")
    out = aws("s3", "ls")
    check("suite" in out, f"s3 ls lists buckets: {out}")

step("done")
print()
print("suite passed")
