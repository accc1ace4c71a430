# AUTH and HELLO AUTH: grants, refusals, and connections that keep working after a refusal.
import socket, sys
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

port = int(sys.argv[1])
# redis-py retries a refused connection with backoff; a refusal is what these expect.
ONCE = dict(retry=Retry(NoBackoff(), 0))

# No credentials: NOAUTH (for RESP3 clients, at their HELLO 3).
try:
    redis.Redis(port=port, protocol=2, **ONCE).get("k")
    raise AssertionError("served without AUTH")
except redis.AuthenticationError as e:
    assert "Authentication required" in str(e), e
try:
    redis.Redis(port=port, protocol=3, **ONCE).get("k")
    raise AssertionError("served without AUTH")
except redis.AuthenticationError as e:
    assert "HELLO must be called with the client already authenticated" in str(e), e

# A wrong token: WRONGPASS, and the connection still answers (and may AUTH again). A raw
# socket: redis-py's own connection setup would stop at the first refusal.
sock = socket.create_connection(("127.0.0.1", port))
lines = sock.makefile("rb")

def call(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    line = lines.readline().decode().rstrip("\r\n")
    if line.startswith("$") and line != "$-1":
        line = lines.readline().decode().rstrip("\r\n")
    return line

assert call("AUTH", "wrong") == "-WRONGPASS invalid username-password pair or user is disabled."
assert call("GET", "k") == "-NOAUTH Authentication required."
assert call("PING") == "-NOAUTH Authentication required."
assert call("AUTH", "fn-token") == "+OK"
assert call("SET", "k", "v") == "+OK"
assert call("GET", "k") == "v"
# A failed AUTH later leaves the session as it was.
assert call("AUTH", "app", "wrong").startswith("-WRONGPASS")
assert call("AUTH", "someone-else", "fn-token").startswith("-WRONGPASS")
assert call("GET", "k") == "v"
# Moving the connection to another granted store.
assert call("AUTH", "app-cache", "fn-token") == "+OK"
assert call("GET", "k") == "$-1"
sock.close()

# The function's token without a user opens its first store; "default" is the same.
assert redis.Redis(port=port, username="default", password="fn-token").get("k") == b"v"
assert redis.Redis(port=port, username="app", password="fn-token").get("k") == b"v"

# A store the token was not granted: refused like a wrong password.
try:
    redis.Redis(port=port, username="someone-else", password="fn-token", **ONCE).ping()
    raise AssertionError("opened a store not granted")
except redis.AuthenticationError as e:
    assert "invalid username-password pair" in str(e), e
# A store granted but never created, and the grant may not create it.
try:
    redis.Redis(port=port, username="never-made", password="fn-token", **ONCE).ping()
    raise AssertionError("opened a missing store")
except redis.ResponseError as e:
    assert str(e) == "no such store", e
# The admin's grant creates a store on first use, and names any.
a = redis.Redis(port=port, username="made-now", password="admin-token")
a.set("x", "1")
assert redis.Redis(port=port, username="made-now", password="admin-token").get("x") == b"1"
assert redis.Redis(port=port, password="admin-token").get("x") is None  # the store "default"
try:
    redis.Redis(port=port, username="Bad_Name", password="admin-token", **ONCE).ping()
    raise AssertionError("accepted an invalid store name")
except redis.ResponseError as e:
    assert "invalid store name" in str(e), e

# RESP3 through HELLO 3 AUTH.
r3 = redis.Redis(port=port, username="app", password="fn-token", protocol=3)
assert r3.get("k") == b"v"
r3.hset("h3", "f", "v")
assert r3.hgetall("h3") == {b"f": b"v"}
try:
    redis.Redis(port=port, username="app", password="nope", protocol=3, **ONCE).ping()
    raise AssertionError("HELLO accepted a wrong token")
except redis.AuthenticationError as e:
    assert "invalid username-password pair" in str(e), e
print("ok")
