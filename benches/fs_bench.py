#!/usr/bin/python3
"""Times the union file system workloads of issue 3 on unionctl, kernel overlayfs and
fuse-overlayfs, interleaved in one run, and prints medians and ratios.

Run it through benches/fs_bench.sh (installs the tools, builds the corpus). Layout:
  orchestrator (root): picks the order, runs one worker per sample, drops caches for
      rootless workers, cleans up, prints the table;
  worker (`--worker SPEC`): mounts one file system, runs one workload's steps, times them,
      unmounts, prints one JSON line. In --rootless mode the worker runs as a non-root user
      inside `unshare -Urm`, so every mount is made the way a rootless user makes it.
"""
import argparse
import glob
import json
import os
import pwd
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

SCRATCH = os.environ.get("UNIONCTL_BENCH_DIR", "/var/tmp/unionctl-bench")
ROOTLESS_USER = "unionctl-bench"
FS_ALL = ["unionctl", "kernel", "fuse-overlayfs"]
FS_LABEL = {"unionctl": "unionctl", "kernel": "kernel overlayfs", "fuse-overlayfs": "fuse-overlayfs"}
FUSE_FS = {"unionctl": ("unionctl", "unionctl-overlay"), "fuse-overlayfs": ("fuse-overlayfs",)}


