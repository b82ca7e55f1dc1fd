"""SIGHUP: a source added and one removed while running; the kept source resumes from its
checkpoint (nothing lost or repeated), the new one starts shipping, the removed one stops."""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from agent_helpers import Agent, Mock, consume, check_numbers, die, messages, need, workdir, Writer

need("kcat")
wd = workdir("reload")
mock = Mock(1)
try:
    a, b, c = (Writer(os.path.join(wd, f"{n}.log")) for n in "abc")
    agent = Agent(wd, mock.bootstrap, [a.path], topic="ta")
    with open(agent.conf) as f:
        first = f.read()
    # A second source "gone" that the reload removes.
    with open(agent.conf, "w") as f:
        f.write(first.replace("output:", f"  gone:\n    type: tail\n    paths: [{c.path}]\n"
                                         f"    topic: tc\noutput:"))
    agent.start()
    a.write(5000)
    c.write(100)
    agent.wait_acked(5100)
    with open(agent.conf, "w") as f:
        f.write(first.replace("output:", f"  added:\n    type: tail\n    paths: [{b.path}]\n"
                                         f"    topic: tb\noutput:"))
    agent.reload()
    a.write(5000)
    b.write(3000)
    c.write(100)  # not followed any more
    agent.wait_acked(5100 + 5000 + 3000)
    time.sleep(0.5)
    agent.stop()
    check_numbers(messages(consume(mock.bootstrap, "ta", expect=a.n)), a.n, exactly_once=True)
    check_numbers(messages(consume(mock.bootstrap, "tb", expect=b.n)), b.n, exactly_once=True)
    got_c = len(consume(mock.bootstrap, "tc", expect=100))
    if got_c != 100:
        die(f"removed source shipped {got_c} records, wanted the 100 before the reload")
    print("ok: reload added and removed sources without losing positions")
finally:
    mock.close()
