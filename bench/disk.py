#!/usr/bin/env python3
"""Disk speed inside the booted target: fio in a target booted through
vhdboot, the raw host partition against the VHD's loop device with direct
I/O (what stage 2 sets up) and without it, over ntfs3 and over exfat, in
one run. Prints figures and ratios; asserts none of them (it fails only
when a boot or a job fails).

    bench/disk.py [--skip-build] [--runtime 3] [--rounds 3] [--size 512]
                  [--no-variants] [--out FRAGMENT.md]

Builds, cached under target/bench/disk/fixtures-<hash>: a target initramfs
with fio and util-linux losetup (and their libraries) and bench/disk-init as
/init, two UKIs and two 700 MiB VHDs around it, and a host disk with an NTFS
and an exFAT partition of 768 MiB (one VHD each) and a raw 600 MiB
"bench-scratch" partition. Each boot gets a fresh copy of that disk (the
target writes to it) and auto-boots one VHD with vhdboot.timeout=0; QEMU
runs under TCG with -smp 1, as tests/e2e does. bench/disk-init says what
each job and each configuration is.
"""

import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, "target", "bench", "disk")

spec = importlib.util.spec_from_file_location("driver", os.path.join(REPO, "tests", "e2e", "driver.py"))
driver = importlib.util.module_from_spec(spec)
spec.loader.exec_module(driver)

JOBS = [  # (name, what, goal for loop-dio as a ratio to raw)
    ("seq1m-qd1", "seq 1 MiB read, QD1", 0.80),
    ("seq1m-qd8", "seq 1 MiB read, QD8", 0.95),
    ("rand4k-qd1", "4k random read, QD1", 0.90),
    ("rand4k-qd16", "4k random read, QD16", 0.95),
    ("randwrite4k-qd16", "4k random write, QD16", None),
]
VHD_SIZE = "700M"
PART_MIB = 768
SCRATCH_MIB = 600
RESULT = re.compile(r"BENCH-RESULT (.*)")


def sh(*cmd, env=None):
    subprocess.run(list(cmd), check=True, env=env, stdout=sys.stderr)


