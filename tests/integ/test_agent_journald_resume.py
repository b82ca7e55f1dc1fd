"""How the journald input resumes, each case with its log line, the real sluice-agent against the
real sluice-collector: a checkpoint cursor naming an entry (exactly the entries after it), a
garbage state file (from the head), a cursor from another journal (from the first entry at or
after its time), a vacuumed cursor (from the oldest entry after it); then a journal file that is
corrupt (what can be read is shipped, the gap logged), a journal folder that appears only after
the start (the agent waits and then reads it), read_from: tail on `files` (only what is
appended), a rotation while the agent holds an entry it cannot ship yet (that entry and all
after it arrive; with the archived file vacuumed too, reading goes on after it, logged), and a
journal it may not read (a clear error naming the systemd-journal group)."""
import json
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
import journal_helpers as jh  # noqa: E402
from agent_helpers import need  # noqa: E402
from kafkasrv import Server  # noqa: E402

N = 30000
T0 = 1700000000000000
FILE_LIMIT = 12 << 20  # several journal files, as rotation leaves them
HEADER = "sluice-journald-checkpoint 1\n"

need("kcat")
jh.need_jremote()
wd = tempfile.mkdtemp(prefix="sl-journald-resume-")
srv = Server(os.path.join(wd, "data"), "--fsync", "never").start()
topics = 0


def run(name, jdir=None, state=None, extra="", wait_for=None, before_idle=None, files=None):
    """Runs the agent once on a journald source reading jdir (or files) into a fresh topic,
    with the checkpoint file holding `state` (None: none); returns the SEQ_NOs shipped and
    the agent's log."""
    global topics
    topics += 1
    topic = f"t{topics}-{name}"
    awd = os.path.join(wd, name)
    os.makedirs(os.path.join(awd, "state"))
    os.chmod(os.path.join(awd, "state"), 0o777)  # the "denied" run is not root's
    if state is not None:
        with open(os.path.join(awd, "state", "journald-j.cursor"), "w") as f:
            f.write(state)
    where = f"    files: [{', '.join(files)}]\n" if files else f"    directory: {jdir}\n"
    agent = jh.RealAgent(awd, srv.bootstrap,
                         f"  j:\n    type: journald\n{where}    topic: {topic}\n"
                         f"    journal_fields: [SEQ_NO]\n    reopen: 200ms\n{extra}")
    agent.start()
    try:
        if wait_for:
            jh.wait_log(agent, wait_for)
        if before_idle:
            before_idle(agent)
        n = jh.wait_idle(agent)
        agent.stop()
    finally:
        if agent.p.poll() is None:
            agent.kill()
    got = [int(json.loads(v)["SEQ_NO"]) for _, v in jh.consume_ts(srv.bootstrap, topic, n)]
    return got, agent.log()


def expect(name, got, want, log, line):
    """got and want are SEQ_NOs: the same ones, as often (see journal_entries)."""
    if sorted(got) != sorted(want):
        jh.die(f"{name}: {len(got)} entries, want {len(want)}; first {sorted(got)[:3]}, "
               f"want first {sorted(want)[:3]}")
    if line not in log:
        jh.die(f"{name}: no log line {line!r}:\n{log[-3000:]}")
    print(f"ok: {name}: {len(got)} entries, logged {line!r}")


