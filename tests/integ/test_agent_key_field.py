"""`key: field`: the record key comes from a field of the record, and Kafka's default partitioner
(murmur2 of the key) picks the partition, as a Kafka producer's would.

The real sluice-agent ships to the real sluice-collector (6 partitions per topic):
- a tail source with key_field: user, on JSON lines whose "user" is a string (with an escape),
  a number, absent, or null, and on a plain-text line: a string key is decoded, a number is kept
  as written, the rest get a null key;
- a journald source with key_field: _SYSTEMD_UNIT, on a journal written by
  systemd-journal-remote: the key is the unit; its `fields: [SEQ_NO, team=core]` also selects
  the journal field SEQ_NO and adds the constant team=core.
Each record's key and partition are read back with kcat and checked against kafka-python's
murmur2."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import journal_helpers as jh  # noqa: E402
from kafkasrv import Server  # noqa: E402
from kafka.partitioner.default import murmur2  # noqa: E402

PARTS = 6


def records(bootstrap, topic, n):
    """(key bytes or None, partition, value) of the n records of topic, via kcat."""
    out = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e",
                          "-q", "-f", "%K|%k|%p|%s\\n"], capture_output=True, timeout=60)
    got = []
    for line in out.stdout.decode().splitlines():
        klen, rest = line.split("|", 1)
        klen = int(klen)
        # %K is the key's length in bytes (-1: null), so a key is cut by bytes, not characters.
        raw = rest.encode()
        key = raw[:klen].decode() if klen >= 0 else None
        rest = raw[max(klen, 0) + 1:].decode()
        part, value = rest.split("|", 1)
        got.append((key, int(part), value))
    if len(got) != n:
        jh.die(f"{topic}: {len(got)} records, wanted {n}: {out.stderr.decode()[-500:]}")
    return got


def check_partition(topic, key, part):
    if key is None:
        return
    want = (murmur2(key.encode()) & 0x7fffffff) % PARTS
    if part != want:
        jh.die(f"{topic}: key {key!r} in partition {part}, murmur2 says {want}")


def main():
    jh.need_jremote()
    w = tempfile.mkdtemp(prefix="sl-agent-key-field-")
    srv = Server(os.path.join(w, "data"), "--conf", f"server.default_partitions={PARTS}").start()
    agent = None
    try:
        logs = os.path.join(w, "logs")
        os.makedirs(logs)
        lines = []
        for i in range(300):
            kind = i % 5
            if kind == 0:
                lines.append(json.dumps({"user": f"u{i % 17}", "n": i}))
            elif kind == 1:
                lines.append('{"n": %d, "user": "caf\\u00e9-%d"}' % (i, i % 3))
            elif kind == 2:
                lines.append(json.dumps({"n": i, "user": i % 11}))
            elif kind == 3:
                lines.append(json.dumps({"n": i, "user": None}) if i % 2 else
                             json.dumps({"n": i, "nested": {"user": "x"}}))
            else:
                lines.append(f"plain text line {i} user=u1")
        with open(os.path.join(logs, "app.log"), "w") as f:
            f.write("\n".join(lines) + "\n")

        jdir = os.path.join(w, "journal")
        os.makedirs(jdir)
        jh.write_journal(os.path.join(jdir, "system.journal"), jh.std_export(0, 200))

        agent = jh.RealAgent(
            os.path.join(w, "agent"), srv.bootstrap,
            f"  app:\n    type: tail\n    paths: [\"{logs}/*.log\"]\n    topic: app\n"
            f"    key: field\n    key_field: user\n"
            f"  j:\n    type: journald\n    directory: {jdir}\n    topic: jrn\n"
            f"    key: field\n    key_field: _SYSTEMD_UNIT\n"
            f"    fields: [SEQ_NO, team=core]\n")
        agent.start()
        agent.wait_acked(500, timeout=60)
        agent.stop()
        agent = None

        by_n = {}
        for key, part, value in records(srv.bootstrap, "app", len(lines)):
            msg = json.loads(value)["message"]
            by_n[lines.index(msg)] = key
            check_partition("app", key, part)
        for i, line in enumerate(lines):
            kind = i % 5
            want = {0: f"u{i % 17}", 1: f"caf\u00e9-{i % 3}", 2: str(i % 11)}.get(kind)
            if by_n.get(i, "absent") != want:
                jh.die(f"line {i} ({line!r}): key {by_n.get(i, 'absent')!r}, wanted {want!r}")
        units = set()
        seqs = set()
        for key, part, value in records(srv.bootstrap, "jrn", 200):
            doc = json.loads(value)
            if key != doc["unit"]:
                jh.die(f"jrn: key {key!r} is not the record's unit: {value[:200]}")
            # `fields`: a bare NAME selects that journal field, name=value adds a constant.
            if doc.get("team") != "core" or "SEQ_NO" not in doc:
                jh.die(f"jrn: fields [SEQ_NO, team=core] not applied: {value[:300]}")
            seqs.add(int(doc["SEQ_NO"]))
            check_partition("jrn", key, part)
            units.add(key)
        if seqs != set(range(200)):
            jh.die(f"jrn: SEQ_NO values {sorted(seqs)[:5]}..., wanted 0..199")
        if len(units) != len(jh.UNITS):
            jh.die(f"jrn: keys {units}, wanted the {len(jh.UNITS)} units")
        print(f"ok: 300 tail records keyed by a JSON member, 200 journal entries by their unit, "
              f"each in its murmur2 partition of {PARTS}")
    finally:
        if agent:
            agent.kill()
        srv.stop()
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
