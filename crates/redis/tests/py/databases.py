# SELECT picks a database within the session's store; stores are apart from each other.
import sys
import redis

port = int(sys.argv[1])
db0 = redis.Redis(port=port, password="fn-token", db=0)
db5 = redis.Redis(port=port, password="fn-token", db=5)
for r in (db0, db5):
    r.flushdb()
db0.set("k", "zero")
db5.set("k", "five")
db5.set("only5", "x", ex=100)
assert db0.get("k") == b"zero"
assert db5.get("k") == b"five"
assert db0.get("only5") is None
assert db0.dbsize() == 1 and db5.dbsize() == 2
db5.flushdb()
assert db5.dbsize() == 0 and db0.get("k") == b"zero"
try:
    redis.Redis(port=port, password="fn-token", db=16).ping()
    raise AssertionError("selected db 16")
except redis.ResponseError as e:
    assert str(e) == "DB index is out of range", e

# One connection moving between databases (a raw SELECT).
c = redis.Redis(port=port, password="fn-token", single_connection_client=True)
c.execute_command("SELECT", 3)
c.set("k", "three")
c.execute_command("SELECT", 0)
assert c.get("k") == b"zero"

# The other store the function may use is separate; the admin sees each store by name.
cache = redis.Redis(port=port, username="app-cache", password="fn-token")
assert cache.get("k") is None
cache.set("k", "cache")
admin_app = redis.Redis(port=port, username="app", password="admin-token")
assert admin_app.get("k") == b"zero"
assert redis.Redis(port=port, username="app-cache", password="admin-token").get("k") == b"cache"
assert redis.Redis(port=port, username="app", password="admin-token", db=3).get("k") == b"three"

# INFO keyspace counts the session's store only, with expiring keys.
db5.set("a", "1", ex=100)
db5.set("b", "1")
info = db0.info("keyspace")
assert info["db0"]["keys"] == 1 and info["db0"]["expires"] == 0, info
assert info["db3"]["keys"] == 1, info
assert info["db5"]["keys"] == 2 and info["db5"]["expires"] == 1, info
assert set(info) == {"db0", "db3", "db5"}, info
print("ok")
