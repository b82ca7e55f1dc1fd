"""The Debian packages as an operator gets them: cpack builds sluice-agent, sluice-collector and
sluice-tools from the build tree; their control fields, dependencies (from the binaries' own
NEEDED libraries), file lists, modes and conffiles are checked, lintian finds no error, the
units verify and score well with systemd-analyze in an unpacked root, the maintainer scripts
create users and directories and enable/purge through DPKG_ROOT, each program passes
--check-config with the shipped configuration, and each daemon started from its unit's
ExecStart line speaks sd_notify (READY, WATCHDOG, RELOADING via ExecReload, STOPPING) to a
NOTIFY_SOCKET this test binds, standing in for systemd, which is not PID 1 here."""
import glob
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ["SL_BUILD_DIR"]
SRC = os.environ["SL_SOURCE_DIR"]
UNIT_DIR = "lib/systemd/system"
# Highest `systemd-analyze security` exposure accepted, in tenths (20 = 2.0, "OK").
MAX_EXPOSURE = 20
# The shared libraries the programs may need, and the Debian package that must be depended on.
SONAME_PKG = {"libev.so.4": "libev4", "libfyaml.so.0": "libfyaml0", "libz.so.1": "zlib1g",
              "libsystemd.so.0": "libsystemd0", "libc.so.6": "libc6"}
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(args, timeout=120, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def project_version():
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        m = re.search(r"^CMAKE_PROJECT_VERSION:STATIC=(\S+)$", f.read(), re.M)
    return m.group(1)


def conf_files(prog):
    """The conffiles a package must declare: conf.d/<prog>.yaml and conf.d/<prog>.d/*."""
    files = [f"/etc/sluice/{prog}.yaml"]
    for path in sorted(glob.glob(os.path.join(SRC, "conf.d", prog + ".d", "*"))):
        files.append(f"/etc/sluice/{prog}.d/{os.path.basename(path)}")
    return files


def expected_packages():
    """Package -> (program, units, conffiles, files other than the directories)."""
    pk = {
        "sluice-agent": ("agent/sluice-agent", ["sluice-agent.service"], conf_files("agent")),
        "sluice-collector": ("collector/sluice-collector", ["sluice-collector.service"],
                             conf_files("collector")),
        "sluice-tools": ("collector/cli/sluice", ["sluice-sink@.service"], []),
    }
    out = {}
    for name, (prog, units, confs) in pk.items():
        files = {"/usr/bin/" + os.path.basename(prog): 0o755}
        for u in units:
            files[f"/{UNIT_DIR}/{u}"] = 0o644
        for d in ("sysusers.d", "tmpfiles.d"):
            files[f"/usr/lib/{d}/{name}.conf"] = 0o644
        for doc in ("copyright", "changelog.Debian.gz"):
            files[f"/usr/share/doc/{name}/{doc}"] = 0o644
        md = os.path.join(SRC, "conf.d", name.split("-")[1] + ".md")
        if name != "sluice-tools" and os.path.exists(md):
            files[f"/usr/share/doc/{name}/{os.path.basename(md)}"] = 0o644
        if name == "sluice-tools":
            files["/usr/share/man/man1/sluice.1.gz"] = 0o644
            files["/usr/share/doc/sluice-tools/sink.md"] = 0o644
        for c in confs:
            files[c] = 0o644
        out[name] = (os.path.join(BUILD, prog), units, confs, files)
    return out


def needed_packages(binary):
    r = run(["readelf", "-d", binary])
    sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)
    return sonames, {SONAME_PKG[s] for s in sonames if s in SONAME_PKG}


