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
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, "target", "bench", "bootpath")

spec = importlib.util.spec_from_file_location("driver", os.path.join(REPO, "tests", "e2e", "driver.py"))
driver = importlib.util.module_from_spec(spec)
spec.loader.exec_module(driver)

# The bootstrapper's command line of the e2e test, for both chains: the same
# kernel settings, so that the comparison is of the chains' own work.
APPEND = driver.BASE_CMDLINE
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


def boot(args, name, kernel, initrd, append, disk, interact=None):
    """Boots to the marker; returns the host's seconds from QEMU start to
    the marker and the serial text. `interact(vm)`, if given, runs first
    (keys in the menu) and returns the host time from which the second
    figure, from that moment to the marker, is counted."""
    with qemu_args(args.qemu_extra):
        vm = driver.Vm(args, name, kernel, initrd, append, disk=disk)
    try:
        since = interact(vm) if interact else None
        m = driver.marker(vm, args.timeout)
        took = vm.elapsed()
        driver.check_booted_image(m, "/Images/ntfs-linux.vhd", "e2e.uki=ntfs")
        text = vm.text()
    finally:
        vm.close()
    if since is not None:
        return took, text, took - since
    return took, text


HELP_LINE = "move between entries"


def key_to_frame(vm, key, shown):
    """Host seconds from sending `key` until the help screen is (shown) or
    is not (not shown) on the rendered screen."""
    t0 = vm.elapsed()
    vm.send(key)
    vm.wait_for(lambda t: (HELP_LINE in t) == shown, 30, "the help screen to toggle", on_screen=True)
    return vm.elapsed() - t0


def toggle_help(vm, until):
    """Opens and closes the help (h does not cancel a preload) until the
    host clock reaches `until` (vm.elapsed()); returns each key-to-frame
    latency with the moment its key was sent."""
    out = []
    while vm.elapsed() < until:
        for shown in (True, False):
            t = vm.elapsed()
            out.append((t, key_to_frame(vm, b"h", shown)))
        time.sleep(0.05)
    return out