def rotated_while_waiting(vacuum):
    """With its collector down the agent holds an entry it cannot ship (waiting for the topic's
    metadata, or at memory_limit); the journal then rotates, so sd-journal closes the file and
    forgets that entry. With the collector back, the held entry and every one after it arrive,
    none skipped, none twice. With vacuum, the archived file is deleted too: reading goes on at
    the first entry after the held one (the new file), logged."""
    name = "vacuumed-while-waiting" if vacuum else "rotated-while-waiting"
    rot = os.path.join(wd, name + "-journal")
    os.makedirs(rot)
    jh.write_journal(os.path.join(rot, "system.journal"), jh.std_export(0, 3000, T0))
    srv2 = Server(os.path.join(wd, name + "-data"), "--fsync", "never").start()
    srv2.stop()  # its port stays the agent's collector address
    agent = jh.RealAgent(os.path.join(wd, name), srv2.bootstrap,
                         f"  j:\n    type: journald\n    directory: {rot}\n    topic: rot\n"
                         f"    journal_fields: [SEQ_NO]\n", extra="memory_limit: 64KiB\n")
    agent.start()
    try:
        last, since, end = -1, time.time(), time.time() + 30
        while time.time() < end and time.time() - since < 0.5:
            now = int(agent.metric("sluice_agent_journal_entries_read_total"))
            if now != last:
                last, since = now, time.time()
            time.sleep(0.05)
        if not 0 <= last < 3000:  # 0: held at the first entry, waiting for the topic's metadata
            jh.die(f"{name}: {last} entries read with the collector down; the test needs the "
                   "agent waiting on an entry")
        # Rotation: the file is archived under a new name and a new one takes its name; the new
        # inode at a known path is what makes sd-journal drop the file it was reading.
        archived = os.path.join(rot, f"system@{'0' * 32}-{1:016x}-{T0:016x}.journal")
        os.rename(os.path.join(rot, "system.journal"), archived)
        if vacuum:
            os.unlink(archived)
        jh.write_journal(os.path.join(rot, "system.journal"), jh.std_export(3000, 10, T0))
        jh.wait_log(agent, "journal files were added or removed")
        srv2.start()
        want = list(range(last, 3000)) if not vacuum else []
        want = list(range(last)) + want + list(range(3000, 3010))
        agent.wait_acked(len(want), timeout=60)
        n = jh.wait_idle(agent)
        agent.stop()
        got = [int(json.loads(v)["SEQ_NO"]) for _, v in jh.consume_ts(srv2.bootstrap, "rot", n)]
    finally:
        if agent.p.poll() is None:
            agent.kill()
        srv2.stop()
    log = agent.log()
    if "was skipped" in log:
        jh.die(f"{name}: an entry was skipped:\n{log[-3000:]}")
    expect(name, got, want, log,
           "was removed from the journal (vacuumed) while waiting to be shipped; reading on "
           "from the entry after it" if vacuum else "journal files were added or removed")
    if not vacuum and "removed from the journal" in log:
        jh.die(f"{name}: the held entry was taken for vacuumed:\n{log[-3000:]}")
    print(f"ok: {name}: the agent was held at entry {last} of 3000")


