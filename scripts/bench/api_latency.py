#!/usr/bin/python3
"""api_latency.py: the measuring half of scripts/bench/api_latency.sh.

Python's standard library for the cvmm side (a minimal HTTP/1.1 client over
the unix socket, so a request costs what the daemon takes, not a curl or CLI
process start), the libvirt binding (python3-libvirt) for the libvirt side,
so both are measured in the same way from the same kind of process.  Every
clock read that is compared with another process's is time.time()
(CLOCK_REALTIME: the exec-stamp wrapper and strace -ttt use it too);
durations inside one process use perf_counter.

Subcommands (all print or write plain text the shell script reads):
  probe     latency samples of the "host" and "one VM" requests, round robin
            over fresh connections and one kept-alive connection, until a
            stop file appears: "epoch kind ms ok" lines
  loop      one list client (GET /v1/vms, or virConnectListAllDomains) on one
            connection, until a stop file appears; "iterations bytes" at exit
  restart   spawns the daemon and times exec -> first answer -> all N
            running VMs seen again
  execstart times "start" -> the QEMU exec stamp written by qemu_stamp.c
  strace    summarises an strace -f -ttt log over a time window
"""
import argparse
import json
import os
import socket
import sys
import time


# ---- a small HTTP/1.1 client over a unix socket ----------------------------

class Http:
    def __init__(self, path, timeout=60):
        self.path = path
        self.timeout = timeout
        self.s = None
        self.buf = b""

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError:
            s.close()
            raise
        self.s, self.buf = s, b""

    def close(self):
        if self.s:
            self.s.close()
        self.s, self.buf = None, b""

    def _more(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise ConnectionError("connection closed by the daemon")
        self.buf += d

    def request(self, method, path, body=b""):
        """(status, body bytes); keeps the connection unless told to close."""
        if self.s is None:
            self.connect()
        head = "%s %s HTTP/1.1\r\nHost: cvmm\r\nContent-Length: %d\r\n" % (method, path, len(body))
        if body:
            head += "Content-Type: application/json\r\n"
        self.s.sendall(head.encode() + b"\r\n" + body)
        while b"\r\n\r\n" not in self.buf:
            self._more()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.split(b"\r\n")
        status = int(lines[0].split()[1])
        hdr = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            hdr[k.strip().lower()] = v.strip().lower()
        if b"content-length" in hdr:
            n = int(hdr[b"content-length"])
            while len(self.buf) < n:
                self._more()
            out, self.buf = self.buf[:n], self.buf[n:]
        elif hdr.get(b"transfer-encoding") == b"chunked":
            out = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._more()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                n = int(size_line.split(b";")[0], 16)
                while len(self.buf) < n + 2:
                    self._more()
                out += self.buf[:n]
                self.buf = self.buf[n + 2:]
                if n == 0:
                    break
        else:
            try:
                while True:
                    self._more()
            except ConnectionError:
                pass
            out, self.buf = self.buf, b""
            self.close()
        if hdr.get(b"connection") == b"close":
            self.close()
        return status, out


def fresh(sock, method, path, body=b""):
    h = Http(sock)
    try:
        return h.request(method, path, body)
    finally:
        h.close()


def stopped(path):
    return os.path.exists(path)


def libvirt_module():
    import libvirt
    # libvirt prints every error on stderr by default; the callers count them
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    return libvirt


def dominfo(libvirt, conn, name):
    """What `virsh dominfo NAME` asks the daemon: the lookup, then each field
    (id, name and UUID come with the lookup)."""
    d = conn.lookupByName(name)
    d.OSType()
    d.info()
    d.isPersistent()
    d.autostart()
    d.hasManagedSaveImage()
    conn.getSecurityModel()
    d.securityLabel()
    return True


# ---- probe ------------------------------------------------------------------

def cmd_probe(a):
    kinds = ["host_fresh", "vm_fresh", "host_ka", "vm_ka"]
    if a.kind == "cvmm":
        ka = Http(a.target)
        vm_path = "/v1/vms/" + a.vm

        def ka_get(path):
            try:
                return ka.request("GET", path)[0] == 200
            except OSError:
                ka.close()  # reconnect at the next request
                raise

        ops = {
            "host_fresh": lambda: fresh(a.target, "GET", "/v1/host")[0] == 200,
            "vm_fresh": lambda: fresh(a.target, "GET", vm_path)[0] == 200,
            "host_ka": lambda: ka_get("/v1/host"),
            "vm_ka": lambda: ka_get(vm_path),
        }
    else:
        libvirt = libvirt_module()
        conn = libvirt.open(a.target)

        def fresh_version():
            c = libvirt.open(a.target)
            try:
                return c.getVersion() > 0
            finally:
                c.close()

        def fresh_dominfo():
            c = libvirt.open(a.target)
            try:
                return dominfo(libvirt, c, a.vm)
            finally:
                c.close()

        ops = {
            "host_fresh": fresh_version,
            "vm_fresh": fresh_dominfo,
            "host_ka": lambda: conn.getVersion() > 0,
            "vm_ka": lambda: dominfo(libvirt, conn, a.vm),
        }
    pause = a.pause_ms / 1000.0
    i = 0
    with open(a.out, "w", buffering=1) as out:
        while not stopped(a.stop):
            k = kinds[i % len(kinds)]
            i += 1
            w0 = time.time()
            t0 = time.perf_counter()
            try:
                ok = bool(ops[k]())
            except Exception:  # a failed request is a sample too, marked failed
                ok = False
            dt = (time.perf_counter() - t0) * 1000
            out.write("%.6f %s %.3f %d\n" % (w0, k, dt, ok))
            time.sleep(pause)


# ---- loop -------------------------------------------------------------------

def cmd_loop(a):
    n = nbytes = errors = 0
    ready_written = False
    if a.kind == "cvmm":
        h = Http(a.target)

        def once():
            st, body = h.request("GET", "/v1/vms")
            if st != 200:
                raise RuntimeError("status %d" % st)
            return len(body)
    else:
        libvirt = libvirt_module()
        conn = libvirt.open(a.target)

        def once():
            return len(conn.listAllDomains(0))
    while not stopped(a.stop):
        try:
            nbytes += once()
            n += 1
        except Exception:
            errors += 1
            if a.kind == "cvmm":
                h.close()
            time.sleep(0.01)
        if not ready_written and n:
            open(a.ready, "w").close()
            ready_written = True
    with open(a.out, "w") as f:
        f.write("%d %d %d\n" % (n, nbytes, errors))


# ---- restart ----------------------------------------------------------------

def spawn(cmd, log, env=None):
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open("/dev/null", os.O_RDONLY)
    t0 = time.time()
    pid = os.posix_spawn(cmd[0], cmd, env if env is not None else os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, null, 0),
                                       (os.POSIX_SPAWN_DUP2, fd, 1),
                                       (os.POSIX_SPAWN_DUP2, fd, 2)])
    os.close(fd)
    os.close(null)
    return t0, pid


