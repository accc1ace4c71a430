# Pipelines of 1000 commands: every reply in order, errors in place, reads and writes mixed.
import sys
import redis

port = int(sys.argv[1])
r = redis.Redis(port=port, password="fn-token")
r.flushdb()

p = r.pipeline(transaction=False)
for i in range(1000):
    p.set(f"k{i}", i)
assert p.execute() == [True] * 1000

p = r.pipeline(transaction=False)
for i in range(1000):
    p.get(f"k{i}")
assert p.execute() == [str(i).encode() for i in range(1000)]

p = r.pipeline(transaction=False)
for i in range(500):
    p.incr("n")
    p.get("n")
out = p.execute()
assert out[0::2] == list(range(1, 501)), out[:10]
assert out[1::2] == [str(i).encode() for i in range(1, 501)]

# An error in the middle answers its own command only.
p = r.pipeline(transaction=False)
p.set("text", "abc")
for i in range(998):
    p.incr("text") if i == 500 else p.incr("m")
p.get("m")
out = p.execute(raise_on_error=False)
assert len(out) == 1000
assert isinstance(out[501], redis.ResponseError), out[501]
assert out[-1] == b"997"
assert sum(1 for x in out if isinstance(x, Exception)) == 1
print("ok")