def main():
    jdir = os.path.join(wd, "journal")
    os.makedirs(jdir)
    jh.write_journal(os.path.join(jdir, "system.journal"), jh.std_export(0, N, T0), FILE_LIMIT)
    archived = sorted(f for f in os.listdir(jdir) if "@" in f)
    if not archived:
        jh.die("the journal did not rotate")
    entries = jh.journal_entries(os.path.join(jdir, "*.journal"))
    cursors = [c for c, _ in entries]
    seqnos = [i for _, i in entries]
    if set(seqnos) != set(range(N)):
        jh.die(f"journalctl does not see entries 0..{N - 1}")

    # The cursor names entry k: exactly the entries after it, none twice.
    k = 12345
    got, log = run("exact", jdir, HEADER + cursors[k] + "\n")
    expect("exact cursor", got, seqnos[k + 1:], log, "resuming after the checkpoint's entry")

    # Garbage in the state file: from the head, loudly.
    got, log = run("garbage", jdir, HEADER + "garbage\n")
    expect("garbage cursor", got, seqnos, log,
           "'garbage' is not a journal cursor; reading the journal from its head")

    # A cursor of another journal (its own sequence id and boot): placed by its time.
    other = os.path.join(wd, "other")
    os.makedirs(other)
    tb = T0 + 20000 * 1000 + 500  # between entries 20000 and 20001
    jh.write_journal(os.path.join(other, "other.journal"),
                     b"".join(jh.export_entry([("MESSAGE", f"other {i}")], tb + i, 99 + i,
                                              boot="aaaaaaaabbbbbbbbccccccccdddddddd")
                              for i in range(3)))
    ocur = jh.journal_cursors(os.path.join(other, "other.journal"))[0]
    got, log = run("other", jdir, HEADER + ocur + "\n")
    expect("cursor from another journal", got, seqnos[seqnos.index(20001):], log,
           "the checkpoint's cursor is from another journal")

    # Vacuumed: the file holding the cursor's entry is deleted; the oldest entry after it
    # (the first of the next file) is where reading resumes.
    vac = os.path.join(wd, "vacuumed")
    shutil.copytree(jdir, vac)
    oldest = os.path.join(vac, archived[0])
    gone = len(jh.journal_cursors(oldest))
    os.unlink(oldest)
    got, log = run("vacuumed", vac, HEADER + cursors[100] + "\n")
    expect("vacuumed cursor", got, seqnos[gone:], log,
           f"the checkpoint's entry (seqnum {101}) is no longer in the journal (vacuumed); "
           f"resuming at the oldest entry after it (seqnum {gone + 1})")

    # A corrupt journal file: sd-journal steps over what it cannot read; the agent ships the
    # rest (what journalctl sees too) and logs the gap.
    bad = os.path.join(wd, "corrupt")
    shutil.copytree(jdir, bad)
    victim = os.path.join(bad, archived[0])
    size = os.path.getsize(victim)
    with open(victim, "r+b") as f:
        f.seek(size // 2)
        f.write(bytes((i * 131 + 7) % 256 for i in range(size // 8)))
    readable = [i for _, i in jh.journal_entries(os.path.join(bad, "*.journal"))]
    got, log = run("corrupt", bad)
    if len(readable) >= len(seqnos):
        jh.die("corrupt: the damage did not cost any entry; the test needs other damage")
    expect("corrupt file", got, readable, log, "could not be read (a corrupt journal file")

    # The folder appears only after the start: waited for, then read.
    late = os.path.join(wd, "late-journal")

    def create(agent):
        os.makedirs(late)
        jh.write_journal(os.path.join(late, "system.journal"), jh.std_export(0, 100))
        jh.wait_log(agent, "is there now; reading it")
    got, log = run("late", late, wait_for="no such file or folder; looking again every 200ms",
                   before_idle=create)
    expect("folder created later", got, range(100), log, "is there now; reading it")

    # read_from: tail on `files`: only entries appended after the start are shipped.
    def append(agent):
        jh.write_journal(os.path.join(late, "system.journal"), jh.std_export(100, 50))
    got, log = run("tail", files=[os.path.join(late, "system.journal")],
                   extra="    read_from: tail\n",
                   wait_for="first start: reading new entries only (read_from: tail)",
                   before_idle=append)
    expect("read_from tail", got, range(100, 150), log, "reading new entries only")

    rotated_while_waiting(vacuum=False)
    rotated_while_waiting(vacuum=True)

    # format: raw, key: path: the message as the value, the unit as the key, the rest headers.
    awd = os.path.join(wd, "raw")
    agent = jh.RealAgent(awd, srv.bootstrap,
                         f"  j:\n    type: journald\n    directory: {late}\n    topic: raw\n"
                         f"    format: raw\n    key: path\n")
    agent.start()
    n = jh.wait_idle(agent)
    agent.stop()
    out = jh.subprocess.run(["kcat", "-C", "-b", srv.bootstrap, "-t", "raw", "-o", "beginning",
                             "-e", "-q", "-f", "%k|%h|%s\n"], capture_output=True, text=True,
                            timeout=120).stdout.splitlines()
    if n != 150 or len(out) != 150:
        jh.die(f"raw: {n} read, {len(out)} consumed, not 150")
    want = []
    for i in range(150):
        f = dict(jh.std_fields(i))
        want.append(f"{f['_SYSTEMD_UNIT']}|host=test-host,source=journald:{late},"
                    f"unit={f['_SYSTEMD_UNIT']},priority={f['PRIORITY']}|{f['MESSAGE']}")
    if sorted(out) != sorted(want):  # partitions (by key) may interleave
        jh.die(f"raw records: {sorted(set(out) - set(want))[:2]} not expected, "
               f"{sorted(set(want) - set(out))[:2]} missing")
    print("ok: format raw, key path: 150 records, message as value, unit as key, headers")

    # A journal file the agent may not read: a clear error, and the agent runs on.
    locked = os.path.join(wd, "locked-journal")
    os.makedirs(locked)
    lf = os.path.join(locked, "system.journal")
    jh.write_journal(lf, jh.std_export(0, 10))
    if os.geteuid() == 0:
        # root reads everything: run the agent as nobody instead.
        import pwd
        nobody = pwd.getpwnam("nobody")
        os.chmod(lf, 0o600)
        os.chmod(wd, 0o755)  # nobody reaches its configuration and the journal's folder
        orig = jh.subprocess.Popen

        def as_nobody(*a, **kw):
            kw["preexec_fn"] = lambda: (os.setgid(nobody.pw_gid), os.setgroups([]),
                                        os.setuid(nobody.pw_uid))
            return orig(*a, **kw)
        jh.subprocess.Popen = as_nobody
        try:
            got, log = run("denied", files=[lf], wait_for="permission denied")
        finally:
            jh.subprocess.Popen = orig
    else:
        os.chmod(lf, 0)
        got, log = run("denied", files=[lf], wait_for="permission denied")
    expect("unreadable journal", got, [], log, "to the 'systemd-journal' group")

    # Without any journal folder on this machine, the system journal is waited for.
    mid = open("/etc/machine-id").read().strip()
    if not any(os.path.exists(f"{d}/{mid}") for d in ("/run/log/journal", "/var/log/journal")):
        awd = os.path.join(wd, "system")
        agent = jh.RealAgent(awd, srv.bootstrap, "  j:\n    type: journald\n    topic: sys\n")
        agent.start()
        jh.wait_log(agent, f"no system journal here: neither /run/log/journal/{mid} nor "
                           f"/var/log/journal/{mid} exists")
        agent.stop()
        print("ok: no system journal: warned, and the agent ran on")
    else:
        print("note: this machine has a system journal; the absent-journal case was not run")


try:
    main()
finally:
    srv.stop()
