"""Rotation while writing ~50k lines/s: rename+create loses and repeats nothing; copytruncate
(after the agent caught up, as logrotate's copytruncate can only promise) restarts at 0."""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from agent_helpers import Agent, Mock, consume, check_numbers, die, messages, need, workdir, Writer

need("kcat")
wd = workdir("rotate")
mock = Mock(1)
try:
    log = os.path.join(wd, "app.log")
    w = Writer(log)
    agent = Agent(wd, mock.bootstrap, [log])
    agent.start()
    rotations = 0
    for second in range(6):
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
    agent.wait_acked(n_rename, timeout=60)
    # copytruncate: copy, truncate in place, the writer goes on at its offset (O_APPEND).
    with open(log) as f, open(log + ".copy", "w") as c:
        c.write(f.read())
    os.truncate(log, 0)
    w.write(2000)
    w.close()
    agent.wait_acked(w.n, timeout=60)
    agent.stop()
    msgs = messages(consume(mock.bootstrap, "logs", expect=w.n))
    check_numbers(msgs, w.n, exactly_once=True)
    if len(msgs) != w.n:
        die(f"{len(msgs)} records for {w.n} lines")
    print(f"ok: {w.n} lines over {rotations} renames and a copytruncate, exactly once")
finally:
    mock.close()
