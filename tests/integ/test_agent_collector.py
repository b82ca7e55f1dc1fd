"""The agent against our own collector: 1,000,000 lines (half written before the agent starts,
half while it runs) tailed by sluice-agent, produced with acks=all to sluice-collector, stored,
and read back with kcat: every line exactly once, in the file's order within each partition.
SL_TEST_LINES and SL_TEST_FSYNC (never, interval, always) change the run."""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from agent_helpers import Agent, consume, check_numbers, die, messages, need, workdir, Writer
from kafkasrv import Server

N = int(os.environ.get("SL_TEST_LINES", "1000000"))
FSYNC = os.environ.get("SL_TEST_FSYNC", "never")

need("kcat")
wd = workdir("coll")
srv = Server(os.path.join(wd, "data"), "--fsync", FSYNC).start()
try:
    w = Writer(os.path.join(wd, "app.log"))
    w.write(N // 2)
    agent = Agent(wd, srv.bootstrap, [w.path])
    agent.start()
    w.write(N - N // 2)
    w.close()
    t0 = time.time()
    agent.wait_acked(N, timeout=300)
    took = time.time() - t0
    agent.stop()
    pv = consume(srv.bootstrap, "logs", expect=N, partitions=True)
    msgs = messages([v for _, v in pv])
    check_numbers(msgs, N, exactly_once=True)
    if len(msgs) != N:
        die(f"{len(msgs)} records for {N} lines")
    for part in set(p for p, _ in pv):
        nums = [int(m["message"].split(" ", 1)[0]) for (p, _), m in zip(pv, msgs) if p == part]
        if nums != sorted(nums):
            die(f"partition {part}: records out of order")
    print(f"ok: {N} lines through sluice-collector exactly once (fsync {FSYNC}, {took:.1f}s)")
finally:
    srv.stop()
