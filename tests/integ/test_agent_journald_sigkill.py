"""SIGKILL the real sluice-agent 10 times while it ships a journal (and entries keep being
appended): after a last clean run every entry is there, none lost, and the duplicates stay
within one in-flight window per kill (memory_limit worth of records plus what was acknowledged
since the last checkpoint write)."""
import json
import os
import random
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
import journal_helpers as jh  # noqa: E402
from agent_helpers import need  # noqa: E402
from kafkasrv import Server  # noqa: E402

KILLS = 10
FIRST = 20000
MORE = 10000  # appended before each restart
RECORD = 330  # bytes of the smallest record value of these entries, about
MEMORY = 256 * 1024

need("kcat")
jh.need_jremote()


def main():
    wd = tempfile.mkdtemp(prefix="sl-journald-kill-")
    jdir = os.path.join(wd, "journal")
    os.makedirs(jdir)
    jfile = os.path.join(jdir, "system.journal")
    jh.write_journal(jfile, jh.std_export(0, FIRST))
    n = FIRST
    srv = Server(os.path.join(wd, "data"), "--fsync", "never").start()
    sources = (f"  j:\n    type: journald\n    directory: {jdir}\n    topic: logs\n"
               f"    journal_fields: [SEQ_NO]\n    checkpoint_interval: 20ms\n")
    agent = jh.RealAgent(wd, srv.bootstrap, sources,
                         extra=f"memory_limit: {MEMORY}\n")
    random.seed(7)
    acked_at_kill = []
    try:
        for k in range(KILLS):
            agent.start()
            time.sleep(random.uniform(0.05, 0.25))
            acked_at_kill.append(agent.acked())
            agent.kill()
            jh.write_journal(jfile, jh.std_export(n, MORE))
            n += MORE
        agent.start()
        jh.wait_idle(agent)
        agent.stop()
        agent.start()
        # A clean stop leaves an exact checkpoint: nothing more is shipped now.
        time.sleep(1)
        extra = agent.acked()
        agent.stop()
        values = jh.consume_ts(srv.bootstrap, "logs", n)
        seen = {}
        for _, v in values:
            i = int(json.loads(v)["SEQ_NO"])
            seen[i] = seen.get(i, 0) + 1
        missing = [i for i in range(n) if i not in seen]
        if missing:
            jh.die(f"{len(missing)} of {n} entries lost, first {missing[:5]}")
        dups = sum(c - 1 for c in seen.values())
        window = MEMORY // RECORD + 5000  # records held, plus acked since the last write
        if dups > KILLS * window:
            jh.die(f"{dups} duplicates after {KILLS} kills, over {KILLS} windows of {window}")
        if extra != 0:
            jh.die(f"{extra} records shipped again after a clean stop")
        if not any(0 < a for a in acked_at_kill):
            jh.die(f"no kill happened mid-way: acked at each kill {acked_at_kill}")
        print(f"ok: {n} entries after {KILLS} kills (acked at kills {acked_at_kill}), none "
              f"lost, {dups} duplicates ({100.0 * dups / n:.1f}%)")
    finally:
        if agent.p and agent.p.poll() is None:
            agent.kill()
        srv.stop()


main()