def cmd_restart(a):
    deadline = time.time() + a.timeout
    res = {"n": a.n}
    if a.kind == "cvmm":
        t0, pid = spawn(a.cmd, a.log)
        res["pid"] = pid
        while time.time() < deadline:
            try:
                if fresh(a.target, "GET", "/v1/host")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.0005)
        else:
            res["error"] = "no answer to GET /v1/host"
        t1 = time.time()
        first = True
        while "error" not in res and time.time() < deadline:
            try:
                st, body = fresh(a.target, "GET", "/v1/vms?fields=name,state,pid")
                vms = json.loads(body).get("vms", []) if st == 200 else []
            except (OSError, ValueError):
                vms = []
            up = sum(1 for v in vms if v.get("state") == "running" and (v.get("pid") or 0) > 0)
            if first:
                res["running_at_first_answer"] = up
                first = False
            if up >= a.n:
                break
            time.sleep(0.002)
        else:
            res.setdefault("error", "not all %d VMs running again" % a.n)
        t2 = time.time()
    else:
        libvirt = libvirt_module()
        t0, pid = spawn(a.cmd, a.log)
        res["pid"] = pid
        conn = None
        while time.time() < deadline:
            try:
                conn = libvirt.open(a.target)
                doms = conn.listAllDomains(0)
                break
            except libvirt.libvirtError:
                if conn:
                    conn.close()
                conn = None
                time.sleep(0.0005)
        else:
            res["error"] = "no answer to virConnectListAllDomains"
        t1 = time.time()
        first = True
        while conn and time.time() < deadline:
            try:
                up = len(conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
            except libvirt.libvirtError:
                up = 0
            if first:
                res["running_at_first_answer"] = up
                first = False
            if up >= a.n:
                break
            time.sleep(0.002)
        else:
            res.setdefault("error", "not all %d domains listed as active" % a.n)
        t2 = time.time()
    res["first_ms"] = round((t1 - t0) * 1000, 1)
    res["all_ms"] = round((t2 - t0) * 1000, 1)
    res["t0"] = t0
    print(json.dumps(res))
    return 0 if "error" not in res else 1


# ---- execstart --------------------------------------------------------------

def wait_stamp(path, off, uuid, timeout):
    """The exec time the wrapper recorded for the QEMU of uuid, written past
    byte off of path."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path) as f:
                f.seek(off)
                for line in f:
                    p = line.split()
                    if len(p) >= 2 and p[1] == uuid:
                        return float(p[0])
        except OSError:
            pass
        time.sleep(0.0002)
    return None


def fsize(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def cvmm_state(sock, vm):
    st, body = fresh(sock, "GET", "/v1/vms/" + vm)
    return json.loads(body).get("state") if st == 200 else None


def wait_cvmm_state(sock, vm, states, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        s = cvmm_state(sock, vm)
        if s in states:
            return s
        time.sleep(0.002)
    return None


def cmd_execstart(a):
    out = open(a.out, "w", buffering=1)
    if a.kind == "cvmm":
        for r in range(a.warmup + a.runs):
            off = fsize(a.stamps)
            t0m = time.clock_gettime(time.CLOCK_MONOTONIC)
            t0 = time.time()
            st, body = fresh(a.target, "POST", "/v1/vms/%s/start" % a.vm)
            t_resp = time.time()
            t_exec = wait_stamp(a.stamps, off, a.uuid, 60)
            s = wait_cvmm_state(a.target, a.vm, ("running", "failed"))
            t_run = time.time()
            if st // 100 != 2 or t_exec is None or s != "running":
                print("execstart: run %d: status %d, exec %s, state %s: %s" %
                      (r, st, t_exec, s, body[:200]), file=sys.stderr)
            if r >= a.warmup and t_exec is not None:
                out.write("%.6f %.6f %.3f %.3f %.3f\n" % (t0, t0m, (t_resp - t0) * 1000,
                                                          (t_exec - t0) * 1000, (t_run - t0) * 1000))
            fresh(a.target, "POST", "/v1/vms/%s/kill" % a.vm)
            wait_cvmm_state(a.target, a.vm, ("stopped", "failed", "exited", "defined"))
            time.sleep(a.pause)
    else:
        libvirt = libvirt_module()
        conn = libvirt.open(a.target)
        xml = open(a.xml).read() if a.xml else None
        for r in range(a.warmup + a.runs):
            off = fsize(a.stamps)
            t0m = time.clock_gettime(time.CLOCK_MONOTONIC)
            t0 = time.time()
            try:
                if a.mode == "createxml":
                    dom = conn.createXML(xml, 0)  # what `virsh create FILE` does
                else:
                    dom = conn.lookupByName(a.vm)
                    dom.create()                  # what `virsh start NAME` does
            except libvirt.libvirtError as e:
                print("execstart: run %d: %s" % (r, e), file=sys.stderr)
                continue
            t_ret = time.time()
            t_exec = wait_stamp(a.stamps, off, a.uuid, 60)
            if r >= a.warmup and t_exec is not None:
                out.write("%.6f %.6f %.3f %.3f %.3f\n" % (t0, t0m, (t_ret - t0) * 1000,
                                                          (t_exec - t0) * 1000, (t_ret - t0) * 1000))
            try:
                dom.destroy()
            except libvirt.libvirtError as e:
                print("execstart: destroy: %s" % e, file=sys.stderr)
            time.sleep(a.pause)
    out.close()


# ---- strace -----------------------------------------------------------------

def cmd_strace(a):
    """Counts the syscalls of an `strace -f -ttt` log between t0 and the
    first execve of the wrapper (the request's path to QEMU's exec), lists
    the fsync-family calls with their offsets, and counts the whole start
    (t0 -> t1) without the exec'd QEMU and its threads."""
    import re
    line_re = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(<\.\.\. )?(\w+)")
    clone_re = re.compile(r"^(\d+)\s+\S+\s+(?:<\.\.\. )?(?:clone|clone3|fork|vfork)\b.*=\s+(\d+)")
    t_exec = None
    before, whole = {}, {}
    fsyncs = []
    gone = set()
    with open(a.log, errors="replace") as f:
        lines = f.readlines()
    for line in lines:
        m = line_re.match(line)
        if not m:
            continue
        pid, ts, resumed, name = int(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
        if ts < a.t0 or ts > a.t1:
            continue
        c = clone_re.match(line)
        if c and int(c.group(1)) in gone:
            gone.add(int(c.group(2)))
        if pid in gone or resumed:
            continue
        if name == "execve" and a.exe in line:
            if t_exec is None:  # the request's QEMU; counted as the last call before it
                t_exec = ts
                before[name] = before.get(name, 0) + 1
            gone.add(pid)
            continue
        whole[name] = whole.get(name, 0) + 1
        if t_exec is None:
            before[name] = before.get(name, 0) + 1
            if name in ("fsync", "fdatasync", "sync_file_range", "syncfs", "sync"):
                fsyncs.append("%s@%.1fms" % (name, (ts - a.t0) * 1000))
    res = {
        "exec_ms": round((t_exec - a.t0) * 1000, 1) if t_exec else None,
        "before_exec_total": sum(before.values()),
        "before_exec": dict(sorted(before.items(), key=lambda kv: -kv[1])),
        "fsyncs_before_exec": fsyncs,
        "whole_start_total": sum(whole.values()),
        "whole_start": dict(sorted(whole.items(), key=lambda kv: -kv[1])),
    }
    print(json.dumps(res))


# ---- perfexec -----------------------------------------------------------------

def cmd_perfexec(a):
    """For each timed run (its CLOCK_MONOTONIC start in column 2 of --runs),
    the first exec of the wrapper after it (sched_process_exec, filename
    --exe) and the entry of that process's execve syscall before it, both
    in ms from the start: "enter_ms done_ms" lines."""
    import re
    ev_re = re.compile(r"^\s*(\d+)\s+(\d+\.\d+):\s+(\S+):\s*(.*)$")
    enters, execs = [], []
    with open(a.perf, errors="replace") as f:
        for line in f:
            m = ev_re.match(line)
            if not m:
                continue
            pid, ts, ev, tr = int(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
            if ev.endswith("sys_enter_execve"):
                enters.append((ts, pid))
            elif ev.endswith("sched_process_exec") and ("filename=%s " % a.exe) in tr + " ":
                execs.append((ts, pid))
    starts = []
    with open(a.runs) as f:
        for line in f:
            p = line.split()
            if len(p) >= 2:
                starts.append(float(p[1]))
    for t0 in starts:
        ex = next(((ts, pid) for ts, pid in execs if ts >= t0), None)
        if not ex:
            continue
        ent = [ts for ts, pid in enters if pid == ex[1] and t0 <= ts <= ex[0]]
        enter = ent[-1] if ent else ex[0]
        print("%.3f %.3f" % ((enter - t0) * 1000, (ex[0] - t0) * 1000))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd_name", required=True)
    for name in ("probe", "loop", "restart", "execstart"):
        s = sub.add_parser(name)
        s.add_argument("--kind", choices=("cvmm", "libvirt"), required=True)
        s.add_argument("--target", required=True, help="unix socket path, or libvirt URI")
        s.add_argument("--out")
        if name in ("probe", "loop"):
            s.add_argument("--stop", required=True, help="stop when this file exists")
        if name == "probe":
            s.add_argument("--vm", required=True, help="cvmm VM id, or libvirt domain name")
            s.add_argument("--pause-ms", type=float, default=2.0)
            s.set_defaults(fn=cmd_probe)
        if name == "loop":
            s.add_argument("--ready", required=True, help="created after the first list")
            s.set_defaults(fn=cmd_loop)
        if name == "restart":
            s.add_argument("--n", type=int, required=True)
            s.add_argument("--log", required=True)
            s.add_argument("--timeout", type=float, default=120)
            s.add_argument("cmd", nargs="+")
            s.set_defaults(fn=cmd_restart)
        if name == "execstart":
            s.add_argument("--vm", help="cvmm VM id, or libvirt domain name")
            s.add_argument("--uuid", required=True)
            s.add_argument("--stamps", required=True)
            s.add_argument("--runs", type=int, default=10)
            s.add_argument("--warmup", type=int, default=1)
            s.add_argument("--pause", type=float, default=0.3)
            s.add_argument("--mode", choices=("createxml", "start"), default="start")
            s.add_argument("--xml")
            s.set_defaults(fn=cmd_execstart)
    s = sub.add_parser("perfexec")
    s.add_argument("--perf", required=True, help="perf script -F pid,time,event,trace output")
    s.add_argument("--runs", required=True, help="an execstart output file")
    s.add_argument("--exe", required=True)
    s.set_defaults(fn=cmd_perfexec)
    s = sub.add_parser("strace")
    s.add_argument("--log", required=True)
    s.add_argument("--t0", type=float, required=True)
    s.add_argument("--t1", type=float, required=True)
    s.add_argument("--exe", required=True, help="the wrapper's path, as in its execve")
    s.set_defaults(fn=cmd_strace)
    a = p.parse_args()
    sys.exit(a.fn(a) or 0)


if __name__ == "__main__":
    main()
