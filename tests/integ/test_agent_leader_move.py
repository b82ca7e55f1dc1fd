"""Three brokers, six partitions, leaders moved while producing: the agent follows
NOT_LEADER errors with a metadata refresh and loses nothing."""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from agent_helpers import Agent, Mock, consume, check_numbers, die, messages, need, workdir, Writer

need("kcat")
wd = workdir("leader")
mock = Mock(3)
try:
    mock.cmd("topic spread 6")
    writers = [Writer(os.path.join(wd, f"f{i}.log")) for i in range(6)]
    agent = Agent(wd, mock.bootstrap, [os.path.join(wd, "*.log")], topic="spread",
                  extra_source="    key: path\n")
    agent.start()
    for step in range(10):
        for i, w in enumerate(writers):
            w.n = step * 2000 + i * 10_000_000 if step == 0 else w.n
            w.write(2000)
        mock.cmd(f"leader spread {step % 6} {1 + (step % 3)}")
        mock.cmd(f"leader spread {(step + 3) % 6} {1 + ((step + 1) % 3)}")
        time.sleep(0.3)
    total = sum(w.n - i * 10_000_000 for i, w in enumerate(writers))
    for w in writers:
        w.close()
    agent.wait_acked(total, timeout=60)
    agent.stop()
    msgs = messages(consume(mock.bootstrap, "spread", expect=total))
    for i in range(6):
        mine = [m for m in msgs if m["source"].endswith(f"/f{i}.log")]
        nums = [int(m["message"].split(" ", 1)[0]) - i * 10_000_000 for m in mine]
        if sorted(set(nums)) != list(range(20000)):
            die(f"f{i}.log: {len(set(nums))} distinct lines of 20000")
    print(f"ok: {total} lines over 6 partitions with leaders moving")
finally:
    mock.close()
