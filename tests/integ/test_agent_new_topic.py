"""A topic first used while a Metadata request for the others is in flight is shipped at once.

Two tail sources, topics ta and tc. librdkafka's mock broker answers every request a second
late, so the first Metadata request (for ta only) is still in flight when c.log gets its lines
and tc becomes known. The agent used to take that request's answer as complete and left tc
without partitions until the periodic refresh (5 minutes): c.log sat unread. This was the
in_tail "race" of integ.agent_reload. Every line of both files must arrive within seconds."""
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import journal_helpers as jh  # noqa: E402
from agent_helpers import Mock, consume, check_numbers, messages, need, Writer  # noqa: E402

RTT_MS = 1000


def main():
    need("kcat")
    w = tempfile.mkdtemp(prefix="sl-agent-new-topic-")
    mock = Mock(1)
    agent = None
    try:
        mock.cmd(f"rtt 1 {RTT_MS}")
        a, c = Writer(os.path.join(w, "a.log")), Writer(os.path.join(w, "c.log"))
        agent = jh.RealAgent(os.path.join(w, "agent"), mock.bootstrap,
                             f"  a:\n    type: tail\n    paths: [{a.path}]\n    topic: ta\n"
                             f"  c:\n    type: tail\n    paths: [{c.path}]\n    topic: tc\n",
                             log_level="debug")
        agent.start()
        a.write(100)
        # ApiVersions takes one RTT, then Metadata for [ta] is sent and answered one RTT later:
        # tc appears in the middle of that second RTT.
        time.sleep(1.5 * RTT_MS / 1000)
        c.write(100)
        start = time.time()
        agent.wait_acked(200, timeout=30)
        took = time.time() - start
        mock.cmd("rtt 1 0")  # the checks need no slow broker
        agent.stop()
        agent = None
        check_numbers(messages(consume(mock.bootstrap, "ta", expect=a.n)), a.n)
        check_numbers(messages(consume(mock.bootstrap, "tc", expect=c.n)), c.n)
        print(f"ok: tc shipped {took:.1f}s after its lines appeared (RTT {RTT_MS} ms)")
    finally:
        if agent:
            agent.kill()
        mock.close()
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