def check_package(deb, name, spec, ctl_root):
    binary, units, confs, files = spec
    fields = run(["dpkg-deb", "-f", deb]).stdout
    field = dict(re.findall(r"^(\S+): (.*)$", fields, re.M))
    check(field.get("Package") == name, f"{name}: Package field")
    check(field.get("Architecture") == run(["dpkg", "--print-architecture"]).stdout.strip(),
          f"{name}: Architecture is this machine's")
    check(bool(field.get("Maintainer")) and "\n " in fields, f"{name}: Maintainer and a long "
          "Description")
    deps = [d.strip() for d in field.get("Depends", "").split(",")]
    dep_names = {re.split(r"[ (]", d)[0] for d in deps}
    sonames, want = needed_packages(binary)
    check(bool(sonames) and want <= dep_names,
          f"{name}: Depends covers the binary's libraries {sorted(want)} (got {deps})")
    check("systemd | systemd-sysusers" in deps and "init-system-helpers" in dep_names,
          f"{name}: Depends on what the maintainer scripts run")

    # The data: exactly the expected files, root-owned, with the expected modes.
    listing = run(["dpkg-deb", "-c", deb]).stdout.splitlines()
    got = {}
    for line in listing:
        perm, owner, _, _, _, path = line.split(None, 5)
        path = path[1:].split(" -> ")[0]
        check(owner == "root/root", f"{name}: {path} owned by root")
        if perm.startswith("d"):
            check(perm == "drwxr-xr-x", f"{name}: directory {path} is 0755")
            continue
        mode = sum(0o400 >> i for i, ch in enumerate(perm[1:]) if ch != "-")
        got[path] = mode
    check(set(got) == set(files),
          f"{name}: file list (missing {sorted(set(files) - set(got))}, "
          f"unexpected {sorted(set(got) - set(files))})")
    for path, mode in files.items():
        if path in got:
            check(got[path] == mode, f"{name}: {path} mode {oct(got[path])} is {oct(mode)}")

    # The control part: conffiles list every shipped /etc file; scripts parse.
    ctl = os.path.join(ctl_root, name)
    os.makedirs(ctl_root, exist_ok=True)
    check(run(["dpkg-deb", "-e", deb, ctl]).returncode == 0, f"{name}: dpkg-deb -e")
    conffiles = []
    if os.path.exists(os.path.join(ctl, "conffiles")):
        with open(os.path.join(ctl, "conffiles")) as f:
            conffiles = f.read().split()
    etc = sorted(p for p in got if p.startswith("/etc/"))
    check(sorted(conffiles) == sorted(confs) == etc, f"{name}: conffiles are {etc}")
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(ctl, script)
        ok = os.path.exists(path) and os.access(path, os.X_OK)
        check(ok and run(["sh", "-n", path]).returncode == 0, f"{name}: {script} parses")
    return ctl


def check_lintian(debs):
    r = run(["lintian", "--no-tag-display-limit"] + debs, timeout=300)
    tags = [l for l in r.stdout.splitlines() if re.match(r"^[EWIPX]: ", l)]
    errors = [l for l in tags if l.startswith("E: ")]
    for line in tags:
        print("     lintian " + line)
    check(r.returncode == 0 and not errors, f"lintian: no errors ({len(tags)} other tags)")


def make_root(debs, tmp):
    """An unpacked root with the packages, the host's units (for the targets the units name),
    /bin/kill for ExecReload, and the host's passwd/group for sysusers and tmpfiles."""
    root = os.path.join(tmp, "root")
    os.makedirs(os.path.join(root, "etc"))
    for deb in debs:
        r = run(["dpkg", "-x", deb, root])
        check(r.returncode == 0, f"dpkg -x {os.path.basename(deb)}")
    ours = set(os.listdir(os.path.join(root, UNIT_DIR)))
    for path in glob.glob("/lib/systemd/system/*"):
        if os.path.basename(path) not in ours and os.path.isfile(path):
            shutil.copy(path, os.path.join(root, UNIT_DIR), follow_symlinks=True)
    shutil.copy("/usr/bin/kill", os.path.join(root, "usr/bin/kill"))
    os.symlink("usr/bin", os.path.join(root, "bin"))
    for f in ("passwd", "group"):
        shutil.copy("/etc/" + f, os.path.join(root, "etc", f))
    return root


