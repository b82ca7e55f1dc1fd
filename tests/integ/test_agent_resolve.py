"""sluice-agent reaches a collector named by a host name, resolved off the event loop, and tries
each of the name's addresses in turn: in a private mount namespace /etc/hosts gives the name
`sl-two` two addresses, ::1 first (where nothing listens, so the connect is refused) and then
127.0.0.1 (the collector). Every line must arrive, and the log must show the fallback."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import journal_helpers as jh  # noqa: E402
from kafkasrv import Server  # noqa: E402

N = 2000


def main():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        jh.die("needs root and unshare (util-linux) for a private /etc/hosts")
    w = tempfile.mkdtemp(prefix="sl-agent-resolve-")
    srv = Server(os.path.join(w, "data")).start()
    agent = None
    try:
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
        if probe.returncode != 0:
            jh.die(f"unshare -m does not work here: {probe.stderr.decode()}")
        hosts = os.path.join(w, "hosts")
        with open(hosts, "w") as f:
            f.write("::1 sl-two\n127.0.0.1 sl-two\n127.0.0.1 localhost\n")
        logs = os.path.join(w, "logs")
        os.makedirs(logs)
        with open(os.path.join(logs, "app.log"), "w") as f:
            for i in range(N):
                f.write(f"line {i:06d}\n")
        # The agent runs in its own mount namespace, where a wrapper bind-mounts the hosts file.
        wrapper = os.path.join(w, "in-hosts.sh")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nmount --bind "{hosts}" /etc/hosts || exit 97\nexec "$@"\n')
        os.chmod(wrapper, 0o755)
        agent = jh.RealAgent(os.path.join(w, "agent"), f"sl-two:{srv.port}",
                             f"  app:\n    type: tail\n    paths: [\"{logs}/*.log\"]\n"
                             f"    topic: named\n", log_level="debug",
                             prefix=["unshare", "-m", wrapper])
        agent.start()
        agent.wait_acked(N, timeout=60)
        log = agent.log()
        if "trying its next address" not in log:
            jh.die("the agent never fell back from ::1 to 127.0.0.1; log:\n" + log[-3000:])
        agent.stop()
        agent = None
        got = subprocess.run(["kcat", "-C", "-b", srv.bootstrap, "-t", "named", "-o", "beginning",
                              "-e", "-q", "-f", "%s\\n"], capture_output=True, timeout=60)
        values = got.stdout.decode().splitlines()
        if len(values) != N:
            jh.die(f"consumed {len(values)} records, wanted {N}: {got.stderr.decode()[-500:]}")
        print(f"ok: {N} lines shipped to sl-two:{srv.port} after ::1 was refused")
    finally:
        if agent:
            agent.kill()
        srv.stop()
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
