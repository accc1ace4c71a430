# SCAN over 1000 keys: every key at least once, with MATCH, COUNT and TYPE.
import sys
import redis

port = int(sys.argv[1])
r = redis.Redis(port=port, password="fn-token", decode_responses=True)
r.flushdb()
p = r.pipeline(transaction=False)
for i in range(1000):
    if i % 4 == 0:
        p.hset(f"hash:{i}", "f", "v")
    else:
        p.set(f"str:{i}", "v")
p.execute()
assert r.dbsize() == 1000

every = set()
cursor, steps = 0, 0
while True:
    cursor, keys = r.scan(cursor, count=37)
    every.update(keys)
    steps += 1
    if cursor == 0:
        break
assert len(every) == 1000, len(every)
assert steps > 10, steps  # COUNT is honoured as a hint: many pages

assert set(r.scan_iter(match="str:1*", count=100)) == {f"str:{i}" for i in range(1000) if i % 4 and str(i).startswith("1")}
assert set(r.scan_iter(_type="hash", count=100)) == {f"hash:{i}" for i in range(0, 1000, 4)}
assert set(r.scan_iter(match="hash:1?", _type="HASH")) == {"hash:12", "hash:16"}
assert list(r.scan_iter(_type="zset", count=200)) == []
assert list(r.scan_iter(match="nothing*")) == []
# Keys written during a walk do not hide the ones present throughout.
seen, cursor, n = set(), 0, 0
while True:
    cursor, keys = r.scan(cursor, count=50)
    seen.update(keys)
    r.set(f"during:{n}", "v")
    n += 1
    if cursor == 0:
        break
assert every <= seen
print("ok")
