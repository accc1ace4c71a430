# Strings and SET's options through redis-py, in RESP2 and RESP3, as the function's token.
import sys, time
import redis

port = int(sys.argv[1])

for protocol in (2, 3):
    r = redis.Redis(port=port, password="fn-token", protocol=protocol)
    r.flushdb()
    assert r.ping() is True
    assert r.set("k", "v") is True
    assert r.get("k") == b"v"
    assert r.get("missing") is None
    # NX / XX
    assert r.set("k", "other", nx=True) is None
    assert r.get("k") == b"v"
    assert r.set("k", "v2", xx=True) is True
    assert r.set("absent", "x", xx=True) is None
    assert r.exists("absent") == 0
    assert r.set("fresh", "1", nx=True) is True
    # GET
    assert r.set("k", "v3", get=True) == b"v2"
    assert r.set("newkey", "a", get=True) is None
    assert r.set("k", "ignored", nx=True, get=True) == b"v3"
    assert r.get("k") == b"v3"
    # EX / PX / EXAT / PXAT / KEEPTTL
    assert r.set("t", "1", ex=100) is True
    assert 99 <= r.ttl("t") <= 100
    assert r.set("t", "2", px=50_000) is True
    assert 49_000 < r.pttl("t") <= 50_000
    at = int(time.time()) + 1000
    assert r.set("t", "3", exat=at) is True
    assert 998 <= r.ttl("t") <= 1000
    assert r.set("t", "4", pxat=at * 1000) is True
    assert r.set("t", "5", keepttl=True) is True
    assert 998 <= r.ttl("t") <= 1000
    assert r.set("t", "6") is True
    assert r.ttl("t") == -1
    assert r.ttl("nothing") == -2
    for bad in (dict(ex=0), dict(px=-1)):
        try:
            r.set("t", "x", **bad)
            raise AssertionError("accepted " + repr(bad))
        except redis.ResponseError as e:
            assert str(e) == "invalid expire time in 'set' command", e
    # MSET / MGET / counters / APPEND / STRLEN / DEL / EXISTS / RENAME / TYPE
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "nope") == [b"1", b"2", None]
    assert r.incr("n") == 1
    assert r.incrby("n", 41) == 42
    assert r.decr("n") == 41
    assert r.decrby("n", 50) == -9
    assert r.append("s", "hello") == 5
    assert r.append("s", " world") == 11
    assert r.strlen("s") == 11
    assert r.get("s") == b"hello world"
    assert r.exists("a", "a", "nope") == 2
    assert r.delete("a", "nope") == 1
    r.rename("b", "c")
    assert r.get("c") == b"2" and r.get("b") is None
    assert r.type("c") == b"string" and r.type("nope") == b"none"
    try:
        r.rename("nope", "x")
        raise AssertionError("renamed a missing key")
    except redis.ResponseError as e:
        assert str(e) == "no such key", e
    # Errors with Redis' texts; the connection goes on.
    r.set("text", "abc")
    try:
        r.incr("text")
        raise AssertionError("incremented text")
    except redis.ResponseError as e:
        assert str(e) == "value is not an integer or out of range", e
    r.set("big", str(2**63 - 1))
    try:
        r.incr("big")
        raise AssertionError("overflowed")
    except redis.ResponseError as e:
        assert str(e) == "increment or decrement would overflow", e
    r.rpush("list", "x")
    try:
        r.get("list")
        raise AssertionError("GET of a list")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGTYPE Operation against a key holding the wrong kind of value"), e
    assert r.mget("list", "c") == [None, b"2"]
    assert r.dbsize() == len(set(r.scan_iter()))
    # Binary-safe keys and values.
    r.set(b"\x00\xffkey", b"\r\n\x00value")
    assert r.get(b"\x00\xffkey") == b"\r\n\x00value"
    r.close()
print("ok")