def enter_when(settle_s, latencies=None):
    """An `interact` for a menu without a countdown: waits for the menu,
    optionally measures key-to-frame at once (while the default preloads)
    and after the wait, waits `settle_s` host seconds from the menu, then
    presses Enter and returns that moment."""
    def interact(vm):
        vm.wait_for(re.escape(driver.NTFS_TITLE), 240, "the menu", on_screen=True)
        t_menu = vm.elapsed()
        if latencies is not None:
            # Keys all through the preload (its kexec_file_load included),
            # then keys with nothing running.
            latencies["menu"] = t_menu
            latencies["during"].extend(toggle_help(vm, t_menu + settle_s - 3))
            latencies["after"].extend(toggle_help(vm, t_menu + settle_s))
        left = settle_s - (vm.elapsed() - t_menu)
        if left > 0:
            time.sleep(left)
        vm.key("enter")
        return vm.elapsed()
    return interact


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
    ap.add_argument("--variant", action="append", default=[], metavar="WORDS",
                    help="also boot vhdboot with WORDS added to the bootstrapper's kernel command "
                         "line (e.g. init_on_alloc=0), in the same alternation")
    ap.add_argument("--preload", action="store_true",
                    help="also measure preloads (issue 17): QEMU start to marker at timeout=5 "
                         "against the shell chain's 5 s countdown, and Enter to marker with the "
                         "preload finished and with Enter pressed as the menu shows")
    ap.add_argument("--append", default="", metavar="WORDS",
                    help="words added to vhdboot's kernel command line in every boot of this run")
    ap.add_argument("--latency-only", action="store_true",
                    help="--preload: boot once, measure key → frame during and after the preload, stop")
    ap.add_argument("--wait", type=float, default=12.0,
                    help="--preload: host seconds from the menu to Enter for the preloaded boot")
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
    variants = {words: [] for words in a.variant}
    pre = {"ours5": [], "shell5": [], "ready": [], "at_once": []}
    latencies = {"during": [], "after": []}
    ours_append = f"{OURS_APPEND} {a.append}".strip()
    menu_append = f"{APPEND} vhdboot.default=/Images/ntfs-linux.vhd vhdboot.timeout=-1 {a.append}".strip()
    if a.latency_only:
        took, text, enter = boot(args, "latency", env["VMLINUZ"], env["BOOT_INITRD"], menu_append,
                                 env["DISK"], enter_when(a.wait, latencies))
        print("\n".join(latency_lines(latencies, (took, *ours_steps(text), enter))))
        return
    for i in range(a.runs):
        for words in a.variant:
            took, text = boot(args, f"variant-{i}", env["VMLINUZ"], env["BOOT_INITRD"],
                              f"{ours_append} {words}", env["DISK"])
            s1, s2 = ours_steps(text)
            variants[words].append((took, s1, s2))
            print(f"bootpath: vhdboot + {words} run {i}: {took:.2f} s to marker", file=sys.stderr)
        if a.preload:
            took, text = boot(args, f"ours5-{i}", env["VMLINUZ"], env["BOOT_INITRD"],
                              ours_append.replace("timeout=0", "timeout=5"), env["DISK"])
            pre["ours5"].append((took, *ours_steps(text)))
            took, text = boot(args, f"shell5-{i}", env["VMLINUZ"], shell_initrd,
                              f"{APPEND} shellchain.timeout=5", env["DISK"])
            pre["shell5"].append((took, *shell_steps(text)))
            took, text, enter = boot(args, f"ready-{i}", env["VMLINUZ"], env["BOOT_INITRD"], menu_append,
                                     env["DISK"], enter_when(a.wait, latencies if i == 0 else None))
            pre["ready"].append((took, *ours_steps(text), enter))
            took, text, enter = boot(args, f"at-once-{i}", env["VMLINUZ"], env["BOOT_INITRD"], menu_append,
                                     env["DISK"], enter_when(0))
            pre["at_once"].append((took, *ours_steps(text), enter))
            print(f"bootpath: preload run {i}: timeout=5 {pre['ours5'][-1][0]:.2f} s, shell chain 5 s "
                  f"{pre['shell5'][-1][0]:.2f} s, Enter after preload {pre['ready'][-1][3]:.2f} s, "
                  f"Enter at once {pre['at_once'][-1][3]:.2f} s to marker", file=sys.stderr)
        if a.baseline:
            took, text = boot(args, f"base-{i}", env["VMLINUZ"], a.baseline, OURS_APPEND, env["DISK"])
            s1, s2 = ours_steps(text)
            base.append((took, s1, s2))
            print(f"bootpath: baseline run {i}: {took:.2f} s to marker", file=sys.stderr)
        took, text = boot(args, f"ours-{i}", env["VMLINUZ"], env["BOOT_INITRD"], ours_append, env["DISK"])
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
    for words, runs in variants.items():
        t_var = med([r[0] for r in runs])
        lines += [f"### Bootstrapper command line + `{words}`", "",
                  f"Same alternation, `{OURS_APPEND} {words}`: runs {', '.join(f'{r[0]:.2f}' for r in runs)}, "
                  f"median {t_var:.2f} s (without: {t_ours:.2f} s). Stage 1 'PID 1 start' → 'reboot': "
                  f"{span(runs, 'PID 1 start', 'reboot'):.3f} s (without: {span(ours, 'PID 1 start', 'reboot'):.3f} s); "
                  f"'boot requested' → 'kexec_file_load done': {span(runs, 'boot requested', 'kexec_file_load done'):.3f} s "
                  f"(without: {load_ours:.3f} s).", ""]
        lines += step_table(runs, f"vhdboot + {words}: timeline") + [""]
    if a.preload:
        pre["g0"] = med([guest_to_marker(r) for r in ours])
        pre["gs0"] = med([guest_to_marker(r) for r in shell])
        lines += preload_section(pre, latencies, a, t_ours, t_shell, span)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def guest_to_marker(run, since=None):
    """Instruction-counted seconds (with --icount) from the bootstrapper
    kernel's start, or from its step `since`, to the target's init: stage
    1's 'reboot' mark plus the target kernel's time to stage 2's last mark.
    Firmware time is left out, the same for every chain."""
    s1, s2 = dict(run[1]), dict(run[2])
    if "reboot" not in s1 or "exec next init" not in s2:
        return float("nan")
    start = s1.get(since, float("nan")) if since else 0.0
    return s1["reboot"] - start + s2["exec next init"]


