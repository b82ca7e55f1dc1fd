"""Awkward bytes: a 10 MiB line (cut and marked), binary garbage, invalid UTF-8, CRLF, and a
last line without newline; every value parses with python3's json."""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from agent_helpers import Agent, Mock, consume, die, messages, need, workdir

need("kcat")
wd = workdir("content")
mock = Mock(1)
try:
    log = os.path.join(wd, "app.log")
    with open(log, "wb") as f:
        f.write(b"first\n")
        f.write(b"A" * (10 << 20) + b"\n")
        f.write(b"after big\n")
        f.write(bytes(range(256)).replace(b"\n", b"") + b"\n")
        f.write(b"bad utf8 \xff\xfe \xc3\x28 \xed\xa0\x80 end\n")
        f.write(b"good utf8 \xc3\xa9t\xc3\xa9 \xe2\x82\xac\n")
        f.write(b"crlf line\r\n")
        f.write(b"no newline at the end")
    agent = Agent(wd, mock.bootstrap, [log],
                  extra_source="    partial_timeout: 300ms\n    max_line_bytes: 64KiB\n")
    agent.start()
    agent.wait_acked(8, timeout=30)
    agent.stop()
    msgs = messages(consume(mock.bootstrap, "logs", expect=8))
    got = [m["message"] for m in msgs]
    if len(got) != 8:
        die(f"{len(got)} records: {[g[:40] for g in got]}")
    if got[0] != "first" or got[2] != "after big":
        die(f"order: {[g[:20] for g in got]}")
    if got[1] != "A" * (64 << 10) or msgs[1].get("truncated") is not True:
        die("the 10 MiB line is not cut to 64 KiB and marked")
    if "\ufffd" not in got[4] or not got[4].endswith(" end"):
        die(f"invalid UTF-8: {got[4]!r}")
    if got[5] != "good utf8 été €":
        die(f"valid UTF-8 changed: {got[5]!r}")
    if got[6] != "crlf line":
        die(f"CRLF: {got[6]!r}")
    if got[7] != "no newline at the end":
        die(f"partial line: {got[7]!r}")
    if len(got[3]) != 255:
        die(f"binary line has {len(got[3])} characters")
    print("ok: awkward content")
finally:
    mock.close()