def check_units(root):
    for unit, inst in (("sluice-agent.service", "sluice-agent.service"),
                       ("sluice-collector.service", "sluice-collector.service"),
                       ("sluice-sink@.service", "sluice-sink@test.service")):
        r = run(["systemd-analyze", f"--root={root}", "verify", "--man=no", inst])
        out = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and not out, f"systemd-analyze verify {inst}: {out or 'clean'}")
        r = run(["systemd-analyze", f"--root={root}", "security", "--offline=true",
                 f"--threshold={MAX_EXPOSURE}", inst])
        m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\S+)", r.stdout)
        score = m.group(1) + " " + m.group(2) if m else "?"
        check(r.returncode == 0 and m is not None,
              f"systemd-analyze security {unit}: exposure {score} "
              f"(at most {MAX_EXPOSURE / 10})")
        with open(os.path.join(root, UNIT_DIR, unit)) as f:
            text = f.read()
        for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure",
                    "ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict",
                    "NoNewPrivileges=yes", "CapabilityBoundingSet=\n",
                    "SystemCallFilter=@system-service", "StateDirectory=",
                    "ConfigurationDirectory="):
            check(key in text, f"{unit} has {key.strip()}")
    with open(os.path.join(root, UNIT_DIR, "sluice-agent.service")) as f:
        text = f.read()
    check("ReadOnlyPaths=/var/log" in text and "User=sluice-agent" in text,
          "agent unit: own user, /var/log read-only")


def maint(ctl, script, root, *args):
    env = dict(os.environ, DPKG_ROOT=root, DPKG_MAINTSCRIPT_PACKAGE=os.path.basename(ctl),
               DPKG_MAINTSCRIPT_NAME=script)
    return run(["sh", os.path.join(ctl, script)] + list(args), env=env)


def passwd(root):
    with open(os.path.join(root, "etc/passwd")) as f:
        users = {l.split(":")[0]: l.rstrip("\n").split(":") for l in f}
    with open(os.path.join(root, "etc/group")) as f:
        groups = {l.split(":")[0]: l.rstrip("\n").split(":") for l in f}
    return users, groups


def check_maintainer_scripts(ctls, root):
    """postinst configure, a disable-then-upgrade, remove and purge, all into DPKG_ROOT."""
    state = {"sluice-agent": ["/var/lib/sluice-agent", "/var/log/sluice-agent"],
             "sluice-collector": ["/var/lib/sluice", "/var/log/sluice"],
             "sluice-tools": ["/var/lib/sluice-sink", "/var/log/sluice-sink"]}
    owner = {"sluice-agent": "sluice-agent", "sluice-collector": "sluice",
             "sluice-tools": "sluice-sink"}
    wants = os.path.join(root, "etc/systemd/system/multi-user.target.wants")
    for name, ctl in ctls.items():
        r = maint(ctl, "postinst", root, "configure", "")
        check(r.returncode == 0, f"{name}: postinst configure"
              + ("" if r.returncode == 0 else ": " + r.stderr[-400:]))
        users, groups = passwd(root)
        user = owner[name]
        check(user in users and users[user][6].endswith("nologin"),
              f"{name}: system user {user} created with no login shell")
        for d in state[name]:
            st = os.stat(root + d) if os.path.isdir(root + d) else None
            check(st is not None and st.st_mode & 0o777 == 0o750
                  and str(st.st_uid) == users.get(user, ["", "", "-"])[2],
                  f"{name}: {d} made 0750 owned by {user}")
        unit = name + ".service"
        if name != "sluice-tools":
            check(os.path.islink(os.path.join(wants, unit)), f"{name}: install enables {unit}")
    users, groups = passwd(root)
    for g in ("adm", "systemd-journal"):
        check("sluice-agent" in groups.get(g, ["", "", "", ""])[3].split(","),
              f"sluice-agent is in group {g}")
    check(not any(f.startswith("sluice-sink@") for f in os.listdir(wants)),
          "sluice-tools enables no sink instance")

    # The admin disables the agent; an upgrade keeps it disabled.
    ctl = ctls["sluice-agent"]
    env = dict(os.environ, DPKG_ROOT=root, DPKG_MAINTSCRIPT_PACKAGE="sluice-agent")
    run(["deb-systemd-helper", "disable", "sluice-agent.service"], env=env)
    check(not os.path.lexists(os.path.join(wants, "sluice-agent.service")), "admin disables")
    r = maint(ctl, "postinst", root, "configure", "0.0.1-1")
    check(r.returncode == 0 and not os.path.lexists(os.path.join(wants, "sluice-agent.service")),
          "sluice-agent: an upgrade keeps the admin's disable")

    # Remove keeps state; purge deletes it (and only this package's), users stay.
    ctl = ctls["sluice-collector"]
    with open(root + "/var/lib/sluice/keep", "w") as f:
        f.write("segment")
    for script, arg in (("prerm", "remove"), ("postrm", "remove")):
        r = maint(ctl, script, root, arg)
        check(r.returncode == 0, f"sluice-collector: {script} {arg}")
    check(os.path.exists(root + "/var/lib/sluice/keep"), "sluice-collector: remove keeps data")
    r = maint(ctl, "postrm", root, "purge")
    check(r.returncode == 0 and not os.path.exists(root + "/var/lib/sluice")
          and not os.path.exists(root + "/var/log/sluice"),
          "sluice-collector: purge deletes /var/lib/sluice and /var/log/sluice")
    check(os.path.isdir(root + "/var/lib/sluice-agent") and
          os.path.isdir(root + "/var/lib/sluice-sink"), "purge leaves other packages' state")
    check(not os.path.lexists(os.path.join(wants, "sluice-collector.service")),
          "sluice-collector: purge forgets the enablement")
    check("sluice" in passwd(root)[0], "purge leaves the user, as Debian does")


