#!/usr/bin/env python3
"""PID 1's own memory and discovery time with many images: boots the
bootstrapper in QEMU (TCG, -smp 1) against an NTFS host disk holding N
images, waits for the menu, opens the rescue shell from it and reads
/proc/1/status (VmHWM, VmRSS) and stage 1's timeline marks from the kernel
log. PID 1 has by then scanned every image and built and drawn the menu;
nothing has been booted, so no kernel or initrd is in memory.

    bench/pid1mem.py [--counts 1,100,1000] [--skip-build] [--out FRAGMENT.md]

The images are full copies of one small fixed VHD (4 MiB: GPT, a 2 MiB FAT
ESP, one UKI with the first 256 KiB of the kernel and a one-file cpio as
initrd): stage 1 refuses sparse images, and 1000 copies of the 96 MiB test
VHD would be 96 GB. They are written onto the NTFS partition through
ntfs-3g and cached under target/bench/pid1mem/.
Prints figures; asserts none (it fails only when a boot fails).
"""

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, "target", "bench", "pid1mem")


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


driver = load("driver", os.path.join(REPO, "tests", "e2e", "driver.py"))
discovery = load("discovery", os.path.join(REPO, "bench", "discovery.py"))
TEMPLATE_MIB = 4


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def out(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def build_template(env, binary):
    template = os.path.join(WORK, "template.vhd")
    if os.path.exists(template) and os.path.getmtime(template) > os.path.getmtime(binary):
        return template
    with tempfile.TemporaryDirectory() as tmp:
        uki = discovery.small_uki(tmp, env["KVER"], env["VMLINUZ"])
        sh(os.path.join(REPO, "tests", "e2e", "make-vhd"), template + ".tmp", uki, "bench", binary,
           env=dict(os.environ, E2E_ESP_MIB="2", E2E_VHD_SIZE=f"{TEMPLATE_MIB}M"), stdout=sys.stderr)
    os.rename(template + ".tmp", template)
    return template


def build_disk(template, count):
    """A GPT disk with one NTFS partition holding `count` images under
    /Images; cached by count and the template's size and mtime."""
    st = os.stat(template)
    disk = os.path.join(WORK, f"disk-{count}-{st.st_size}-{int(st.st_mtime)}.img")
    if os.path.exists(disk):
        return disk
    for old in os.listdir(WORK):
        if old.startswith(f"disk-{count}-"):
            os.unlink(os.path.join(WORK, old))
    size_mib = 64 + count * (TEMPLATE_MIB + 1)
    tmp_disk = disk + ".tmp"
    sh("truncate", "-s", f"{size_mib + 2}M", tmp_disk)
    sh("sfdisk", "-q", tmp_disk, input=b"label: gpt\nstart=2048, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, "
       b"name=\"Bench NTFS\"\n")
    loop = out("losetup", "-f", "--show", "-o", str(2048 * 512), "--sizelimit", str(size_mib << 20), tmp_disk)
    mnt = tempfile.mkdtemp(prefix="pid1mem-")
    try:
        sh("mkntfs", "-q", "-Q", "-F", "-L", "BENCH-NTFS", "-p", "2048", "-H", "255", "-S", "63", loop)
        sh("ntfs-3g", loop, mnt)
        try:
            os.makedirs(os.path.join(mnt, "Images"))
            for i in range(count):
                sh("cp", "--sparse=never", template, os.path.join(mnt, "Images", f"img{i:04d}.vhd"))
        finally:
            sh("umount", mnt)
    finally:
        os.rmdir(mnt)
        sh("losetup", "-d", loop)
    os.rename(tmp_disk, disk)
    return disk


def measure(args, env, disk, count):
    vm = driver.Vm(args, f"pid1mem-{count}", env["VMLINUZ"], env["BOOT_INITRD"],
                   f"{driver.BASE_CMDLINE} vhdboot.default=/Images/img0000.vhd vhdboot.timeout=-1",
                   disk=disk)
    try:
        vm.wait_for(r"Bench Linux", args.timeout, "the menu to list the images", on_screen=True)
        menu_at = vm.elapsed()
        vm.settle()
        vm.send(b"s")
        vm.wait_for(re.escape(driver.RESCUE_PROMPT), 60, "the rescue shell")
        vm.send(b"grep -E '^Vm(HWM|RSS)' /proc/1/status | tr -s ' \\t' ' ' | sed 's/^/PID1MEM /'; "
                b"dmesg | grep -o 'vhdboot: t=.*' | sed 's/^/PID1MEM /'; "
                b"echo PID1MEM-IMAGES $(ls /run/vhdboot/hosts/*/Images | grep -c vhd); echo PID1MEM-DONE\r")
        vm.wait_for(r"PID1MEM-DONE\s", 60, "the shell's answer")
        text = vm.text()
    finally:
        vm.close()
    hwm = int(re.search(r"PID1MEM VmHWM: (\d+) kB", text).group(1))
    rss = int(re.search(r"PID1MEM VmRSS: (\d+) kB", text).group(1))
    files = int(re.search(r"PID1MEM-IMAGES (\d+)", text).group(1))
    marks = dict((m.group(2).strip(), float(m.group(1)))
                 for m in re.finditer(r"PID1MEM vhdboot: t=([0-9.]+) s ([^(\r\n]+)", text))
    scan = marks.get("disks settled", float("nan")) - marks.get("modules loaded", float("nan"))
    return {"count": count, "files": files, "hwm": hwm, "rss": rss, "scan": scan, "menu_at": menu_at}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default="1,100,1000")
    ap.add_argument("--skip-build", action="store_true", help="reuse tests/e2e/build's outputs")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--out", default=os.path.join(REPO, "target", "bench", "pid1mem.md"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/pid1mem: needs root (loop devices, mkntfs, ntfs-3g)")
    os.makedirs(WORK, exist_ok=True)
    if not a.skip_build:
        sh(os.path.join(REPO, "tests", "e2e", "build"), stdout=subprocess.DEVNULL)
    env = driver.load_build_env(REPO)
    binary = os.path.join(REPO, "target", "x86_64-unknown-linux-gnu", "release", "vhdboot")
    template = build_template(env, binary)
    args = argparse.Namespace(workdir=WORK, timeout=a.timeout)
    rows = []
    for count in [int(c) for c in a.counts.split(",")]:
        disk = build_disk(template, count)
        r = measure(args, env, disk, count)
        print(f"bench/pid1mem: {count} images: VmHWM {r['hwm']} KiB, scan {r['scan']:.2f} s", file=sys.stderr)
        rows.append(r)
    lines = ["### PID 1's memory (`bench/pid1mem.py`)", "",
             "The bootstrapper in QEMU (TCG, -smp 1) with one NTFS volume holding N images, "
             "`vhdboot.default=/Images/img0000.vhd vhdboot.timeout=-1` (discovery stops waiting for disks "
             "once the default is found; no countdown): once the menu shows, the rescue shell (a child of PID 1) reads "
             "/proc/1/status and stage 1's timeline from the kernel log. Nothing is booted, so this is "
             "discovery plus the menu, without a kernel or initrd in memory.", "",
             "| images | found by the shell | PID 1 peak RSS (VmHWM) | RSS at the menu | "
             "scan: modules loaded → disks settled | QEMU start → menu |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['count']} | {r['files']} | {r['hwm']} KiB ({r['hwm'] / 1024:.1f} MiB) | "
                     f"{r['rss']} KiB | {r['scan']:.2f} s | {r['menu_at']:.1f} s |")
    big = max(rows, key=lambda r: r["count"])
    lines += ["", f"Goal ≤ 16 MiB with 1000 images: PID 1 peaked at {big['hwm'] / 1024:.1f} MiB "
              f"with {big['count']}.", ""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
