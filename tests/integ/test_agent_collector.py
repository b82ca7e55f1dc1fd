"""The agent against our own collector (sl-test-kafka_server): lines tailed, produced with
acks=all, stored, and read back exactly once with kcat."""
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from agent_helpers import TOOLS, Agent, consume, check_numbers, die, messages, need, workdir, Writer

N = int(os.environ.get("SL_TEST_LINES", "200000"))
FSYNC = os.environ.get("SL_TEST_FSYNC", "never")

need("kcat")
wd = workdir("coll")
data = os.path.join(wd, "data")
os.makedirs(data)
srv = subprocess.Popen([os.path.join(TOOLS, "sl-test-kafka_server"), "--data-dir", data,
                        "--fsync", FSYNC], stdout=subprocess.PIPE,
                       stderr=open(os.path.join(wd, "collector.log"), "w"), text=True)
try:
    line = srv.stdout.readline().split()
    if len(line) != 2 or line[0] != "PORT":
        die(f"collector did not start: {line}")
    bootstrap = f"127.0.0.1:{line[1]}"
    w = Writer(os.path.join(wd, "app.log"))
    w.write(N // 2)
    agent = Agent(wd, bootstrap, [w.path])
    agent.start()
    w.write(N - N // 2)
    w.close()
    t0 = time.time()
    agent.wait_acked(N, timeout=120)
    took = time.time() - t0
    agent.stop()
    msgs = messages(consume(bootstrap, "logs", expect=N))
    check_numbers(msgs, N, exactly_once=True)
    if len(msgs) != N:
        die(f"{len(msgs)} records for {N} lines")
    print(f"ok: {N} lines through the collector exactly once (fsync {FSYNC}, {took:.1f}s)")
finally:
    srv.terminate()
    srv.wait(30)
