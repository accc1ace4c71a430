# A value over the store's limit (argv[2] bytes) fails clearly, and the connection goes on.
import sys
import redis

port, limit = int(sys.argv[1]), int(sys.argv[2])
r = redis.Redis(port=port, password="fn-token", single_connection_client=True)
r.set("ok", "x" * (limit - 100))
for call in (
    lambda: r.set("big", "x" * (limit + 1)),
    lambda: r.append("ok", "y" * 200),
    lambda: r.hset("h", "f", "x" * (limit + 1)),
):
    try:
        call()
        raise AssertionError("accepted a value over the limit")
    except redis.ResponseError as e:
        assert str(e).startswith("string exceeds maximum allowed size"), e
        assert str(limit) in str(e), e
assert r.exists("big", "h") == 0
assert r.strlen("ok") == limit - 100
assert r.ping() is True
r.set("after", "fine")
assert r.get("after") == b"fine"
print("ok")
