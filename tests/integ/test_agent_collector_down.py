"""Every collector down for a while: reading pauses, nothing is lost, a file rotated meanwhile
is held open and drained, and shipping resumes by itself."""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from agent_helpers import Agent, Mock, consume, check_numbers, die, messages, need, workdir, Writer

DOWN = float(os.environ.get("SL_TEST_DOWN_SECONDS", "20"))

need("kcat")
wd = workdir("down")
mock = Mock(1)
try:
    log = os.path.join(wd, "app.log")
    w = Writer(log)
    agent = Agent(wd, mock.bootstrap, [log], extra="memory_limit: 1MiB\n")
    agent.start()
    w.write(10000)
    agent.wait_acked(10000)
    mock.cmd("down 1")
    t0 = time.time()
    while time.time() - t0 < DOWN:
        w.write(20000)
        if abs(time.time() - t0 - DOWN / 2) < 0.6:
            os.rename(log, log + ".1")
            w.reopen()
        time.sleep(1)
    s = agent.stats()
    if int(s["memory"]) > 2 << 20:
        die(f"memory not bounded while down: {s}")
    mock.cmd("up 1")
    w.close()
    agent.wait_acked(w.n, timeout=120)
    agent.stop()
    check_numbers(messages(consume(mock.bootstrap, "logs", expect=w.n)), w.n, exactly_once=False)
    print(f"ok: {w.n} lines across {DOWN:.0f}s without a collector")
finally:
    mock.close()
