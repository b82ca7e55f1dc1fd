"""1M lines tailed, gzip-batched and produced to a mock Kafka cluster arrive exactly once, in
order per partition, as JSON records with time, host, source and message (read with kcat).
The records have null keys (sticky partitions): librdkafka's mock keeps about 5 MB per
partition, less than 1M compressed lines."""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from agent_helpers import Agent, Mock, consume, check_numbers, die, messages, need, workdir, Writer

N = int(os.environ.get("SL_TEST_LINES", "1000000"))

need("kcat")
wd = workdir("once")
mock = Mock(1)
try:
    log = os.path.join(wd, "app.log")
    w = Writer(log)
    w.write(N // 2)
    agent = Agent(wd, mock.bootstrap, [os.path.join(wd, "*.log")],
                  extra_source="    key: none\n")
    agent.start()
    w.write(N - N // 2)  # the second half while it runs
    w.close()
    agent.wait_acked(N, timeout=120)
    agent.stop()
    pv = consume(mock.bootstrap, "logs", expect=N, partitions=True)
    msgs = messages([v for _, v in pv])
    if len(msgs) != N:
        die(f"{len(msgs)} records, wanted {N}")
    check_numbers(msgs, N, exactly_once=True)
    # Within each partition the order is the file's.
    for part in set(p for p, _ in pv):
        nums = [int(m["message"].split(" ", 1)[0]) for (p, _), m in zip(pv, msgs) if p == part]
        if nums != sorted(nums):
            die(f"partition {part}: records out of order")
    m = msgs[0]
    if m["host"] != "test-host" or m["source"] != "file:" + log or not m["time"].endswith("Z"):
        die(f"bad record {m}")
    # The checkpoint says everything was acknowledged.
    ck = open(os.path.join(wd, "state", "tail-app.pos")).read().split("\n")[1].split(" ")
    if int(ck[4]) != os.path.getsize(log):
        die(f"checkpoint {ck} != size {os.path.getsize(log)}")
    print(f"ok: {N} lines exactly once")
finally:
    mock.close()
