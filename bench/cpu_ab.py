#!/usr/bin/env python3
"""A/B of kithd binaries by events/s and CPU per event (bench/cpu_ab.py).

    bench/cpu_ab.py [--reps N] [--duration S] [--loadgen PATH] [--extra "ARGS"] KITHD [KITHD ...]

For each repetition and each binary in turn: a fresh data dir, kithd on a free loopback port, then
`loadgen --setup --clients 4 --duration S` plus --extra (default "--no-preload"). kithd's CPU time
is read from /proc/PID/task/*/stat (utime + stime) just before and after loadgen, summed per thread
name (kith-apply = the writer, kith-sync = the syncer, kith-ingest = the parse pool, MHD-worker = HTTP,
rocksdb:* = flushes and compactions) and divided by the messages accepted (events/s x seconds):
wall-clock rates on a shared 2-core machine move by +-20% or more from one run to the next, CPU per
event much less. Prints one line per run."""
import argparse, collections, os, re, shutil, socket, subprocess, tempfile, time

TCK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid):
    out = collections.Counter()
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            s = open(f"/proc/{pid}/task/{t}/stat").read()
        except OSError:
            continue
        name = re.sub(r"\d+$", "", s[s.index("(") + 1:s.rindex(")")])
        f = s[s.rindex(")") + 2:].split()
        out[name] += (int(f[11]) + int(f[12])) / TCK
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(kithd, args):
    d = tempfile.mkdtemp(prefix="kith-cpu-ab-")
    port = free_port()
    p = subprocess.Popen([kithd, "--data-dir", d + "/data", "--listen", f"127.0.0.1:{port}"],
                         env=dict(os.environ, KITH_ADMIN_KEY="secret"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        before, load0 = thread_cpu(p.pid), os.getloadavg()[0]
        r = subprocess.run([args.loadgen, "--url", f"http://127.0.0.1:{port}", "--key", "secret",
                            "--setup", "--clients", "4", "--duration", str(args.duration)]
                           + args.extra.split(), capture_output=True, text=True)
        after, load1 = thread_cpu(p.pid), os.getloadavg()[0]
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)
    res = [l for l in r.stdout.splitlines() if l.startswith("RESULT")]
    if not res:
        print(f"{kithd}: no RESULT line: {r.stdout[-300:]} {r.stderr[-300:]}")
        return
    m = dict(re.findall(r"(\w+)=([\d.]+)", res[0]))
    events = float(m["events_per_s"]) * float(m["seconds"])
    if events <= 0:
        print(f"{kithd}: no message accepted")
        return
    cpu = {k: after[k] - before.get(k, 0) for k in after}
    us = lambda v: v / events * 1e6
    threads = " ".join(f"{k}={us(v):.1f}" for k, v in sorted(cpu.items(), key=lambda x: -x[1])
                       if us(v) >= 0.3)
    line = (f"{kithd}: events/s={m['events_per_s']} request p50/p99/max="
            f"{int(m['ingest_p50_us']) / 1000:.1f}/{int(m['ingest_p99_us']) / 1000:.1f}/"
            f"{int(m['ingest_max_us']) / 1000:.0f} ms")
    if float(m["lookups_per_s"]):
        line += (f" lookups/s={m['lookups_per_s']} lookup p50/p99="
                 f"{int(m['lookup_p50_us']) / 1000:.3f}/{int(m['lookup_p99_us']) / 1000:.2f} ms")
    print(f"{line} errors={m['errors']} cpu/event={us(sum(cpu.values())):.1f} us [{threads}] "
          f"load={load0:.1f}-{load1:.1f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kithd", nargs="+")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--loadgen", default="build/bench/loadgen")
    ap.add_argument("--extra", default="--no-preload")
    args = ap.parse_args()
    for _ in range(args.reps):
        for k in args.kithd:
            run(k, args)


if __name__ == "__main__":
    main()
