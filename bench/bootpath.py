#!/usr/bin/env python3
"""Boot path: QEMU start to the target's marker for an auto-boot with
timeout=0, vhdboot against a shell-script chain doing the same steps
(bench/shell-chain: busybox + util-linux losetup + kexec-tools), in the
same run, alternating, over the same kernel, host disk, image and marker.

    bench/bootpath.py [--runs 3] [--skip-build] [--out FRAGMENT.md]
                      [--baseline BOOTSTRAPPER.img] [--icount SHIFT]

Prints figures, never asserts them (it does fail when a boot fails). Uses
tests/e2e/build for the kernel, the bootstrapper and the host disk, and
tests/e2e/driver.py's Vm to run QEMU (TCG, -smp 1). Per-step figures come
from the guests' own timelines: vhdboot's `vhdboot: timeline:` lines (stage 1
prints its line before kexec, stage 2 before exec'ing /init) and the shell
chain's `shell-chain: t=` lines (from /proc/uptime, 10 ms steps).

--baseline boots a second vhdboot bootstrapper initramfs (e.g. one built
from an earlier commit with initrd/build) in the same alternation, so that a
change is measured before and after under the same load. --icount runs QEMU
with `-icount shift=SHIFT`: guest time then counts instructions (shift=0:
one virtual ns each), so the guests' own timelines no longer move with the
host's load. Idle waits and disk I/O still follow the host clock, and the
QEMU-start-to-marker totals stay wall-clock figures.
"""

import contextlib

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, "target", "bench", "bootpath")

spec = importlib.util.spec_from_file_location("driver", os.path.join(REPO, "tests", "e2e", "driver.py"))
driver = importlib.util.module_from_spec(spec)
spec.loader.exec_module(driver)

APPEND = "console=ttyS0 quiet loglevel=3"
OURS_APPEND = f"{APPEND} vhdboot.default=/Images/ntfs-linux.vhd vhdboot.timeout=0"
TIMELINE = re.compile(r"vhdboot: timeline:(.*)")
SHELL_MARK = re.compile(r"shell-chain: t=([0-9.]+) (.+)")


def parse_timeline(line):
    """'1.234 PID 1 start | 1.690 modules loaded +0.456 | ...' -> [(what, t)]"""
    out = []
    for part in line.split("|"):
        m = re.match(r"\s*([0-9.]+) (.+?)(?: \+[0-9.]+)?\s*$", part)
        if m:
            out.append((m.group(2), float(m.group(1))))
    return out


@contextlib.contextmanager
def qemu_args(extra):
    """Adds `extra` to the QEMU command lines driver.Vm starts (driver.py
    has no option for it; only this script's boots are affected)."""
    if not extra:
        yield
        return
    real = driver.subprocess.Popen

    def popen(cmd, *a, **kw):
        if cmd and cmd[0] == "qemu-system-x86_64":
            cmd = list(cmd) + extra
        return real(cmd, *a, **kw)

    driver.subprocess.Popen = popen
    try:
        yield
    finally:
        driver.subprocess.Popen = real


def boot(args, name, kernel, initrd, append, disk):
    with qemu_args(args.qemu_extra):
        vm = driver.Vm(args, name, kernel, initrd, append, disk=disk)
    try:
        m = driver.marker(vm, args.timeout)
        took = vm.elapsed()
        driver.check_booted_image(m, "/Images/ntfs-linux.vhd", "e2e.uki=ntfs")
        text = vm.text()
    finally:
        vm.close()
    return took, text


def ours_steps(text):
    lines = [parse_timeline(m.group(1)) for m in TIMELINE.finditer(text)]
    if len(lines) < 2:
        raise SystemExit("bench/bootpath: vhdboot printed no timeline (is the binary older than sys::timeline?)")
    return lines[0], lines[1]


def shell_steps(text):
    marks = [(m.group(2).strip(), float(m.group(1))) for m in SHELL_MARK.finditer(text)]
    split = next(i for i, (w, _) in enumerate(marks) if w == "stage 2 start")
    return marks[:split], marks[split:]