def log(msg):
    print(f"fs_bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Workloads: lists of steps run by the worker on a fresh mount.
#   ("drop", level)          sync, then echo level > /proc/sys/vm/drop_caches
#   ("run", cmd)             untimed preparation
#   ("time", name, cmd)      timed shell command; {M} merged dir, {U} upper dir, {C} corpus
#   ("rss", name)            resident set size of the FUSE daemon, MiB
#   ("sleep", seconds)
# The write workloads end with `sync -f {U}` (syncfs of the upper file system) so every FS
# is timed until its data is durable: kernel overlayfs syncs on copy-up, FUSE daemons don't.
# ---------------------------------------------------------------------------------------
WALK = "find {M} -printf '%i %s %m %n\\n' >/dev/null"


def workloads(env, groups):
    par = lambda body: " ".join(f"( {body.format(G=g)} ) & p{i}=$!;" for i, g in enumerate(groups)) + " " + " && ".join(
        f"wait $p{i}" for i in range(len(groups)))
    seq = lambda body: " && ".join(f"{body.format(G=g)}" for g in groups)
    stat_g = "find {G} -printf '%i %s %m\\n' >/dev/null"
    read_g = "find {G} -type f -print0 | xargs -0 cat >/dev/null"
    big_mib = env["BIG_MIB"]
    prewarm = f"find {{C}}/top/{env['SMALL_DIR']} -type f -print0 | xargs -0 cat >/dev/null"
    return {
        "walk_cold": ("walk cold (find + stat of every entry after drop_caches)",
                      [("drop", 3), ("time", "s", WALK)]),
        "walk_warm": ("walk warm (twice)",
                      [("run", WALK), ("time", "s", WALK + " && " + WALK)]),
        "read_all": ("read every file (cold)",
                     [("drop", 3), ("time", "s", "find {M} -type f -print0 | xargs -0 cat >/dev/null")]),
        "seq_read": (f"sequential read {big_mib} MiB (cold)",
                     [("drop", 3), ("time", "s", f"dd if={{M}}/{env['BIG']} of=/dev/null bs=1M status=none")]),
        "write": (f"write {big_mib} MiB + fsync",
                  [("drop", 3), ("time", "s", f"dd if=/dev/zero of={{M}}/written.bin bs=1M count={big_mib} conv=fsync status=none")]),
        "copy_up": (f"copy-up of the {big_mib} MiB lower file (append a byte) + syncfs",
                    [("drop", 3), ("time", "s", f"printf x >>{{M}}/{env['BIG']} && sync -f {{U}}")]),
        "untar": (f"untar {env['UNTAR_FILES']} small files + syncfs",
                  [("drop", 3), ("time", "s", "tar -C {M} -xf {C}/untar.tar && sync -f {U}")]),
        "rm_tree": (f"rm -rf a large lower tree ({env['RM_TREE']}, {env['RM_TREE_ENTRIES']} entries) + syncfs",
                    [("drop", 3), ("time", "s", f"rm -rf {{M}}/{env['RM_TREE']} && sync -f {{U}}")]),
        "ls_merged": (f"ls -l of a {env['MERGED_DIR_ENTRIES']}-entry merged dir, 5 times",
                      [("drop", 3), ("time", "s", " && ".join([f"ls -l {{M}}/{env['MERGED_DIR']} >/dev/null"] * 5))]),
        # A walk through fuse-overlayfs' uid/gid mapping (unionctl and fuse-overlayfs mount
        # with MOUNT_OPTS below; the kernel has no such option and walks unmapped).
        "uidmap": ("walk warm (twice) with uidmapping=/gidmapping= (kernel: unmapped)",
                   [("run", WALK), ("time", "s", WALK + " && " + WALK)]),
        # Metadata-only copy-up: unionctl and the kernel with metacopy=on (rootless, the
        # kernel refuses it with userxattr); fuse-overlayfs has none and copies the data.
        # /dev is left out: its device nodes cannot be copied up rootless (mknod), and
        # fuse-overlayfs opens them to copy their "data" (EIO, ENXIO) even as root.
        "chmod_r": ("chmod -R of the lower tree but /dev + syncfs (metacopy=on)",
                    [("drop", 3), ("time", "s", "find {M} -mindepth 1 -maxdepth 1 ! -name dev -exec chmod -R u+w {{}} + "
                                                 "&& sync -f {U}")]),
        # Lookups of missing names in a dir that every one of N lower layers has (the
        # layers of `many_layers`, warm): each name is new, so each is one LOOKUP.
        **{f"miss{n}": (f"lookup of {MISSES} missing names, {n} lower layer{'s' if n > 1 else ''}",
                        [("time", "s", MISS_CMD)]) for n in MISS_LAYERS},
        # Extras: parallel scaling (the same work done by 1 process or split over 4), and
        # daemon memory after a walk and after the kernel forgets its inodes.
        # Scaling: lower layer warm in the page cache (so the disk does not decide), union
        # mount fresh, so every lookup, getattr, open and read goes through the FS.
        "par1": ("1 process: stat then read the small files",
                 [("drop", 3), ("run", prewarm), ("time", "stat", seq(stat_g)), ("time", "read", seq(read_g))]),
        "par4": ("4 processes: stat then read the small files",
                 [("drop", 3), ("run", prewarm), ("time", "stat", par(stat_g)), ("time", "read", par(read_g))]),
        "rss": ("daemon RSS after a walk and after drop_caches 2",
                [("drop", 3), ("run", WALK), ("rss", "walked"), ("drop", 2), ("sleep", 2), ("rss", "forgot")]),
    }


MISS_LAYERS = [1, 10, 50, 100]
MISSES = 5000
MISS_CMD = ("python3 -c 'import os, sys; d = sys.argv[1]; "
            f"[os.path.lexists(d + \"/miss%d\" % i) for i in range({MISSES})]' {{M}}/d")
MAIN_ROWS = ["walk_cold", "walk_warm", "read_all", "seq_read", "write", "copy_up", "untar", "rm_tree", "ls_merged",
             "uidmap", "chmod_r", *[f"miss{n}" for n in MISS_LAYERS]]
# Mount options a workload adds, per file system (rows of the drop-in options).
IDS = "0:100000:65536"
MOUNT_OPTS = {
    "uidmap": {"unionctl": f"uidmapping={IDS},gidmapping={IDS}", "fuse-overlayfs": f"uidmapping={IDS},gidmapping={IDS}"},
    "chmod_r": {"unionctl": "metacopy=on", "kernel": "metacopy=on"},
}
EXTRA_ROWS = ["par1", "par4", "rss"]
# Goal of issue 3 per row: at most this ratio to the kernel, and faster than fuse-overlayfs.
KERNEL_LIMIT = {"seq_read": 1.1, "write": 1.1, "copy_up": 1.0}


# ---------------------------------------------------------------------------------------
# Worker
# ---------------------------------------------------------------------------------------
def mounted(path):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                return True
    return False


def mount_argv(spec):
    fs, lower, upper, work, mnt = spec["fs"], spec["lower"], spec["upper"], spec["work"], spec["mnt"]
    extra = MOUNT_OPTS.get(spec["workload"], {}).get(fs)
    if extra and spec["rootless"]:
        # In `unshare -Urm` only the user's own id (0 inside) exists: a mapping to others
        # would leave root's 0700 dirs unreadable. Map that one id (the same lookups).
        extra = extra.replace(IDS, "0:0:1")
    if fs == "unionctl":
        joined = ",".join(o for o in [spec.get("unionctl_opts"), extra] if o)
        if spec.get("unionctl_cli") == "dropin":
            # As podman and buildah mount it: fuse-overlayfs' command line, the small binary.
            opts = f"lowerdir={lower},upperdir={upper},workdir={work}" + (f",{joined}" if joined else "")
            return [spec["unionctl"] + "-overlay", "-o", opts, mnt]
        opts = ["-o", joined] if joined else []
        return [spec["unionctl"], "mount", "--lower", lower, "--upper", upper, "--work", work, *opts, mnt]
    if fs == "kernel":
        opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
        opts += ",userxattr" if spec["rootless"] else ",redirect_dir=on,index=on"
        opts += f",{extra}" if extra and not spec["rootless"] else ""
        return ["mount", "-t", "overlay", "overlay", "-o", opts, mnt]
    if fs == "fuse-overlayfs":
        opts = f"lowerdir={lower},upperdir={upper},workdir={work}" + (f",{extra}" if extra else "")
        return ["fuse-overlayfs", "-o", opts, mnt]
    raise ValueError(fs)


def daemon_pid(spec):
    """The FUSE daemon serving spec['mnt']: the process whose argv names the mount point."""
    want = FUSE_FS.get(spec["fs"])
    if not want:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) in want and spec["mnt"].encode() in argv:
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                        continue
            except OSError:
                continue
            return int(entry)
    return None


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def drop_caches(spec, level):
    if spec["drop_fifo"]:
        # Rootless: the root orchestrator drops caches for us (fifo handshake).
        with open(spec["drop_fifo"] + ".req", "w") as f:
            f.write(f"{level}\n")
        with open(spec["drop_fifo"] + ".ack") as f:
            f.read()
    else:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write(f"{level}\n")