def preload_section(pre, latencies, a, t_ours, t_shell, span):
    """The figures of issue 17's comparison, as markdown lines."""
    t5 = med([r[0] for r in pre["ours5"]])
    s5 = med([r[0] for r in pre["shell5"]])
    ready = med([r[3] for r in pre["ready"]])
    at_once = med([r[3] for r in pre["at_once"]])
    own = span(pre["ready"], "reboot requested", "reboot")
    waited = [dict(r[1]) for r in pre["ready"]]
    preloaded = sum(1 for d in waited if "preload ready" in d and d["preload ready"] < d.get("reboot requested", 0))
    g5 = med([guest_to_marker(r) for r in pre["ours5"]])
    gs5 = med([guest_to_marker(r) for r in pre["shell5"]])
    g_ready = med([guest_to_marker(r, "reboot requested") for r in pre["ready"]])
    g_once = med([guest_to_marker(r, "menu start") for r in pre["at_once"]])
    guest = ["Guest clocks (instruction-counted with --icount; host load drops out; firmware excluded): "
             f"kernel start → target init at timeout=5: vhdboot {g5:.3f} s, shell chain {gs5:.3f} s, "
             f"ratio **{g5 / gs5:.2f}** (goal ≤ 0.80); at timeout=0: vhdboot {pre['g0']:.3f} s, shell chain "
             f"{pre['gs0']:.3f} s, ratio {pre['g0'] / pre['gs0']:.2f}. Enter → target init: preloaded "
             f"{g_ready:.3f} s (from 'reboot requested'), Enter as the menu shows {g_once:.3f} s (from "
             f"'menu start'), ratio **{g_ready / g_once:.2f}**.", ""]
    lines = ["### Preload (issue 17)", "",
             "Same alternation. timeout=5: QEMU start to marker with `vhdboot.timeout=5` (the default "
             "is preloaded during the countdown), against the shell chain with `shellchain.timeout=5` "
             "(a 5 s sleep after it found the image, where a script's menu would wait). Enter → marker: "
             f"`vhdboot.timeout=-1`, Enter {a.wait:.0f} s after the menu showed (preload finished) or as "
             "soon as it showed (the preload has just started, so Enter waits for all of it: the boot "
             "without a preload), host wall-clock.", "",
             "| figure | runs (s) | median (s) |", "|---|---|---:|",
             f"| vhdboot, timeout=5, start → marker | {', '.join(f'{r[0]:.2f}' for r in pre['ours5'])} | {t5:.2f} |",
             f"| shell chain, 5 s countdown, start → marker | {', '.join(f'{r[0]:.2f}' for r in pre['shell5'])} | {s5:.2f} |",
             f"| vhdboot, timeout=0, start → marker | (above) | {t_ours:.2f} |",
             f"| shell chain, no countdown, start → marker | (above) | {t_shell:.2f} |",
             f"| vhdboot, Enter → marker, preloaded | {', '.join(f'{r[3]:.2f}' for r in pre['ready'])} | {ready:.2f} |",
             f"| vhdboot, Enter → marker, Enter as the menu shows | {', '.join(f'{r[3]:.2f}' for r in pre['at_once'])} | {at_once:.2f} |",
             "",
             f"Wall-clock ratios (they move with the host's load): timeout=5 vhdboot / shell chain "
             f"{t5 / s5:.2f}; timeout=0 {t_ours / t_shell:.2f}; Enter → marker preloaded / not preloaded "
             f"{ready / at_once:.2f}.", ""] + guest + [
             f"Our own work from Enter to the reboot when preloaded (stage 1 'reboot requested' → "
             f"'reboot', guest clock): **{own * 1000:.1f} ms** (goal ≤ 50 ms); the preload had finished "
             f"before Enter in {preloaded} of {len(waited)} runs.", ""]
    if latencies["during"]:
        lines += latency_lines(latencies, pre["ready"][0])
    return lines


def latency_lines(latencies, ready_run):
    """Key → frame figures of the first preloaded run, split by the guest's
    own preload window (host and guest clocks are matched at the menu)."""
    steps = dict(ready_run[1])
    window = steps.get("preload ready", 0) - steps.get("menu start", 0)
    all_keys = latencies["during"] + latencies["after"]
    inside = [lat for t, lat in all_keys if t - latencies["menu"] < window]
    outside = [lat for t, lat in all_keys if t - latencies["menu"] >= window]

    def fig(xs):
        if not xs:
            return "none"
        return (f"{len(xs)} keys, median {med(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms")
    return [f"Key → frame in QEMU (h toggling the help screen; host clock from the key's bytes on the "
            f"serial line to the rendered frame), first preloaded run: during the preload (its first "
            f"{window:.1f} s after the menu by the guest's clock, kexec_file_load included): {fig(inside)}; "
            f"after it: {fig(outside)}.", ""]


if __name__ == "__main__":
    main()