def durations(marks):
    return [(w, t, t - marks[i - 1][1] if i else None) for i, (w, t) in enumerate(marks)]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--timeout", type=float, default=240)
    ap.add_argument("--out", default=os.path.join(REPO, "target", "bench", "bootpath.md"))
    ap.add_argument("--baseline", help="a second vhdboot bootstrapper initramfs to boot in the same alternation")
    ap.add_argument("--icount", type=int, help="QEMU -icount shift: guest time counts instructions")
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    if not a.skip_build:
        subprocess.run([os.path.join(REPO, "tests", "e2e", "build")], check=True, stdout=subprocess.DEVNULL)
    env = driver.load_build_env(REPO)
    kroot = os.path.dirname(os.path.dirname(env["VMLINUZ"]))
    binary = os.path.join(REPO, "target", "x86_64-unknown-linux-gnu", "release", "vhdboot")
    shell_initrd = os.path.join(WORK, "shell-chain.img")
    subprocess.run([os.path.join(REPO, "bench", "shell-chain", "build"), shell_initrd, kroot,
                    env["KVER"], binary], check=True)
    extra = ["-icount", f"shift={a.icount}"] if a.icount is not None else []
    args = argparse.Namespace(workdir=WORK, timeout=a.timeout, qemu_extra=extra)

    ours, shell, base = [], [], []
    for i in range(a.runs):
        if a.baseline:
            took, text = boot(args, f"base-{i}", env["VMLINUZ"], a.baseline, OURS_APPEND, env["DISK"])
            s1, s2 = ours_steps(text)
            base.append((took, s1, s2))
            print(f"bootpath: baseline run {i}: {took:.2f} s to marker", file=sys.stderr)
        took, text = boot(args, f"ours-{i}", env["VMLINUZ"], env["BOOT_INITRD"], OURS_APPEND, env["DISK"])
        s1, s2 = ours_steps(text)
        ours.append((took, s1, s2))
        print(f"bootpath: vhdboot run {i}: {took:.2f} s to marker", file=sys.stderr)
        took, text = boot(args, f"shell-{i}", env["VMLINUZ"], shell_initrd, APPEND, env["DISK"])
        s1, s2 = shell_steps(text)
        shell.append((took, s1, s2))
        print(f"bootpath: shell chain run {i}: {took:.2f} s to marker", file=sys.stderr)

    t_ours = med([r[0] for r in ours])
    t_shell = med([r[0] for r in shell])

    def step_table(runs, title):
        rows = [f"{title} (medians over {len(runs)} runs; t = guest CLOCK_MONOTONIC/uptime, each kernel starts at 0):", "",
                "| stage | step | t (s) | step duration (s) |", "|---|---|---:|---:|"]
        for stage, idx in (("1", 1), ("2", 2)):
            names = [w for w, _ in runs[0][idx]]
            for j, name in enumerate(names):
                ts = [r[idx][j][1] for r in runs if len(r[idx]) > j]
                ds = [r[idx][j][1] - r[idx][j - 1][1] for r in runs if j and len(r[idx]) > j]
                rows.append(f"| {stage} | {name} | {med(ts):.3f} | " + (f"{med(ds):.3f}" if ds else "-") + " |")
        return rows

    def span(runs, start, end):
        out = []
        for r in runs:
            d = dict(r[1])
            if start in d and end in d:
                out.append(d[end] - d[start])
        return med(out)

    load_ours = span(ours, "boot requested", "kexec_file_load done")
    load_shell = span(shell, "image found", "kexec load done")
    lines = ["## 2. Boot path", "",
             "`bench/bootpath.py`: QEMU (TCG, -smp 1, 1 GiB) start to the target's "
             "`VHDBOOT-TARGET-OK` marker, auto-boot of /Images/ntfs-linux.vhd with timeout=0, "
             f"{a.runs} runs of each, alternating. Same kernel, host disk (qcow2 overlay), image and marker "
             "checks (dio=1, root on loopNp2). The shell chain (bench/shell-chain/) does the same "
             "steps with busybox, util-linux losetup and kexec-tools (`kexec -s`, i.e. kexec_file_load too); "
             "it cuts the UKI's sections out with od + dd.", "",
             "| chain | runs (s) | median (s) |", "|---|---|---:|",
             f"| vhdboot | {', '.join(f'{r[0]:.2f}' for r in ours)} | {t_ours:.2f} |",
             f"| shell chain | {', '.join(f'{r[0]:.2f}' for r in shell)} | {t_shell:.2f} |",
             "", f"Ratio vhdboot / shell chain: **{t_ours / t_shell:.2f}** (goal ≤ 0.80).", "",
             f"UKI read + kexec_file_load (stage 1 'boot requested' → 'kexec_file_load done', "
             f"13.4 MB UKI): vhdboot **{load_ours:.3f} s** (goal ≤ 1.0 s); shell chain "
             f"('image found' → 'kexec load done', od + dd + kexec -s): {load_shell:.3f} s.", ""]
    if a.icount is not None:
        lines[2:2] = [f"QEMU ran with `-icount shift={a.icount}`: the guests' timelines count instructions "
                      "(idle waits and disk I/O excepted) and do not move with the host's load.", ""]
    lines += step_table(ours, "vhdboot's timeline") + [""]
    if base:
        t_base = med([r[0] for r in base])
        lines += [f"Baseline ({os.path.relpath(a.baseline, REPO) if a.baseline.startswith(REPO) else a.baseline}), "
                  f"same alternation: runs {', '.join(f'{r[0]:.2f}' for r in base)}, median {t_base:.2f} s "
                  f"(vhdboot {t_ours:.2f} s); 'boot requested' → 'kexec_file_load done': "
                  f"{span(base, 'boot requested', 'kexec_file_load done'):.3f} s (vhdboot {load_ours:.3f} s).", ""]
        lines += step_table(base, "The baseline's timeline") + [""]
    lines += step_table(shell, "The shell chain's timeline") + [""]
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
