"""SIGKILL the agent 20 times while lines are written: after a last clean run every line is
there, none lost (duplicates only for what was in flight)."""
import os
import random
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from agent_helpers import Agent, Mock, consume, check_numbers, die, messages, need, workdir, Writer

need("kcat")
wd = workdir("kill")
mock = Mock(1)
try:
    log = os.path.join(wd, "app.log")
    w = Writer(log)
    agent = Agent(wd, mock.bootstrap, [log],
                  extra_source="    checkpoint_interval: 20ms\n")
    random.seed(7)
    for i in range(20):
        agent.start()
        w.write(5000)
        time.sleep(random.uniform(0.05, 0.4))
        agent.kill()
    agent.start()
    w.write(1000)
    w.close()
    agent.wait_acked(1, timeout=30)
    time.sleep(1)
    agent.stop()
    values = consume(mock.bootstrap, "logs", expect=w.n)
    seen = check_numbers(messages(values), w.n, exactly_once=False)
    dups = sum(c - 1 for c in seen.values())
    print(f"ok: {w.n} lines after 20 kills, {dups} duplicates ({100.0 * dups / w.n:.1f}%)")
finally:
    mock.close()