def fixtures(env, binary, cmdline):
    """Builds (or reuses) the bench target and host disk; returns the disk."""
    e2e = os.path.join(REPO, "tests", "e2e")
    h = hashlib.sha256()
    h.update(f"{env['KVER']} {cmdline} {VHD_SIZE} {PART_MIB} {SCRATCH_MIB}".encode())
    for p in [binary, "/usr/bin/fio", "/usr/sbin/losetup", os.path.join(REPO, "bench", "disk-init")] + [
            os.path.join(e2e, n) for n in ("build-target-initrd", "make-uki", "make-vhd", "make-host-disk")]:
        with open(p, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    fx = os.path.join(WORK, "fixtures-" + h.hexdigest()[:16])
    disk = os.path.join(fx, "host-disk.img")
    if os.path.exists(os.path.join(fx, "done")):
        return disk
    for old in os.listdir(WORK):
        if old.startswith("fixtures-"):
            shutil.rmtree(os.path.join(WORK, old))
    os.makedirs(fx)
    kroot = os.path.dirname(os.path.dirname(env["VMLINUZ"]))
    initrd = os.path.join(fx, "target-initrd.img")
    # zstd -3: the initramfs carries fio's 85 MB of libraries, and -19 would
    # take minutes to build for no gain in a benchmark.
    sh(os.path.join(e2e, "build-target-initrd"), initrd, kroot, env["KVER"], env=dict(
        os.environ, E2E_TARGET_INIT=os.path.join(REPO, "bench", "disk-init"),
        E2E_TARGET_EXTRA="/usr/bin/fio:/usr/bin/fio /usr/sbin/losetup:/usr/local/sbin/losetup",
        E2E_TARGET_ZSTD="3"))
    vhds = []
    for fs in ("ntfs", "exfat"):
        uki = os.path.join(fx, f"{fs}-bench.efi")
        sh(os.path.join(e2e, "make-uki"), uki, f"Disk bench ({fs})", f"bench-{fs}",
           f"{cmdline} e2e.uki={fs}", env["KVER"], env["VMLINUZ"], initrd)
        vhd = os.path.join(fx, f"{fs}-linux.vhd")
        sh(os.path.join(e2e, "make-vhd"), vhd, uki, f"{fs}-bench", binary,
           env=dict(os.environ, E2E_VHD_SIZE=VHD_SIZE))
        vhds.append(vhd)
    sh(os.path.join(e2e, "make-host-disk"), disk, *vhds,
       env=dict(os.environ, E2E_HOST_PART_MIB=str(PART_MIB), E2E_HOST_SCRATCH_MIB=str(SCRATCH_MIB)))
    for v in vhds:
        os.unlink(v)
    open(os.path.join(fx, "done"), "w").close()
    return disk


def run_fs(args, env, disk, fs):
    """Boots the fs's VHD on a fresh copy of the disk; returns (results, text)."""
    work_disk = os.path.join(WORK, "run-disk.img")
    # Plain cp keeps the source's holes and its allocated zeros as they are:
    # --sparse=always would turn the VHDs' zeros into holes, which the host
    # serves differently from data.
    sh("cp", disk, work_disk)
    append = (f"console=ttyS0 quiet loglevel=3 vhdboot.default=/Images/{fs}-linux.vhd "
              "vhdboot.timeout=0")
    vm = driver.Vm(args, f"disk-{fs}", env["VMLINUZ"], env["BOOT_INITRD"], append,
                   disk=work_disk, overlay=False)
    try:
        vm.wait_for(r"BENCH-DONE|BENCH-FAILED.*", args.timeout, f"the {fs} benchmark to finish")
        text = vm.text()
        vm.wait_exit(60, "the target to power off")
    finally:
        vm.close()
        os.unlink(work_disk)
    if "BENCH-FAILED" in text:
        raise SystemExit("bench/disk: " + re.search(r"BENCH-FAILED.*", text).group(0))
    failed = re.findall(r"BENCH-JOB-FAILED.*", text)
    if failed:
        raise SystemExit("bench/disk: " + "\n".join(failed))
    results = []
    for m in RESULT.finditer(text):
        fields = dict(kv.split("=", 1) for kv in m.group(1).split())
        if fields.get("err", "0") != "0":
            raise SystemExit(f"bench/disk: fio reported error {fields['err']}: {m.group(0)}")
        results.append(fields)
    return results, text


def fmt_rate(job, kib_s, iops):
    if job.startswith("seq"):
        return f"{kib_s / 1024:.1f} MiB/s"
    return f"{iops:,.0f} IOPS"


def medians(results):
    """{(cfg, job): result with the median kib_s and iops over the rounds}"""
    groups = {}
    for r in results:
        groups.setdefault((r["cfg"], r["job"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        m = dict(rs[0])
        m["kib_s"] = statistics.median(float(r["kib_s"]) for r in rs)
        m["iops"] = statistics.median(float(r["iops"]) for r in rs)
        m["rounds"] = len(rs)
        out[key] = m
    return out


def tables(fs, results, text):
    by = medians(results)
    setup = re.search(rf"BENCH-SETUP fs={fs} (.*)", text)
    out = [f"### {fs} (`{fs}` host, {setup.group(1).split(' backing=')[0] if setup else ''})", ""]
    out += ["| job | (a) raw | (b) loop, direct I/O | (c) loop, buffered | (b)/(a) | (c)/(a) | goal (b)/(a) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for job, what, goal in JOBS:
        a, b, c = (by.get((cfg, job)) for cfg in ("raw", "loop-dio", "loop-buffered"))
        if not (a and b and c):
            continue
        ka, kb, kc = (float(x["kib_s"]) for x in (a, b, c))
        out.append(f"| {what} | {fmt_rate(job, ka, float(a['iops']))} | {fmt_rate(job, kb, float(b['iops']))} | "
                   f"{fmt_rate(job, kc, float(c['iops']))} | **{kb / ka:.2f}** | {kc / ka:.2f} | "
                   + (f"≥ {goal:.2f}" if goal else "-") + " |")
    variants = sorted({r["cfg"] for r in results if r["cfg"].startswith("loop-dio-")})
    if variants:
        out += ["", f"Loop settings tried over {fs}, one at a time, as ratios to (a) raw "
                "(the loop-dio column is stage 2's default):", "",
                "| setting | " + " | ".join(j for j, _, _ in JOBS) + " |",
                "|---|" + "---:|" * len(JOBS)]
        for cfg in ["loop-dio"] + variants:
            cells = []
            for job, _, _ in JOBS:
                a, v = by.get(("raw", job)), by.get((cfg, job))
                cells.append(f"{float(v['kib_s']) / float(a['kib_s']):.2f}" if a and v else "-")
            first = next((r for r in results if r["cfg"] == cfg), {})
            label = f"{cfg} (lbs {first.get('lbs')}, {first.get('sched')}, nr {first.get('nr')}, max {first.get('maxkb')} KiB)"
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    off = [r for r in results if r["cfg"].startswith("loop-dio") and r["dio"] != "1"]
    out += ["", (f"Direct I/O was OFF during {len(off)} loop-dio job(s): "
                 + ", ".join(f"{r['cfg']}/{r['job']}" for r in off)) if off else
            f"Direct I/O stayed on (`/sys/block/loopN/loop/dio` = 1) for every loop-dio job over {fs}."]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-build", action="store_true", help="reuse tests/e2e/build's outputs")
    ap.add_argument("--runtime", type=int, default=3, help="seconds per fio job (plus 1 s ramp)")
    ap.add_argument("--rounds", type=int, default=3, help="every configuration this many times, interleaved")
    ap.add_argument("--size", type=int, default=512, help="MiB of the device each job covers")
    ap.add_argument("--no-variants", action="store_true", help="skip the loop settings")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", default=os.path.join(REPO, "target", "bench", "disk.md"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/disk: needs root (loop devices and FUSE mounts build the host disk)")
    if not shutil.which("fio"):
        raise SystemExit("bench/disk: fio is missing (apt-get install fio; bench/run installs it)")
    os.makedirs(WORK, exist_ok=True)
    if not a.skip_build:
        subprocess.run([os.path.join(REPO, "tests", "e2e", "build")], check=True, stdout=subprocess.DEVNULL)
    env = driver.load_build_env(REPO)
    binary = os.path.join(REPO, "target", "x86_64-unknown-linux-gnu", "release", "vhdboot")
    cmdline = (f"console=ttyS0 quiet loglevel=3 bench.runtime={a.runtime} bench.size={a.size} bench.rounds={a.rounds}"
               + (" bench.variants=0" if a.no_variants else ""))
    disk = fixtures(env, binary, cmdline)
    args = argparse.Namespace(workdir=WORK, timeout=a.timeout)

    lines = ["## 1. Disk speed inside the booted target", "",
             "`bench/disk.py`: the target is booted through vhdboot (auto-boot, QEMU TCG, -smp 1, 1 GiB, "
             "virtio disk, raw format) and runs fio 3.33 (libaio, direct=1, page cache dropped before "
             f"each job, {a.runtime} s + 1 s ramp, over {a.size} MiB; every configuration once per round, "
             f"{a.rounds} rounds, medians shown). (a) is the raw host partition "
             "for reads and a raw partition of the same host disk for writes; (b) the VHD's loop device "
             "as stage 2 attached it (direct I/O on), at the VHD's unused root partition; (c) the same "
             "loop device after `losetup --direct-io=off`. One run measures all of it, ntfs3 then exfat.", ""]
    for fs in ("ntfs", "exfat"):
        results, text = run_fs(args, env, disk, fs)
        with open(os.path.join(WORK, f"{fs}.results"), "w") as f:
            f.write("\n".join(m.group(0) for m in RESULT.finditer(text)) + "\n")
        host_fs = {"ntfs": "ntfs3", "exfat": "exfat"}[fs]
        lines += tables(host_fs, results, text) + [""]
        print(f"bench/disk: {fs}: {len(results)} jobs", file=sys.stderr)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