def check_config(root):
    coll = [root + "/usr/bin/sluice-collector", "-c", root + "/etc/sluice/collector.yaml",
            "--set", f"data_dir={root}/var/lib/sluice"]
    agent = [root + "/usr/bin/sluice-agent", "-c", root + "/etc/sluice/agent.yaml",
             "--set", f"state_dir={root}/var/lib/sluice-agent"]
    for cmd in (coll, agent, [root + "/usr/bin/sluice"]):
        r = run(cmd + ["--check-config"])
        check(r.returncode == 0 and "configuration OK" in r.stdout,
              f"installed {os.path.basename(cmd[0])} --check-config with the shipped config"
              + ("" if r.returncode == 0 else ": " + r.stderr[-400:]))
    # The drop-in folder is read: the shipped example, once enabled, passes; a broken one fails.
    dropins = root + "/etc/sluice/collector.d"
    for ex in glob.glob(dropins + "/*.example"):
        shutil.copy(ex, ex[:-len(".example")])
    r = run(coll + ["--check-config"])
    check(r.returncode == 0, "collector: the enabled drop-in examples pass"
          + ("" if r.returncode == 0 else ": " + r.stderr[-400:]))
    with open(dropins + "/99-broken.yaml", "w") as f:
        f.write("log_level: chatty\n")
    r = run(coll + ["--check-config"])
    check(r.returncode == 1 and "99-broken.yaml:1:" in r.stderr,
          "collector: a bad drop-in in /etc/sluice/collector.d is reported")
    for path in glob.glob(dropins + "/*.yaml"):
        os.unlink(path)
    # The agent's examples (nginx, a multiline application) pass once enabled too.
    adropins = root + "/etc/sluice/agent.d"
    examples = glob.glob(adropins + "/*.example")
    check(len(examples) >= 2, f"agent: drop-in examples shipped ({len(examples)})")
    for ex in examples:
        shutil.copy(ex, ex[:-len(".example")])
    r = run(agent + ["--check-config"])
    check(r.returncode == 0, "agent: the enabled drop-in examples pass"
          + ("" if r.returncode == 0 else ": " + r.stderr[-400:]))
    for path in glob.glob(adropins + "/*.yaml"):
        os.unlink(path)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def recv_until(sock, want, deadline):
    got = []
    while time.time() < deadline:
        sock.settimeout(max(0.01, deadline - time.time()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if any(line == want or line.startswith(want) for line in msg.split("\n")):
            return got, True
    return got, False


def unit_line(root, unit, key):
    with open(os.path.join(root, UNIT_DIR, unit)) as f:
        return re.search(rf"^{key}=(.*)$", f.read(), re.M).group(1)


def check_exec_start(root, tmp, unit, overrides):
    """Runs the unit's ExecStart (binary and config under root) as systemd would start it
    for Type=notify, and its ExecReload with $MAINPID."""
    argv = shlex.split(unit_line(root, unit, "ExecStart"))
    argv[0] = root + argv[0]
    # Every listening address the program has (metrics, and the Kafka port once it exists)
    # moves to a free loopback port, so runs of the suite in parallel never collide.
    keys = re.findall(r"^  ([a-z_.]*listen): ", run([argv[0], "--help"]).stdout, re.M)
    for key in keys:
        argv += ["--set", f"{key}=127.0.0.1:{free_port()}"]
    check("metrics.listen" in keys, f"{unit}: --help names metrics.listen")
    argv += overrides
    path = os.path.join(tmp, unit + ".notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC=str(int(
        float(unit_line(root, unit, "WatchdogSec").rstrip("s")) * 1e6)))
    env.pop("WATCHDOG_PID", None)
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        got, ok = recv_until(sock, "READY=1", time.time() + 15)
        check(ok, f"{unit}: ExecStart sends READY=1")
        reload = unit_line(root, unit, "ExecReload").replace("$MAINPID", str(p.pid))
        reload = shlex.split(reload)
        reload[0] = root + reload[0]
        check(run(reload).returncode == 0, f"{unit}: ExecReload runs")
        got, ok = recv_until(sock, "RELOADING=1", time.time() + 5)
        check(ok and any("MONOTONIC_USEC=" in m for m in got), f"{unit}: reload: RELOADING=1")
        got, ok = recv_until(sock, "READY=1", time.time() + 5)
        check(ok, f"{unit}: reload: READY=1 again")
        p.send_signal(signal.SIGTERM)
        got, ok = recv_until(sock, "STOPPING=1", time.time() + 10)
        check(ok, f"{unit}: SIGTERM: STOPPING=1")
        check(p.wait(timeout=30) == 0, f"{unit}: exits 0 on SIGTERM")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        sock.close()


