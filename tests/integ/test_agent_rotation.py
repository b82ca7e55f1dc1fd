"""Rotation every second while writing ~50k lines/s.

Phase 1, rename+create: nothing lost or repeated. Phase 2, copytruncate every second while the
writer goes on: what the agent had not read when the file was truncated is only in the copy,
which is the race copytruncate has by design (logrotate's own caveat); those lines are counted
and reported, every other line must arrive exactly once. A last copytruncate after the agent
caught up loses nothing. SL_TEST_ROTATE_SECONDS sets each phase's length: 6 in CI, 60 for the
issue's full run. The records go to sluice-collector, which keeps them all (the mock broker
keeps about 5 MB per partition)."""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from agent_helpers import Agent, consume, die, need, workdir, Writer
from kafkasrv import Server

need("kcat")
wd = workdir("rotate")
srv = Server(os.path.join(wd, "data"), "--fsync", "never").start()
try:
    log = os.path.join(wd, "app.log")
    w = Writer(log)
    agent = Agent(wd, srv.bootstrap, [log])
    agent.start()
    seconds = int(os.environ.get("SL_TEST_ROTATE_SECONDS", "6"))
    rotations = 0
    for second in range(seconds):
        t0 = time.time()
        for _ in range(10):  # 10 x 5000 lines per second
            w.write(5000)
            time.sleep(max(0, 0.1 - (time.time() - t0) % 0.1))
        os.rename(log, f"{log}.{rotations}")
        rotations += 1
        w.write(100)  # the writer still appends to the renamed file ...
        w.reopen()    # ... until it reopens its log
    w.write(1000)
    n_rename = w.n
    agent.wait_acked(n_rename, timeout=60 + seconds)
    # Phase 2: copytruncate every second while writing, without waiting for the agent.
    copied = set()
    for second in range(seconds):
        t0 = time.time()
        for _ in range(10):
            w.write(5000)
            time.sleep(max(0, 0.1 - (time.time() - t0) % 0.1))
        with open(log) as f, open(f"{log}.copy{second}", "w") as c:
            data = f.read()
            c.write(data)
        os.truncate(log, 0)
        copied.update(int(line.split(" ", 1)[0]) for line in data.splitlines())
    w.write(1000)
    # Quiet end: the agent catches up, then one more copytruncate loses nothing.
    time.sleep(2)
    before_last = w.n
    with open(log) as f, open(log + ".copylast", "w") as c:
        c.write(f.read())
    os.truncate(log, 0)
    w.write(2000)
    w.close()
    # The lines lost to the race are never acknowledged: wait until the agent's count has been
    # still for a few seconds, then read the topic once.
    last, still_since, end = -1, time.time(), time.time() + 120 + seconds
    while time.time() < end and time.time() - still_since < 3:
        acked = agent.stats()["acked"]
        if acked != last:
            last, still_since = acked, time.time()
        time.sleep(0.2)
    agent.stop()
    # Counted per line number in a bytearray: the 60 s run has millions of records.
    count = bytearray(w.n)
    for value in consume(srv.bootstrap, "logs", expect=last):
        k = int(json.loads(value)["message"].split(" ", 1)[0])
        count[k] = min(count[k] + 1, 255)
    dups = [i for i in range(w.n) if count[i] > 1]
    if dups:
        die(f"{len(dups)} lines duplicated, first {dups[:5]}")
    lost = [i for i in range(w.n) if count[i] == 0]
    outside = [i for i in lost if i not in copied or i >= before_last]
    if outside:
        die(f"{len(outside)} lines lost outside the copytruncate race, first {outside[:5]}")
    print(f"ok: {w.n} lines; {rotations} renames lost and repeated nothing; {seconds} "
          f"copytruncates while writing lost {len(lost)} lines to the copy/truncate race "
          f"({100 * len(lost) / max(1, w.n - n_rename):.2f}% of those written then); "
          f"none duplicated")
finally:
    srv.stop()
