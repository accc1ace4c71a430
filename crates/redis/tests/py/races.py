# Many concurrent clients: INCR totals are exact, and SET NX has exactly one winner per key.
import sys, threading
import redis

port = int(sys.argv[1])
THREADS, INCRS, ROUNDS = 24, 100, 40

redis.Redis(port=port, password="fn-token").flushdb()
clients = [redis.Redis(port=port, password="fn-token") for _ in range(THREADS)]
barrier = threading.Barrier(THREADS)
wins = [[] for _ in range(THREADS)]
errors = []

def work(i):
    r = clients[i]
    try:
        barrier.wait()
        for _ in range(INCRS):
            r.incr("counter")
            r.hincrby("h", "field", 2)
        for round in range(ROUNDS):
            barrier.wait()
            if r.set(f"lock:{round}", f"owner-{i}", nx=True):
                wins[i].append(round)
    except Exception as e:
        errors.append(repr(e))
        barrier.abort()

threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors
r = redis.Redis(port=port, password="fn-token")
assert int(r.get("counter")) == THREADS * INCRS, r.get("counter")
assert int(r.hget("h", "field")) == THREADS * INCRS * 2
by_round = {}
for i, rounds in enumerate(wins):
    for round in rounds:
        by_round.setdefault(round, []).append(i)
assert sorted(by_round) == list(range(ROUNDS)), by_round
for round, winners in by_round.items():
    assert len(winners) == 1, (round, winners)
    assert r.get(f"lock:{round}") == f"owner-{winners[0]}".encode()
print("ok")
