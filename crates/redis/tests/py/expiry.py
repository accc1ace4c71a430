# Expiry in real time (short): PX, EXPIRE and its Redis 7 flags, PERSIST, expiring collections.
import sys, time
import redis

port = int(sys.argv[1])
r = redis.Redis(port=port, password="fn-token")
r.flushdb()

r.set("short", "v", px=600)
r.set("kept", "v", px=600)
r.rpush("list", "a", "b")
assert r.pexpire("list", 600) is True
assert r.persist("kept") is True
assert r.persist("kept") is False
assert 0 < r.pttl("short") <= 600
assert r.get("short") == b"v"
time.sleep(0.9)
assert r.get("short") is None
assert r.exists("short") == 0
assert r.ttl("short") == -2
assert r.get("kept") == b"v"
assert r.lrange("list", 0, -1) == []

# EXPIRE's flags: NX, XX, GT, LT, and XX with LT.
r.set("k", "v")
assert r.expire("k", 100, xx=True) is False
assert r.expire("k", 100, gt=True) is False  # no expiry counts as infinite
assert r.expire("k", 100, xx=True, lt=True) is False
assert r.ttl("k") == -1
assert r.expire("k", 100, lt=True) is True
assert r.expire("k", 200, nx=True) is False
assert r.expire("k", 50, gt=True) is False
assert r.expire("k", 200, gt=True) is True
assert r.expire("k", 20, xx=True, lt=True) is True
assert 19 <= r.ttl("k") <= 20
assert r.expire("k", 30, xx=True) is True
try:
    r.expire("k", 1, nx=True, xx=True)
    raise AssertionError("NX with XX")
except redis.ResponseError as e:
    assert "not compatible" in str(e), e
# A time in the past deletes the key.
assert r.expire("k", -1) is True
assert r.exists("k") == 0
assert r.expire("nothing", 10) is False

# The sweep removes expired keys, so DBSIZE drops too.
for i in range(20):
    r.set(f"gone{i}", "v", px=100)
deadline = time.time() + 5
while r.dbsize() > 1 and time.time() < deadline:
    time.sleep(0.05)
assert r.dbsize() == 1, r.dbsize()  # only "kept"
print("ok")