def main():
    for tool in ("cpack", "dpkg-deb", "systemd-analyze", "lintian", "readelf",
                 "deb-systemd-helper", "systemd-sysusers", "systemd-tmpfiles"):
        if not shutil.which(tool):
            print(f"FAIL {tool} is missing: run packaging/deps.sh --test")
            return 1
    config = os.path.join(BUILD, "CPackConfig.cmake")
    if not os.path.exists(config):
        print("FAIL no CPackConfig.cmake in the build: the top-level CMakeLists.txt must "
              "add_subdirectory(packaging)")
        return 1
    tmp = tempfile.mkdtemp(prefix="sl-packaging-")
    try:
        out = os.path.join(tmp, "dist")
        r = run(["cpack", "--config", config, "-B", out], timeout=300)
        check(r.returncode == 0, "cpack builds the packages"
              + ("" if r.returncode == 0 else ": " + (r.stdout + r.stderr)[-800:]))
        version = project_version()
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        spec = expected_packages()
        debs = {n: os.path.join(out, f"{n}_{version}-1_{arch}.deb") for n in spec}
        check(sorted(glob.glob(out + "/*.deb")) == sorted(debs.values()),
              f"cpack makes exactly {sorted(os.path.basename(d) for d in debs.values())}")
        if failures:
            return 1
        ctl_root = os.path.join(tmp, "control")
        ctls = {n: check_package(debs[n], n, spec[n], ctl_root) for n in spec}
        check_lintian(sorted(debs.values()))
        root = make_root(sorted(debs.values()), tmp)
        check_units(root)
        check_config(root)
        state = os.path.join(tmp, "state")
        os.makedirs(state + "/coll")
        os.makedirs(state + "/agent")
        check_exec_start(root, tmp, "sluice-collector.service",
                         ["-c", root + "/etc/sluice/collector.yaml",
                          "--set", f"data_dir={state}/coll"])
        check_exec_start(root, tmp, "sluice-agent.service",
                         ["-c", root + "/etc/sluice/agent.yaml",
                          "--set", f"state_dir={state}/agent"])
        check_maintainer_scripts(ctls, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failed" if failures else "all packaging checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
