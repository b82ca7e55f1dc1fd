"""The journald input end to end: 100,000 entries across several units in journal files written
by systemd-journal-remote (rotated as journald rotates), read by the real sluice-agent through
`directory`, shipped to the real sluice-collector and consumed back with kcat: every entry
exactly once with its fields right, matches/units/priority filters honoured, entries appended
while the agent runs arrive, and binary fields, huge and empty messages come out as documented."""
import base64
import datetime
import json
import os
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
import journal_helpers as jh  # noqa: E402
from agent_helpers import need  # noqa: E402
from kafkasrv import Server  # noqa: E402

N = 100000
FIRST = 60000  # written before the agent starts; the rest while it runs
MAX = 64 * 1024  # max_entry_bytes
T0 = 1700000000000000
FILE_LIMIT = 24 << 20  # journal files rotate at this size

need("kcat")
jh.need_jremote()


def special_export():
    """Entries N, N+1, N+2: a binary field and a binary message, a message over max_entry_bytes
    (compressed by journal-remote, so the data threshold path is used), an empty message."""
    base = [("_SYSTEMD_UNIT", "special.service"), ("PRIORITY", "5"), ("_PID", "77"),
            ("SYSLOG_IDENTIFIER", "special")]
    huge = ("H" * 50 + "\u00e9") * 4000  # 204,000 bytes of text, 2-byte characters inside
    ents = [
        base + [("SEQ_NO", str(N)), ("MESSAGE", b"bin \xff\xfe\x00 msg"),
                ("BLOB", b"\x00\x01\x02\xff\n\"q\"")],
        base + [("SEQ_NO", str(N + 1)), ("MESSAGE", huge), ("MULTI", "line one\nline two")],
        base + [("SEQ_NO", str(N + 2)), ("MESSAGE", "")],
    ]
    return b"".join(jh.export_entry(f, T0 + (N + k) * 1000, 5000000 + (N + k) * 1000)
                    for k, f in enumerate(ents)), huge


