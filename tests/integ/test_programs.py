"""The three programs as an operator meets them: --help, --version, --check-config (errors
compiler-style, nothing bound), and both daemons' run: sd_notify READY/RELOADING/STOPPING and
WATCHDOG through a NOTIFY_SOCKET the test binds, /metrics and /health, clean stop on SIGTERM,
and the README's `make run` script starting and stopping both with one SIGINT."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD = os.environ["SL_BUILD_DIR"]
SRC = os.environ["SL_SOURCE_DIR"]
COLL = os.path.join(BUILD, "collector", "sluice-collector")
AGENT = os.path.join(BUILD, "agent", "sluice-agent")
CLI = os.path.join(BUILD, "collector", "cli", "sluice")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=30, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_flags():
    for prog in (COLL, AGENT, CLI):
        name = os.path.basename(prog)
        r = run([prog, "--version"])
        check(r.returncode == 0 and re.fullmatch(name + r" \d+\.\d+\.\d+\n", r.stdout),
              f"{name} --version prints name and version")
        r = run([prog, "--help"])
        check(r.returncode == 0 and "--check-config" in r.stdout, f"{name} --help")
        r = run([prog, "--no-such-flag"])
        check(r.returncode == 2 and "unknown option" in r.stderr, f"{name} rejects a bad flag")
    for prog in (COLL, AGENT):
        r = run([prog, "--help"])
        check("metrics.listen" in r.stdout and "log_level" in r.stdout,
              f"{os.path.basename(prog)} --help lists the configuration options")


def test_reference_docs():
    """conf.d/<program>.md is what the option tables print: the docs cannot drift."""
    sluice = os.path.join(BUILD, "collector", "cli", "sluice")
    for cmd, doc in (([COLL], "collector.md"), ([AGENT], "agent.md"),
                     ([sluice, "sink"], "sink.md")):
        prog = cmd[0]
        r = run(cmd + ["--config-reference"])
        with open(os.path.join(SRC, "conf.d", doc)) as f:
            want = f.read()
        check(r.returncode == 0 and r.stdout == want,
              f"conf.d/{doc} matches {os.path.basename(prog)} --config-reference "
              f"(regenerate it with that command)")


def test_check_config(tmp):
    # The shipped files and the embedded defaults pass.
    for prog, conf in ((COLL, "collector.yaml"), (AGENT, "agent.yaml")):
        name = os.path.basename(prog)
        r = run([prog, "--check-config", "-c", os.path.join(SRC, "conf.d", conf)])
        check(r.returncode == 0 and "configuration OK" in r.stdout, f"{name} shipped {conf}")
        r = run([prog, "--check-config"], cwd=tmp)
        check(r.returncode == 0, f"{name} embedded default passes")
    r = run([CLI, "--check-config"])
    check(r.returncode == 0, "sluice --check-config on the embedded default")

    # --check-config binds nothing: the metrics port is taken by the test, and it still passes.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    busy = s.getsockname()[1]
    r = run([COLL, "--check-config", "--set", f"metrics.listen=127.0.0.1:{busy}"])
    check(r.returncode == 0, "--check-config does not bind the metrics port")
    s.close()

    # Errors: every one reported, compiler-style, with file:line:col, then exit 1.
    main = os.path.join(tmp, "collector.yaml")
    with open(main, "w") as f:
        f.write("log_level: loud\nmetrics:\n  lissten: 127.0.0.1:1\n")
    os.makedirs(os.path.join(tmp, "collector.d"), exist_ok=True)
    with open(os.path.join(tmp, "collector.d", "10-x.yaml"), "w") as f:
        f.write("data_dir: [a, b]\n")
    r = run([COLL, "--check-config", "-c", main])
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 1, "bad config exits 1")
    check(any(l.startswith(main + ":1:12: ") and "log_level" in l and "info" in l for l in lines),
          "bad enum value names the key and the allowed values")
    check(any(l.startswith(main + ":3:3: ") and "did you mean 'listen'" in l for l in lines),
          "unknown key gets a did-you-mean")
    check(any(l.startswith(os.path.join(tmp, "collector.d", "10-x.yaml") + ":1:")
              for l in lines), "drop-in errors point at the drop-in")
    r = run([COLL, "--check-config", "-c", os.path.join(tmp, "missing.yaml")])
    check(r.returncode == 1 and "missing.yaml" in r.stderr, "missing config file is an error")
    r = run([COLL, "--check-config", "--set", "Bad-Key=1"])
    check(r.returncode == 1 and "Bad-Key" in r.stderr, "--set with a bad key")


def recv_all(sock, want, deadline):
    """Collects notify datagrams until one equal to (or starting with) want arrives."""
    got = []
    while time.time() < deadline:
        sock.settimeout(max(0.01, deadline - time.time()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if msg == want or msg.startswith(want):
            return got, True
    return got, False


def test_daemon(prog, tmp, extra):
    name = os.path.basename(prog)
    conf = os.path.join(tmp, name + ".yaml")
    with open(conf, "w") as f:
        f.write("log_level: info\n")
    extra = ["-c", conf] + extra
    path = os.path.join(tmp, name + ".notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
    env.pop("WATCHDOG_PID", None)
    p = subprocess.Popen([prog, "--set", f"metrics.listen=127.0.0.1:{port}"] + extra, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        got, ok = recv_all(sock, "READY=1", time.time() + 10)
        check(ok, f"{name} sends READY=1")
        check(any(m.startswith("STATUS=") for m in got), f"{name} sends STATUS=")
        if name == "sluice-agent":
            # The periodic STATUS (every 5 s) carries the rate and the lag behind the files.
            more, ok = recv_all(sock, "STATUS=", time.time() + 8)
            status = [m for m in got + more if m.startswith("STATUS=") and "lines/s" in m]
            check(status and " lag " in status[-1] and " bytes" in status[-1],
                  f"the agent's STATUS shows lines/s and lag: {status[-1:] or got}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
            check(resp.status == 200 and "sluice_build_info{" in body
                  and "sluice_process_resident_memory_bytes" in body, f"{name} serves /metrics")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            check(resp.status == 200 and resp.read() == b"ok\n", f"{name} serves /health")
        got, ok = recv_all(sock, "WATCHDOG=1", time.time() + 2)
        check(ok, f"{name} pings the watchdog at half of WATCHDOG_USEC")
        with open(conf, "w") as f:
            f.write("log_level: chatty\n")
        p.send_signal(signal.SIGHUP)
        got, ok = recv_all(sock, "RELOADING=1", time.time() + 5)
        check(ok and any("MONOTONIC_USEC=" in m for m in got), f"{name} SIGHUP: RELOADING=1")
        got, ok = recv_all(sock, "READY=1", time.time() + 5)
        check(ok, f"{name} SIGHUP: READY=1 after a rejected reload")
        with open(conf, "w") as f:
            f.write("log_level: debug\n")
        p.send_signal(signal.SIGHUP)
        got, ok = recv_all(sock, "READY=1", time.time() + 5)
        check(ok, f"{name} SIGHUP: READY=1 after reload")
        p.send_signal(signal.SIGTERM)
        got, ok = recv_all(sock, "STOPPING=1", time.time() + 5)
        check(ok, f"{name} SIGTERM: STOPPING=1")
        rc = p.wait(timeout=10)
        check(rc == 0, f"{name} exits 0 after SIGTERM")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        sock.close()
    err = p.stderr.read()
    check("stopped" in err, f"{name} logs its stop")
    check(f"{conf}:1:12: " in err and "reload failed" in err,
          f"{name}: a bad file on SIGHUP is reported and the old configuration kept")
    check("configuration reloaded; log level debug" in err,
          f"{name}: a good file on SIGHUP applies the new log level")

    # A port already taken is a clear start-up error naming the address.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    busy = s.getsockname()[1]
    r = run([prog, "--set", f"metrics.listen=127.0.0.1:{busy}"] + extra)
    check(r.returncode == 1 and f"127.0.0.1:{busy}" in r.stderr, f"{name}: busy port is an error")
    s.close()


def test_run_local(tmp):
    """The script behind `make run`: both programs up, one SIGINT stops both cleanly."""
    env = dict(os.environ, SLUICE_RUN_DIR=os.path.join(tmp, "run"),
               SLUICE_KAFKA=f"127.0.0.1:{free_port()}",
               SLUICE_COLLECTOR_METRICS=f"127.0.0.1:{free_port()}",
               SLUICE_AGENT_METRICS=f"127.0.0.1:{free_port()}")
    p = subprocess.Popen(["bash", os.path.join(SRC, "packaging", "run-local.sh"), BUILD], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        deadline = time.time() + 15
        up = False
        while time.time() < deadline and not up:
            time.sleep(0.2)
            try:
                for addr in (env["SLUICE_COLLECTOR_METRICS"], env["SLUICE_AGENT_METRICS"]):
                    urllib.request.urlopen(f"http://{addr}/health", timeout=1).read()
                up = True
            except OSError:
                pass
        check(up, "run-local.sh starts the collector and the agent")
        # The shipped agent config reads /var/log/*.log (dpkg.log exists on every Debian):
        # records must reach the collector.
        stored = 0
        deadline = time.time() + 30
        while time.time() < deadline and stored == 0:
            time.sleep(0.5)
            page = urllib.request.urlopen(f"http://{env['SLUICE_COLLECTOR_METRICS']}/metrics",
                                          timeout=2).read().decode()
            stored = sum(float(l.split()[-1]) for l in page.splitlines()
                         if l.startswith("sluice_topic_records_in_total{"))
        check(stored > 0, f"the agent's records reach the collector ({stored:.0f} records)")
        time.sleep(2.5)  # the live line refreshes every second; let it show the flow
        os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = p.communicate(timeout=15)
        check(p.returncode == 0, f"run-local.sh exits 0 after Ctrl-C (got {p.returncode})")
        if p.returncode != 0:
            print(err[-3000:])
        check("[collector] stopped" in err and "[agent] stopped" in err,
              "both programs stopped cleanly")
        check(re.search(r"agent: \d+ lines read, \d+ records acked", err) is not None
              and "records in" in err, "the live status line is printed")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        test_flags()
        test_reference_docs()
        test_check_config(tmp)
        test_daemon(COLL, tmp, ["--set", f"data_dir={tmp}/data",
                                "--set", 'server.listeners=["127.0.0.1:0"]'])
        # No sources, and a collector address nothing listens on: this checks the frame only.
        test_daemon(AGENT, tmp, ["--set", f"state_dir={tmp}/state", "--set", "sources.system=~",
                                 "--set", f'output.collectors=["127.0.0.1:{free_port()}"]'])
        test_run_local(tmp)
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failures")
    sys.exit(1 if failures else 0)


main()