def do_mount(spec):
    """Mounts and returns (seconds, foreground Popen or None). Raises RuntimeError."""
    argv = mount_argv(spec)
    # stderr to a file, not a pipe: a daemon that forks may keep a pipe open for ever.
    errfile = open(os.path.join(os.path.dirname(spec["mnt"]), "mount.err"), "w+")
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errfile,
                            start_new_session=True)
    deadline = t0 + 30
    while True:
        rc = proc.poll()
        if rc is not None:
            errfile.seek(0)
            err = errfile.read().strip()
            if rc != 0 or not mounted(spec["mnt"]):
                raise RuntimeError(f"{spec['fs']} mount failed (exit {rc}): {err or 'no message'}\n  command: {shlex.join(argv)}")
            return time.perf_counter() - t0, None
        if mounted(spec["mnt"]):
            secs = time.perf_counter() - t0
            # A mount command that forks its daemon exits now; one that stays in the
            # foreground is the daemon: keep it, it is stopped by unmounting.
            try:
                proc.wait(timeout=2)
                return secs, None
            except subprocess.TimeoutExpired:
                return secs, proc
        if time.perf_counter() > deadline:
            proc.kill()
            raise RuntimeError(f"{spec['fs']} mount did not appear within 30 s\n  command: {shlex.join(argv)}")
        time.sleep(0.0002)  # fine steps: mounts take 1-10 ms


def do_unmount(spec, fg_proc, pid):
    mnt = spec["mnt"]
    attempts = []
    if spec["fs"] == "unionctl":
        attempts.append([spec["unionctl"], "umount", mnt])
    if spec["fs"] != "kernel":
        attempts.append(["fusermount3", "-u", mnt])
    attempts += [["umount", mnt], ["umount", "-l", mnt]]
    for argv in attempts:
        if not mounted(mnt):
            break
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    # The daemon must go too, or it keeps a rootless mount namespace alive.
    deadline = time.time() + 10
    for p in [pid] + ([fg_proc.pid] if fg_proc else []):
        while p and os.path.exists(f"/proc/{p}") and time.time() < deadline:
            try:
                with open(f"/proc/{p}/stat") as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.05)
        if p and os.path.exists(f"/proc/{p}"):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
    if fg_proc:
        fg_proc.wait()