def expected_time(i):
    t = T0 + i * 1000
    d = datetime.datetime.fromtimestamp(t // 1000000, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{t % 1000000:06d}Z"


def check_all(records, huge, jdir, twice):
    seen = {}
    good = set()
    for ts, v in records:
        rec = json.loads(v)
        i = int(rec["SEQ_NO"])
        if i in seen and i not in twice:
            jh.die(f"entry {i} shipped twice")
        seen[i] = rec
        if ts != (T0 + i * 1000) // 1000:
            jh.die(f"entry {i}: record timestamp {ts}, not the entry's time")
        want = {"time": expected_time(i), "host": "test-host", "source": "journald:" + jdir}
        if i < N:
            f = dict(jh.std_fields(i))
            want.update({"unit": f["_SYSTEMD_UNIT"], "priority": int(f["PRIORITY"]),
                         "pid": int(f["_PID"]), "syslog_identifier": f["SYSLOG_IDENTIFIER"],
                         "message": f["MESSAGE"], "_COMM": f["_COMM"], "SEQ_NO": str(i)})
            if rec == want:
                good.add(i)
            elif i not in twice:
                jh.die(f"entry {i}: got {rec}, want {want}")
            # An entry in two files (a forced rotation hit the file size limit while writing
            # it) may be partial in the first one: one of its copies must be whole.
    if len(records) != N + 3 + len(twice):
        jh.die(f"{len(records)} records for {N + 3 + len(twice)} journal entries")
    missing = [i for i in range(N + 3) if i not in seen]
    if missing:
        jh.die(f"{len(missing)} entries never arrived, first {missing[:5]}")
    broken = [i for i in twice if i < N and i not in good]
    if broken:
        jh.die(f"entries written twice with no whole copy: {broken[:5]}")
    b = seen[N]
    if (b["message"] != "bin \ufffd\ufffd\u0000 msg"
            or base64.b64decode(b["message_base64"]) != b"bin \xff\xfe\x00 msg"
            or base64.b64decode(b["BLOB_base64"]) != b"\x00\x01\x02\xff\n\"q\""
            or "BLOB" in b or b.get("truncated")):
        jh.die(f"binary entry: {b}")
    h = seen[N + 1]
    cut = huge.encode()[:MAX]
    while True:  # the cut never splits a character
        try:
            cut_text = cut.decode()
            break
        except UnicodeDecodeError:
            cut = cut[:-1]
    if h["message"] != cut_text or h.get("truncated") is not True or \
            h["MULTI"] != "line one\nline two" or len(h["message"].encode()) > MAX:
        jh.die(f"huge entry: message of {len(h['message'])} chars, truncated "
               f"{h.get('truncated')}, MULTI {h.get('MULTI')!r}")
    e = seen[N + 2]
    if e["message"] != "" or e["unit"] != "special.service" or e["pid"] != 77:
        jh.die(f"empty entry: {e}")


def expect_filtered(name, records, want, twice):
    got = [int(json.loads(v)["SEQ_NO"]) for _, v in records]
    if len(got) != len(want) + len(want & twice):
        jh.die(f"{name}: {len(got)} records for {len(want)} entries")
    if set(got) != want:
        jh.die(f"{name}: {len(got)} entries, want {len(want)}; extra "
               f"{sorted(set(got) - want)[:5]}, missing {sorted(want - set(got))[:5]}")


def main():
    wd = tempfile.mkdtemp(prefix="sl-journald-")
    jdir = os.path.join(wd, "journal")
    os.makedirs(jdir)
    jfile = os.path.join(jdir, "system.journal")
    jh.write_journal(jfile, jh.std_export(0, FIRST), FILE_LIMIT)
    before = len(os.listdir(jdir))
    data = os.path.join(wd, "data")
    srv = Server(data, "--fsync", "never").start()
    fields = "    journal_fields: [SEQ_NO, _COMM, BLOB, MULTI]\n"
    sources = (f"  all:\n    type: journald\n    directory: {jdir}\n    topic: all\n"
               f"    max_entry_bytes: {MAX}\n{fields}"
               f"  filtered:\n    type: journald\n    directory: {jdir}\n    topic: filtered\n"
               f"    matches: [_SYSTEMD_UNIT=nginx.service, '+', _SYSTEMD_UNIT=cron.service]\n"
               f"    priority: err\n{fields}"
               f"  units:\n    type: journald\n    directory: {jdir}\n    topic: units\n"
               f"    units: [sshd]\n    matches: [PRIORITY=5, PRIORITY=7]\n{fields}")
    agent = jh.RealAgent(wd, srv.bootstrap, sources)
    try:
        agent.start()
        agent.wait_acked(1000)
        # Appended while the agent runs: the inotify fd (and sd-journal's timeout) wake it.
        jh.write_journal(jfile, jh.std_export(FIRST, N - FIRST), FILE_LIMIT)
        special, huge = special_export()
        jh.write_journal(jfile, special, FILE_LIMIT)
        files = [f for f in os.listdir(jdir) if f.endswith(".journal")]
        if len(files) <= before:
            jh.die(f"the journal did not rotate while the agent ran: {files}")

        def want(f):
            return {i for i in range(N) if f(dict(jh.std_fields(i)))}
        w_filtered = want(lambda f: f["_SYSTEMD_UNIT"] in ("nginx.service", "cron.service")
                          and int(f["PRIORITY"]) <= 3)
        w_units = want(lambda f: f["_SYSTEMD_UNIT"] == "sshd.service"
                       and f["PRIORITY"] in ("5", "7"))
        # Entries journal-remote wrote twice when the file limit made it rotate (see
        # journal_entries) are in the journal twice, and so shipped twice.
        counts = {}
        for _, i in jh.journal_entries(os.path.join(jdir, "*.journal")):
            counts[i] = counts.get(i, 0) + 1
        twice = {i for i, c in counts.items() if c == 2}
        if any(c > 2 for c in counts.values()) or len(counts) != N + 3:
            jh.die("the journal does not hold the entries written")
        total = (N + 3 + len(twice) + len(w_filtered) + len(w_filtered & twice) + len(w_units)
                 + len(w_units & twice))
        agent.wait_acked(total, timeout=300)
        agent.stop()
        log = agent.log()
        for text in ("first start: reading the journal from its oldest entry",
                     "journal files were added or removed (rotation or vacuuming)"):
            if text not in log:
                jh.die(f"no log line {text!r}:\n{log[-3000:]}")
        check_all(jh.consume_ts(srv.bootstrap, "all", N + 3 + len(twice)), huge, jdir, twice)
        expect_filtered("filtered", jh.consume_ts(srv.bootstrap, "filtered", len(w_filtered)),
                        w_filtered, twice)
        expect_filtered("units", jh.consume_ts(srv.bootstrap, "units", len(w_units)), w_units,
                        twice)
        for name in ("all", "filtered", "units"):
            path = os.path.join(agent.state, f"journald-{name}.cursor")
            if not open(path).read().startswith("sluice-journald-checkpoint 1\ns="):
                jh.die(f"{path}: no checkpoint")
        print(f"ok: {N + 3} entries in {len(files)} journal files exactly once with their "
              f"fields ({len(twice)} written twice by journal-remote's rotation); filters "
              f"{len(w_filtered)} and {len(w_units)} entries exact")
    finally:
        if agent.p and agent.p.poll() is None:
            agent.kill()
        srv.stop()


main()
