# Hashes, lists and sets in RESP2 and RESP3 (where HGETALL is a map and SMEMBERS a set).
import sys
import redis

port = int(sys.argv[1])

for protocol in (2, 3):
    r = redis.Redis(port=port, password="fn-token", protocol=protocol)
    r.flushdb()
    # Hashes
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", "a", "10") == 0
    assert r.hget("h", "a") == b"10"
    assert r.hget("h", "zz") is None
    assert r.hmget("h", ["a", "zz", "b"]) == [b"10", None, b"2"]
    assert r.hgetall("h") == {b"a": b"10", b"b": b"2"}
    assert r.hgetall("nohash") == {}
    assert r.hlen("h") == 2
    assert r.hincrby("h", "a", 5) == 15
    assert r.hincrby("h", "new", -3) == -3
    try:
        r.hset("h", "word", "x")
        r.hincrby("h", "word", 1)
        raise AssertionError("HINCRBY of text")
    except redis.ResponseError as e:
        assert str(e) == "hash value is not an integer", e
    assert r.hdel("h", "a", "zz") == 1
    assert r.type("h") == b"hash"
    assert r.hdel("h", "b", "new", "word") == 3
    assert r.exists("h") == 0  # emptied collections are gone, as in Redis
    # Lists
    assert r.rpush("l", "a", "b", "c") == 3
    assert r.lpush("l", "z", "y") == 5
    assert r.lrange("l", 0, -1) == [b"y", b"z", b"a", b"b", b"c"]
    assert r.lrange("l", -2, 100) == [b"b", b"c"]
    assert r.lrange("l", 3, 1) == []
    assert r.llen("l") == 5
    assert r.lpop("l") == b"y"
    assert r.rpop("l") == b"c"
    assert r.lpop("l", 2) == [b"z", b"a"]
    assert r.rpop("l", 5) == [b"b"]
    assert r.lpop("l") is None
    assert r.lpop("l", 3) is None
    assert r.llen("l") == 0
    # Sets
    assert r.sadd("s", "x", "y", "x") == 2
    assert r.sadd("s", "z") == 1
    assert r.smembers("s") == {b"x", b"y", b"z"}
    assert r.sismember("s", "x") in (True, 1)
    assert r.sismember("s", "nope") in (False, 0)
    assert r.scard("s") == 3
    assert r.srem("s", "x", "nope") == 1
    assert r.smembers("nothing") == set()
    # Types are kept apart.
    r.hset("h2", "f", "v")
    for call in (lambda: r.lpush("h2", "a"), lambda: r.sadd("h2", "x"), lambda: r.llen("h2"),
                 lambda: r.smembers("h2"), lambda: r.get("h2"), lambda: r.hset("l2", "f", "v")):
        r.rpush("l2", "a")
        try:
            call()
            raise AssertionError("no WRONGTYPE")
        except redis.ResponseError as e:
            assert str(e).startswith("WRONGTYPE"), e
    r.close()
print("ok")