def start_profiler(spec, pid, name):
    tool = spec.get("profile")
    if not tool or not pid:
        return None
    base = os.path.join(spec["profile_dir"], f"{spec['fs']}-{spec['workload']}-{name}")
    if tool == "ops":
        # Every FUSE request of this connection (the kernel's fuse tracepoints), to count
        # requests per opcode and their latency.
        st = os.stat(spec["mnt"])
        conn = os.major(st.st_dev) << 20 | os.minor(st.st_dev)
        flt = f"connection == {conn}"
        argv = ["perf", "record", "-a", "-e", "fuse:fuse_request_send", "--filter", flt,
                "-e", "fuse:fuse_request_end", "--filter", flt, "-o", base + ".ops.data"]
    elif tool == "perf":
        # FS_BENCH_PERF_ARGS="--call-graph dwarf" for callers in a binary without frame pointers.
        extra = shlex.split(os.environ.get("FS_BENCH_PERF_ARGS", "-g -F 999"))
        argv = ["perf", "record", *extra, "-p", str(pid), "-o", base + ".perf.data"]
    else:
        argv = ["strace", "-c", "-f", "-p", str(pid), "-o", base + ".strace.txt"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach to every thread before the work starts
    return proc, base


def stop_profiler(prof):
    if not prof:
        return
    proc, base = prof
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    if os.path.exists(base + ".ops.data"):
        out = subprocess.run(["perf", "script", "-i", base + ".ops.data", "-F", "time,event,trace"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode(errors="replace")
        with open(base + ".ops.txt", "w") as f:
            f.write(summarize_ops(out))
    if os.path.exists(base + ".perf.data"):
        with open(base + ".perf.txt", "w") as out:
            subprocess.run(["perf", "report", "-i", base + ".perf.data", "--stdio", "--no-children",
                            "--percent-limit", "0.5", "--sort", "sym"], stdout=out, stderr=subprocess.DEVNULL)
        with open(base + ".perf-callers.txt", "w") as out:
            subprocess.run(["perf", "report", "-i", base + ".perf.data", "--stdio", "--children",
                            "--percent-limit", "2", "--sort", "sym", "-g", "none"], stdout=out, stderr=subprocess.DEVNULL)


def summarize_ops(script):
    """Per FUSE opcode: requests, total and mean latency (send to end), from perf script."""
    sent, stats = {}, {}
    for line in script.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        t = float(parts[0].rstrip(":"))
        fields = dict(zip(parts[2::2], parts[3::2]))
        req = fields.get("req")
        if "fuse_request_send" in parts[1]:
            op = line.split("(")[1].split(")")[0] if "(" in line else fields.get("opcode", "?")
            sent[req] = (op, t)
        elif "fuse_request_end" in parts[1] and req in sent:
            op, t0 = sent.pop(req)
            n, total = stats.get(op, (0, 0.0))
            stats[op] = (n + 1, total + (t - t0))
    rows = sorted(stats.items(), key=lambda kv: -kv[1][1])
    out = [f"{'opcode':<20} {'requests':>9} {'total s':>9} {'mean us':>9}"]
    for op, (n, total) in rows:
        out.append(f"{op:<20} {n:>9} {total:>9.3f} {total / n * 1e6:>9.1f}")
    out.append(f"{'(all)':<20} {sum(n for n, _ in stats.values()):>9} "
               f"{sum(t for _, t in stats.values()):>9.3f}")
    return "\n".join(out) + "\n"


def worker(spec):
    result = {"fs": spec["fs"], "workload": spec["workload"], "values": {}, "error": None}
    subst = {"M": spec["mnt"], "U": spec["upper"], "C": spec["corpus"]}
    fg_proc = pid = None
    is_mounted = False
    try:
        secs, fg_proc = do_mount(spec)
        is_mounted = True
        result["values"]["mount"] = secs
        pid = daemon_pid(spec)
        if pid:  # so the orchestrator can stop it if this worker is killed
            with open(os.path.join(os.path.dirname(spec["mnt"]), "daemon.pid"), "w") as f:
                f.write(str(pid))
        for step in spec["steps"]:
            kind = step[0]
            if kind == "drop":
                drop_caches(spec, step[1])
            elif kind == "sleep":
                time.sleep(step[1])
            elif kind == "rss":
                if pid:
                    result["values"][step[1]] = rss_mib(pid)
            else:
                cmd = step[-1].format(**subst)
                prof = start_profiler(spec, pid, step[1]) if kind == "time" else None
                t0 = time.perf_counter()
                proc = subprocess.Popen(["bash", "-c", "set -o pipefail; " + cmd], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
                try:
                    _, err = proc.communicate(timeout=spec["timeout"])
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
                    stop_profiler(prof)
                    raise RuntimeError(f"timed out after {spec['timeout']} s: {cmd}")
                secs = time.perf_counter() - t0
                stop_profiler(prof)
                if proc.returncode != 0:
                    lines = err.decode(errors="replace").strip().splitlines()
                    raise RuntimeError(f"exit {proc.returncode}: {cmd}\n  " + "\n  ".join(lines[:5] + (["..."] if len(lines) > 5 else [])))
                if kind == "time":
                    result["values"][step[1]] = secs
    except Exception as e:  # reported to the orchestrator, which prints it once
        result["error"] = str(e)
        result["mount_failed"] = not is_mounted
    finally:
        if is_mounted:
            try:
                do_unmount(spec, fg_proc, pid)
            except Exception as e:
                result["error"] = (result["error"] or "") + f"\n  unmount failed: {e}"
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------
# Orchestrator
# ---------------------------------------------------------------------------------------
def many_layers(user):
    """max(MISS_LAYERS) small lower layers (made once per run): layer i holds d/ with 10
    files of its own and d/shared, which every layer has. Short paths: kernel overlayfs
    takes its options in one page."""
    top = os.path.join(SCRATCH, "ml" + (f"-uid{user.pw_uid}" if user else ""))
    shutil.rmtree(top, ignore_errors=True)
    for i in range(max(MISS_LAYERS)):
        d = os.path.join(top, f"{i:03d}", "d")
        os.makedirs(d)
        for j in range(10):
            open(os.path.join(d, f"f{i}_{j}"), "w").close()
        open(os.path.join(d, "shared"), "w").close()
    if user:
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", top], check=True)
    return top


def lowers_of(wl, corpus, layers_dir):
    if wl.startswith("miss"):
        return ":".join(os.path.join(layers_dir, f"{i:03d}") for i in range(int(wl[4:])))
    return f"{corpus}/top:{corpus}/bottom"


def read_corpus_env(corpus):
    env = {}
    with open(os.path.join(corpus, "corpus.env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            env[k] = v
    return env


class DropServer(threading.Thread):
    """Drops caches when a rootless worker asks through ctl.req, answers on ctl.ack."""

    def __init__(self, base):
        super().__init__(daemon=True)
        self.base = base

    def run(self):
        while True:
            with open(self.base + ".req") as f:
                level = f.read().strip()
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write(f"{level}\n")
            with open(self.base + ".ack", "w") as f:
                f.write("ok\n")


def installed_dropin(unionctl):
    """The drop-in install.sh would install beside UNIONCTL: the build of
    scripts/build-dropin.sh unless cargo's small binary is newer."""
    small = unionctl + "-overlay"
    built = sorted(glob.glob(os.path.join(os.path.dirname(unionctl), "..", "dropin", "*", "dropin",
                                          "unionctl-overlay")), key=os.path.getmtime)
    if built and (not os.path.exists(small) or os.path.getmtime(small) <= os.path.getmtime(built[-1])):
        return built[-1]
    return small


def ensure_rootless_user():
    try:
        return pwd.getpwnam(ROOTLESS_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", ROOTLESS_USER], check=True)
        return pwd.getpwnam(ROOTLESS_USER)


def rootless_corpus(corpus, user):
    """A copy of the corpus owned by the rootless user (inside `unshare -Ur` they are root)."""
    dest = corpus.rstrip("/") + f"-uid{user.pw_uid}"
    stamp = os.path.join(dest, ".copied-from")
    src_stamp = open(os.path.join(corpus, "corpus.env")).read()
    if os.path.exists(stamp) and open(stamp).read() == src_stamp:
        return dest
    log(f"copying the corpus for user {user.pw_name} to {dest}")
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["cp", "-a", corpus, dest + ".tmp"], check=True)
    subprocess.run(["chown", "-R", "-h", f"{user.pw_uid}:{user.pw_gid}", dest + ".tmp"], check=True)
    with open(os.path.join(dest + ".tmp", ".copied-from"), "w") as f:
        f.write(src_stamp)
    os.rename(dest + ".tmp", dest)
    return dest


def leftover_mounts():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if mp.startswith(SCRATCH + "/"):
                out.append(mp)
    return out


def cleanup_mounts():
    for mp in reversed(leftover_mounts()):
        subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_recorded_daemon(run):
    try:
        pid = int(open(os.path.join(run, "daemon.pid")).read())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def median(xs):
    return statistics.median(xs) if xs else None


def fmt(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help="corpus dir made by fs_corpus.sh")
    ap.add_argument("--quick", action="store_true", help="smoke run: quick corpus, 1 repetition")
    ap.add_argument("--rootless", action="store_true", help=f"run the file systems as user {ROOTLESS_USER} in unshare -Urm")
    ap.add_argument("-n", "--reps", type=int, help="repetitions (medians); default 3, 1 with --quick")
    ap.add_argument("--fs", default=",".join(FS_ALL), help="comma list of: " + ",".join(FS_ALL))
    ap.add_argument("--only", help="comma list of workloads: " + ",".join(MAIN_ROWS + EXTRA_ROWS))
    ap.add_argument("--no-extras", action="store_true", help="skip scaling and rss")
    ap.add_argument("--timeout", type=float, default=600, help="per timed step, seconds")
    ap.add_argument("--unionctl-cli", choices=["dropin", "mount"], default="dropin",
                    help="how unionctl mounts: `dropin` (default) runs unionctl-overlay with fuse-overlayfs' "
                         "command line, as podman does; `mount` runs `unionctl mount --lower ...`")
    ap.add_argument("--unionctl", default=os.environ.get("UNIONCTL_BIN"), help="unionctl binary (default $UNIONCTL_BIN, else target/release/unionctl)")
    ap.add_argument("--unionctl-opts", help="extra `unionctl mount -o` options, e.g. threads=2 (A/B runs)")
    ap.add_argument("--profile", choices=["perf", "strace", "ops"],
                    help="profile the FUSE daemon during timed steps (ops: FUSE requests per opcode and latency)")
    ap.add_argument("--out", default=os.path.join(SCRATCH, "results"), help="where results (json, md, profiles) go")
    args = ap.parse_args()

    if args.worker:
        worker(json.loads(args.worker))
        return 0

    if os.geteuid() != 0:
        log("run as root (it drops caches, mounts, and makes the rootless user itself)")
        return 2
    if not args.corpus or not os.path.exists(os.path.join(args.corpus, "corpus.env")):
        log(f"no corpus at '{args.corpus}': build it with benches/fs_corpus.sh (fs_bench.sh does)")
        return 2
    reps = args.reps or (1 if args.quick else 3)
    fss = [f.strip() for f in args.fs.split(",") if f.strip()]
    for f in fss:
        if f not in FS_ALL:
            log(f"unknown file system '{f}' in --fs (expected {', '.join(FS_ALL)})")
            return 2
    env = read_corpus_env(args.corpus)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bindir = os.path.join(SCRATCH, "bin")
    os.makedirs(bindir, exist_ok=True)
    os.chmod(SCRATCH, 0o755)
    os.chmod(bindir, 0o755)
    unionctl = None
    if "unionctl" in fss:
        src = args.unionctl or os.path.join(repo, "target", "release", "unionctl")
        if not os.access(src, os.X_OK):
            log(f"unionctl binary not found at '{src}': build it (cargo build --release), set UNIONCTL_BIN, or leave it out with --fs kernel,fuse-overlayfs")
            return 2
        # A private copy: the run is not disturbed by a rebuild, and the rootless user can run it.
        unionctl = os.path.join(bindir, "unionctl")
        shutil.copy2(src, unionctl + ".tmp")
        os.rename(unionctl + ".tmp", unionctl)
        if args.unionctl_cli == "dropin":
            dropin = installed_dropin(src)
            if not os.access(dropin, os.X_OK):
                log(f"'{dropin}' not found (cargo build --release builds it); or use --unionctl-cli mount")
                return 2
            log(f"drop-in: {os.path.realpath(dropin)}")
            shutil.copy2(dropin, unionctl + "-overlay.tmp")
            os.rename(unionctl + "-overlay.tmp", unionctl + "-overlay")
    me = os.path.join(bindir, "fs_bench.py")
    shutil.copy2(os.path.abspath(__file__), me)
    for tool, fs in [("fuse-overlayfs", "fuse-overlayfs")]:
        if fs in fss and not shutil.which(tool):
            log(f"{tool} not installed (apt-get install {tool}; fs_bench.sh does it)")
            return 2

    corpus = args.corpus
    user = None
    runs_dir = os.path.join(SCRATCH, "runs")
    prefix = []
    drop_fifo = None
    if args.rootless:
        user = ensure_rootless_user()
        corpus = rootless_corpus(args.corpus, user)
        runs_dir = os.path.join(SCRATCH, "runs-rootless")
        if os.stat("/dev/fuse").st_mode & 0o006 != 0o006:
            log("making /dev/fuse usable by every user (mode 0666, as distributions ship it)")
            os.chmod("/dev/fuse", 0o666)
        ctl = os.path.join(SCRATCH, "ctl")
        os.makedirs(ctl, exist_ok=True)
        drop_fifo = os.path.join(ctl, "drop")
        for suffix in (".req", ".ack"):
            if not os.path.exists(drop_fifo + suffix):
                os.mkfifo(drop_fifo + suffix)
            os.chown(drop_fifo + suffix, user.pw_uid, user.pw_gid)
        DropServer(drop_fifo).start()
        prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
                  "env", f"HOME={user.pw_dir}", f"USER={user.pw_name}", "XDG_RUNTIME_DIR=",
                  "unshare", "-Urm", "--"]
    os.makedirs(runs_dir, exist_ok=True)
    if user:
        os.chown(runs_dir, user.pw_uid, user.pw_gid)
    os.makedirs(args.out, exist_ok=True)
    profile_dir = os.path.join(args.out, "profiles")
    if args.profile:
        os.makedirs(profile_dir, exist_ok=True)
        if args.profile == "ops" and not os.path.exists("/sys/kernel/tracing/events/fuse"):
            subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], stderr=subprocess.DEVNULL)
        if args.rootless:
            log("--profile works in root mode only")
            return 2

    small_dirs = sorted(os.listdir(os.path.join(args.corpus, "top", env["SMALL_DIR"])))
    groups = [" ".join("{M}/" + env["SMALL_DIR"] + "/" + d for d in small_dirs[i::4]) for i in range(4)]
    wl_defs = workloads(env, groups)
    rows = MAIN_ROWS + ([] if args.no_extras else EXTRA_ROWS)
    if args.only:
        rows = [r.strip() for r in args.only.replace("scaling", "par1,par4")
                .replace("misses", ",".join(f"miss{n}" for n in MISS_LAYERS)).split(",")]
        for r in rows:
            if r not in wl_defs:
                log(f"unknown workload '{r}' in --only (expected {', '.join(wl_defs)})")
                return 2

    layers_dir = many_layers(user) if any(r.startswith("miss") for r in rows) else None

    import atexit
    atexit.register(cleanup_mounts)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    mode = "rootless" if args.rootless else "root"
    log(f"{mode} run: {reps} repetition(s) of {len(rows)} workloads on {', '.join(fss)}; corpus {corpus} "
        f"({env['ENTRIES']} entries, {int(env['BYTES']) // 2**20} MiB)")
    samples = {}  # (fs, workload, value name) -> [seconds]
    failed = {}  # fs -> first error
    errors = []
    started = time.time()
    for rep in range(reps):
        for wi, wl in enumerate(rows):
            # Rotate the order of the file systems so none always runs first (cold disk etc.).
            order = fss[(rep + wi) % len(fss):] + fss[:(rep + wi) % len(fss)]
            for fs in order:
                if fs in failed or (wl == "rss" and fs not in FUSE_FS):
                    continue
                run = os.path.join(runs_dir, f"{fs}-{wl}-{rep}")
                shutil.rmtree(run, ignore_errors=True)
                for d in ("upper", "work", "mnt"):
                    os.makedirs(os.path.join(run, d))
                if user:
                    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", run], check=True)
                spec = {"fs": fs, "workload": wl, "rootless": bool(args.rootless), "unionctl": unionctl,
                        "lower": lowers_of(wl, corpus, layers_dir), "upper": f"{run}/upper", "work": f"{run}/work",
                        "mnt": f"{run}/mnt", "corpus": corpus, "steps": wl_defs[wl][1], "timeout": args.timeout,
                        "drop_fifo": drop_fifo, "profile": args.profile, "unionctl_opts": args.unionctl_opts, "profile_dir": profile_dir,
                        "unionctl_cli": args.unionctl_cli}
                argv = prefix + ["/usr/bin/python3", me, "--worker", json.dumps(spec)]
                try:
                    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=args.timeout * 4 + 120)
                    out = p.stdout.decode(errors="replace").strip().splitlines()
                    res = json.loads(out[-1]) if out else {"error": f"worker exit {p.returncode}: {p.stderr.decode(errors='replace')[-500:]}", "values": {}}
                except subprocess.TimeoutExpired:
                    res = {"error": "worker timed out", "values": {}, "mount_failed": False}
                    kill_recorded_daemon(run)
                cleanup_mounts()
                shutil.rmtree(run, ignore_errors=True)
                if res.get("error"):
                    msg = f"{FS_LABEL[fs]} / {wl} (rep {rep + 1}): {res['error']}"
                    log("FAILED " + msg)
                    errors.append(msg)
                    if res.get("mount_failed"):
                        failed[fs] = res["error"]
                        log(f"leaving {FS_LABEL[fs]} out of the rest of this run")
                    continue
                for k, v in res["values"].items():
                    samples.setdefault((fs, wl, k), []).append(v)
                brief = " ".join(f"{k}={v:.2f}" for k, v in res["values"].items() if v is not None)
                log(f"rep {rep + 1}/{reps} {wl:<10} {fs:<15} {brief}")

    elapsed = time.time() - started
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    table = render(samples, rows, wl_defs, fss, reps, mode, env, stamp, elapsed, args.unionctl_cli)
    print(table)
    tag = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{mode}" + ("-quick" if env["KIND"] == "quick" else "")
    with open(os.path.join(args.out, f"fs-{tag}.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out, f"fs-{tag}.json"), "w") as f:
        json.dump({"date": stamp, "mode": mode, "reps": reps, "corpus": env, "errors": errors,
                   "samples": {"/".join(k): v for k, v in samples.items()}}, f, indent=1)
    log(f"results in {args.out}/fs-{tag}.md and .json")
    if errors:
        log(f"{len(errors)} sample(s) failed:")
        for e in errors:
            print("  " + e.splitlines()[0], file=sys.stderr)
        return 1
    return 0


def render(samples, rows, wl_defs, fss, reps, mode, env, stamp, elapsed, cli="dropin"):
    med = lambda fs, wl, k="s": median(samples.get((fs, wl, k), []))
    ref = "kernel overlayfs" + (" (userxattr)" if mode == "rootless" else "")
    cols = [f for f in ["unionctl", "kernel", "fuse-overlayfs"] if f in fss]
    head = [FS_LABEL[f] if f != "kernel" else ref for f in cols]
    lines = [f"{mode} run, {stamp}, medians of {reps}, seconds; corpus {env['KIND']}: {env['ENTRIES']} entries, "
             f"{int(env['BYTES']) / 2**30:.2f} GiB; took {elapsed / 60:.1f} min", ""]
    has_u = "unionctl" in fss
    extra = ["unionctl/kernel", "unionctl/fuse-overlayfs", "goal"] if has_u else []
    if "kernel" in fss and "fuse-overlayfs" in fss:
        extra.append("fuse-overlayfs/kernel")
    lines.append("| workload | " + " | ".join(head + extra) + " |")
    lines.append("|---" * (1 + len(head) + len(extra)) + "|")
    for wl in [r for r in rows if r in MAIN_ROWS] + ["mount"]:
        if wl == "mount":
            vals = {f: median([v for (fs, _w, k), vs in samples.items() if fs == f and k == "mount" for v in vs]) for f in cols}
            title = ("mount time (all mounts of the run; unionctl: "
                     + ("unionctl-overlay -o ...)" if cli == "dropin" else "unionctl mount)"))
        else:
            vals = {f: med(f, wl) for f in cols}
            title = wl_defs[wl][0]
        cells = [fmt(vals[f], 3 if wl == "mount" else 2) for f in cols]
        if has_u:
            u, k, fo = vals.get("unionctl"), vals.get("kernel"), vals.get("fuse-overlayfs")
            cells += [ratio(u, k), ratio(u, fo)]
            if wl == "mount":
                ok = None if u is None or fo is None else u <= fo
            else:
                lim = KERNEL_LIMIT.get(wl, 1.5)
                ok = None if u is None or k is None or fo is None else (u <= lim * k and u < fo)
            cells.append("—" if ok is None else ("yes" if ok else "no"))
        if "fuse-overlayfs/kernel" in extra:
            cells.append(ratio(vals.get("fuse-overlayfs"), vals.get("kernel")))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    if "par1" in rows and "par4" in rows:
        lines += ["", f"Parallel scaling: throughput of 4 processes / 1 process doing the same work on the "
                  f"{env['SMALL_DIR']}/ tree (fresh mount, lower layer warm in the page cache; goal >= 1.6x):", "",
                  "| | " + " | ".join(head) + " |", "|---" * (1 + len(head)) + "|"]
        for what, k in [("stat (find + stat)", "stat"), ("read (cat)", "read")]:
            cells = []
            for f in cols:
                a, b = med(f, "par1", k), med(f, "par4", k)
                cells.append("—" if a is None or b is None else f"{a / b:.2f}x ({fmt(a)} s / {fmt(b)} s)")
            lines.append(f"| {what} | " + " | ".join(cells) + " |")
    if "rss" in rows:
        fuse_cols = [f for f in cols if f in FUSE_FS]
        lines += ["", "FUSE daemon RSS, MiB (goal: <= 128 after the walk, and falling after drop_caches 2):", "",
                  "| | " + " | ".join(FS_LABEL[f] for f in fuse_cols) + " |", "|---" * (1 + len(fuse_cols)) + "|"]
        for what, k in [("after walking the corpus", "walked"), ("after echo 2 > drop_caches", "forgot")]:
            lines.append(f"| {what} | " + " | ".join(fmt(med(f, "rss", k), 1) for f in fuse_cols) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
