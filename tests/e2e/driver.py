#!/usr/bin/env python3
"""Drives vhdboot's end-to-end scenarios in QEMU over the serial console.

Each scenario boots the bootstrapper (kernel + bootstrapper initramfs) over a
fresh qcow2 overlay of the host disk, reads the serial output, sends keys as
terminal escape sequences and asserts on the marker line the target's /init
prints (tests/e2e/target-init):

  VHDBOOT-TARGET-OK cmdline=<...> backing=<file> dio=<0|1> root=<dev> parts=<list>

Scenarios:
  direct   the NTFS image's UKI payload (.linux/.initrd/.cmdline) booted
           straight by QEMU, without vhdboot: proves the fixtures work
  default  the menu is drawn and the default (NTFS) image boots when the
           countdown ends; dio=1 and the root partition is on the loop device
  pick     Down + Enter picks the exFAT image
  edit     e, End, " e2e.edited=1", Enter: the target's cmdline has the word
  readonly the menu is shown, the user browses, opens the editor and
           cancels it, then p, y powers off: each host partition hashes
           the same before and after, and the whole disk compares equal
  silent   the driver answers no terminal queries, as a serial line
           with nothing attached; the default must still boot
  shutdown the target writes to its root and the host, then runs
           /run/initramfs/shutdown poweroff (systemd's initrd interface):
           root unmounted, loop detached, host unmounted; from the host,
           ntfs-3g's tools find the NTFS volume clean and the file there
  crash    the target crashes (sysrq c) with its image attached; the next
           start badges the NTFS host "needs check" and refuses it with
           the fix (chkdsk, delete vhdboot-in-use.txt); exFAT still boots
  faults   the fault disk: kexec refused, corrupt footer, dynamic VHD, no
           ESP, UKI without .linux, dirty NTFS and missing loop module
           (the last two need the preflight branch: XFAIL until then)
  empty    no NTFS/exFAT at all: the reason, the rescue shell by itself,
           then the empty menu when the shell exits
  panic    vhdboot.failpoint=panic-on-boot: the panic message, then a shell
  panic-locked the same with a password: the shell asks for it (a wrong
           one waits), exit brings the prompt back; PID 1 stays alive
  late     the host disk is hot-added through the QEMU monitor while
           stage 1 waits for its default; the default boots
  repair   o on exfat-zboot.vhd: its ext4 root read-only in the shell, a
           file read there, vhdboot report's sections; exit, another
           entry boots; the exFAT partition hashes the same afterwards
  repair-write  w refused on the fault disk's dirty host; w, y on
           exfat-zboot.vhd: chroot writes a file, which the host side
           finds in the image afterwards; another entry boots
  lock     editor=no: e says so; a password: s and e ask, a wrong one
           is refused with a wait, the right one opens the shell/editor
  shell-keys, kexec-refused, confirm-cancel, exec-fails: each hand-back
           (rescue shell, refused kexec, cancelled confirmation, failed
           reboot) returns a menu that takes keys: another entry boots
  ovmf     UEFI firmware (OVMF) boots vhdboot.efi from an ESP disk; the
           menu on the serial port; Down + Enter boots the exFAT image
  ovmf-vga the same with the menu on a VGA framebuffer: monitor
           screendumps show it drawn and the selection moving after Down
  keymap-de vhdboot.keymap=de, the menu on the VGA console: e, then PS/2
           keys (sendkey y, z, Shift+0, Shift+7, minus) type the German
           characters into the target's cmdline; a control boot with a
           layout that is not shipped types the US ones, and the serial
           menu's status line names that layout
  host-safety the safety disk: dirty exFAT, unclean NTFS journal, NTFS
           larger than its partition refused with their reasons; two
           volumes with one UUID badged, mounted apart, the second booted
           by PARTUUID; nothing else written
  hibernation the safety disk plus a disk with a hibernated hiberfil.sys:
           every internal host refused naming it; nothing written
  ovmf-efivars  one OVMF variable store across five boots (default=@saved):
           1 Down + Enter boots exFAT, and the target sees LoaderInfo,
           LoaderEntrySelected and LoaderFeatures; 2 exFAT is preselected
           and boots when the countdown ends, and its target sets a
           one-shot for the NTFS entry (LoaderEntryOneShot, as bootctl
           set-oneshot does); 3 NTFS boots at once, with no menu; 4 exFAT
           again, from @saved, and its target runs `vhdboot snap` for the
           EFI shell; 5 OVMF starts the shell (BootNext)
  ovmf-debian  OVMF boots vhdboot.efi over the real Debian disk; the
           initramfs-tools UKI boots with e2e.bootctl: `bootctl status` in
           the target names vhdboot (LoaderInfo), the entry id the menu
           showed (LoaderEntrySelected), the ESP partition and loader path;
           systemd-analyze shows a loader time

Usage: driver.py --kernel K --initrd I --disk D --uki NTFS_UKI
                 --fault-disk F --blank-disk B --workdir W [--scenario NAME ...]
Exits non-zero on the first failure, with the last 60 serial lines.
Python standard library only.
"""

import argparse
import codecs
import concurrent.futures
import contextlib
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback

MARKER = re.compile(
    r"VHDBOOT-TARGET-OK cmdline=(?P<cmdline>.*?) backing=(?P<backing>\S*) "
    r"dio=(?P<dio>\S*) root=(?P<root>\S*) parts=(?P<parts>\S*)"
)
# Cursor positioning becomes a line break so that TUI frames read as lines;
# every other escape sequence (colours, modes, OSC titles) is dropped.
CURSOR_MOVE = re.compile(r"\x1b\[[0-9;]*[Hf]")
ESCAPES = re.compile(
    r"\x1b\[[0-9;?<=>]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    r"|\x1b[()][0-9A-Za-z]"  # charset selection
    r"|\x1b[=>78cDEHM]"  # short escapes
)

KEYS = {
    "up": b"\x1b[A",
    "down": b"\x1b[B",
    "end": b"\x1b[F",
    "home": b"\x1b[H",
    "enter": b"\r",
    "esc": b"\x1b",
    "ctrl-e": b"\x05",
    "pgdn": b"\x1b[6~",
}

DSR_QUERY = b"\x1b[6n"
DSR_REPLY = b"\x1b[1;1R"

NTFS_TITLE = "E2E NTFS Linux"
EXFAT_TITLE = "E2E exFAT Linux"
NTFS_PATH = "/Images/ntfs-linux.vhd"
EXFAT_PATH = "/Images/exfat-linux.vhd"
# The image with its kernel in /boot on ext4 (tests/e2e/make-boot-dir-vhd).
BOOT_DIR_TITLE = "E2E Boot Dir Linux"
BOOT_DIR_PATH = "/Images/exfat-zboot.vhd"
# The bootstrapper's own command line; vhdboot.* settings are added per scenario.
# init_on_alloc=0 and preempt=full are the bootstrapper's own settings
# (kconfig/vhdboot.config's built-in line; issue 17, bench/bootpath.py
# --variant): no zeroing of the pages kexec_file_load and the memfds
# allocate, and a menu that takes keys while a preload's kexec_file_load runs.
BASE_CMDLINE = "console=ttyS0 quiet loglevel=3 init_on_alloc=0 preempt=full"


def load_build_env(repo: str) -> dict:
    """The variables tests/e2e/build writes to target/e2e/env (KVER,
    VMLINUZ, BOOT_INITRD, DISK, ...)."""
    env = {}
    with open(os.path.join(repo, "target", "e2e", "env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            env[k] = v
    return env


def strip_ansi(raw: str) -> str:
    text = CURSOR_MOVE.sub("\n", raw)
    text = ESCAPES.sub("", text)
    return text.replace("\r", "")


class Screen:
    """A minimal VT100 screen: enough of cursor addressing and erasing to
    rebuild what a TUI drew. ratatui redraws only changed cells and skips
    unstyled spaces with a cursor move, so menu text is only readable on the
    rendered grid, not in the byte stream. The grid is larger than any size
    the menu picks on a serial console (80x24 unless told otherwise)."""

    CSI = re.compile(r"\x1b\[([0-9;?<=>]*)[ -/]*([@-~])")
    OTHER_ESC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78cDEHM]")

    def __init__(self, columns=200, lines=60):
        self.columns, self.lines = columns, lines
        self.grid = [[" "] * columns for _ in range(lines)]
        self.row = self.col = 0
        # Rows scrolled off or wiped by a clear, as a terminal's scrollback.
        self.history: list = []
        self.pending = ""

    def _newline(self):
        self.row += 1
        if self.row >= self.lines:
            self.history.append("".join(self.grid.pop(0)).rstrip())
            self.grid.append([" "] * self.columns)
            self.row = self.lines - 1

    def _csi(self, params: str, final: str):
        nums = [int(p) if p.isdigit() else 0 for p in params.lstrip("?").split(";")] if params else []
        n = (nums[0] if nums else 0) or 1
        if final in "Hf":
            r = (nums[0] if len(nums) > 0 else 1) or 1
            c = (nums[1] if len(nums) > 1 else 1) or 1
            self.row, self.col = min(r - 1, self.lines - 1), min(c - 1, self.columns - 1)
        elif final == "A":
            self.row = max(0, self.row - n)
        elif final == "B":
            self.row = min(self.lines - 1, self.row + n)
        elif final == "C":
            self.col = min(self.columns - 1, self.col + n)
        elif final == "D":
            self.col = max(0, self.col - n)
        elif final == "G":
            self.col = min(self.columns - 1, n - 1)
        elif final == "J":
            mode = nums[0] if nums else 0
            if mode in (2, 3):
                self.history += self.text().rstrip("\n").split("\n")
            rows = range(self.lines) if mode in (2, 3) else (
                range(self.row + 1, self.lines) if mode == 0 else range(0, self.row))
            for r in rows:
                self.grid[r] = [" "] * self.columns
            if mode == 0:
                self.grid[self.row][self.col:] = [" "] * (self.columns - self.col)
        elif final == "K":
            mode = nums[0] if nums else 0
            line = self.grid[self.row]
            if mode == 0:
                line[self.col:] = [" "] * (self.columns - self.col)
            elif mode == 1:
                line[: self.col + 1] = [" "] * (self.col + 1)
            else:
                self.grid[self.row] = [" "] * self.columns

    def feed(self, text: str):
        """Applies output; an escape sequence cut off at the end of `text`
        is kept and completed by the next call."""
        text = self.pending + text
        self.pending = ""
        pos = 0
        while pos < len(text):
            ch = text[pos]
            if ch == "\x1b":
                m = self.CSI.match(text, pos)
                if m:
                    self._csi(m.group(1), m.group(2))
                    pos = m.end()
                    continue
                m = self.OTHER_ESC.match(text, pos)
                if not m and len(text) - pos < 64:
                    self.pending = text[pos:]
                    return
                pos = m.end() if m else pos + 1
                continue
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self._newline()
            elif ch == "\b":
                self.col = max(0, self.col - 1)
            elif ch >= " ":
                if self.col >= self.columns:
                    self.col = 0
                    self._newline()
                self.grid[self.row][self.col] = ch
                self.col += 1
            pos += 1

    def text(self) -> str:
        return "\n".join("".join(line).rstrip() for line in self.grid)


class Failure(Exception):
    pass


class Vm:
    """One QEMU run with its serial console on pipes."""

    def __init__(self, args, name, kernel, initrd, append, disk=None, answer_dsr=True,
                 monitor=False, overlay=True, sector_size=512, extra_disks=(),
                 firmware=None, vga=False, overlay_of=None, allow_reboot=False,
                 usb_removable=False):
        self.name = name
        self.monitor_path = os.path.join(args.workdir, f"{name}.monitor") if monitor else None
        self.answer_dsr = answer_dsr
        self.log_path = os.path.join(args.workdir, f"{name}.serial.log")
        cmd = [
            "qemu-system-x86_64",
            # KVM cannot run a stock kernel on these machines, and -smp 2 hit
            # an early int3 Oops under TCG (shared/lessons.md).
            "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "1024",
            # With vga, the screen is a framebuffer nobody sees but the
            # monitor's screendump; the serial port still goes to the driver.
            *(["-display", "none", "-vga", "std"] if vga else ["-nographic"]),
            # A guest reboot ends QEMU, unless the scenario follows it back
            # into the bootstrapper (QEMU then starts -kernel again).
            *([] if allow_reboot else ["-no-reboot"]), "-nic", "none",
            "-serial", "stdio",
            "-monitor", f"unix:{self.monitor_path},server=on,wait=off" if monitor else "none",
        ]
        # Under firmware (an Ovmf), the ESP disk comes first and the UKI on
        # it carries the bootstrapper's command line; kernel, initrd and
        # append are not used.
        cmd += firmware.qemu_args() if firmware else [
            "-kernel", kernel, "-initrd", initrd, "-append", append]
        if disk and not overlay:
            # The disk benchmark writes to its own disk: a qcow2 overlay
            # would add cluster allocation to every first write.
            cmd += ["-drive", f"file={os.path.abspath(disk)},if=virtio,format=raw"]
        elif disk:
            # overlay_of names an earlier run whose disk state this run
            # continues (a boot after a boot).
            overlay = os.path.join(args.workdir, f"{overlay_of or name}.overlay.qcow2")
            if not overlay_of:
                if os.path.exists(overlay):
                    os.unlink(overlay)
                # The overlay keeps the generated host disk pristine across runs.
                subprocess.run(
                    ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                     "-b", os.path.abspath(disk), overlay],
                    check=True,
                )
            if usb_removable:
                # A USB stick: usb-storage on an xHCI controller, whose
                # disk the guest's sysfs marks removable (issue 13).
                cmd += ["-device", "qemu-xhci,id=xhci",
                        "-drive", f"file={overlay},if=none,id=host,format=qcow2",
                        "-device", "usb-storage,bus=xhci.0,drive=host,removable=on"]
            elif sector_size == 512:
                cmd += ["-drive", f"file={overlay},if=virtio,format=qcow2"]
            else:
                # A 4Kn disk: the guest sees 4096-byte logical sectors.
                cmd += ["-drive", f"file={overlay},if=none,id=host,format=qcow2",
                        "-device", f"virtio-blk-pci,drive=host,logical_block_size={sector_size},"
                        f"physical_block_size={sector_size}"]
        for i, extra in enumerate(extra_disks):
            # Further disks get overlays of their own, so they stay pristine too.
            ov = os.path.join(args.workdir, f"{name}.extra{i}.qcow2")
            if os.path.exists(ov):
                os.unlink(ov)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                            "-b", os.path.abspath(extra), ov], check=True)
            cmd += ["-drive", f"file={ov},if=virtio,format=qcow2"]
        self.started = time.monotonic()
        # One overall limit per scenario, shared by all its waits.
        self.deadline = self.started + args.timeout
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.raw = bytearray()
        self.term = Screen()
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.lock = threading.Condition()
        self.write_lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        assert self.proc.stdout is not None
        scanned = 0
        # The serial log grows as the output arrives, so a slow boot (the
        # Debian target) can be watched while it runs; close() rewrites it.
        live = open(self.log_path, "wb")
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            with self.lock:
                if not chunk:
                    live.close()
                    self.lock.notify_all()
                    return
                live.write(chunk)
                live.flush()
                self.raw += chunk
                self.term.feed(self.decoder.decode(chunk))
                # Act as the terminal: crossterm asks for the cursor position
                # (DSR, ESC [ 6 n) when the TUI starts and fails if nothing
                # answers within two seconds. Reply "row 1, column 1".
                while self.answer_dsr and (i := self.raw.find(DSR_QUERY, scanned)) >= 0:
                    scanned = i + len(DSR_QUERY)
                    self.send(DSR_REPLY)
                scanned = max(scanned, len(self.raw) - len(DSR_QUERY) + 1)
                self.lock.notify_all()

    def text(self) -> str:
        """The whole output with escape sequences removed: for lines printed
        by the kernel and by the target (the marker)."""
        with self.lock:
            return strip_ansi(self.raw.decode("utf-8", "replace"))

    def screen(self) -> str:
        """What a terminal would show now: for the menu."""
        with self.lock:
            return self.term.text()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def wait_for(self, pattern, timeout, what, on_screen=False):
        """Waits until the ANSI-stripped output (or, with on_screen, the
        rendered screen) matches pattern, a regex string or a callable over
        the text; returns the match."""
        deadline = min(time.monotonic() + timeout, self.deadline)
        while True:
            text = self.screen() if on_screen else self.text()
            m = pattern(text) if callable(pattern) else re.search(pattern, text)
            if m:
                return m
            if self.proc.poll() is not None:
                raise Failure(f"QEMU exited (status {self.proc.returncode}) before {what}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f"timed out at {self.elapsed():.0f} s waiting for {what}")
            with self.lock:
                self.lock.wait(min(left, 0.5))

    def settle(self, quiet=0.7, limit=10.0):
        """Waits until the screen has not changed for `quiet` seconds, so that
        a key lands after the redraw caused by the previous one. The menu
        redraws several times a second even when nothing changed (cursor and
        colour resets), so the rendered screen is compared, not the bytes."""
        deadline = time.monotonic() + limit
        last = self.screen()
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.screen()
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet:
                return

    def send(self, data: bytes):
        assert self.proc.stdin is not None
        # The reader thread answers terminal queries, so writes are serialised.
        with self.write_lock:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass  # QEMU has exited; wait_for reports that with context.

    def key(self, name: str):
        self.send(KEYS[name])

    def monitor(self, command: str) -> str:
        """Sends one command to the QEMU monitor and returns its reply."""
        import socket
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(self.monitor_path)
            sock.settimeout(10)
            reply = b""
            # The monitor greets with a banner and a "(qemu) " prompt.
            while not reply.endswith(b"(qemu) "):
                reply += sock.recv(4096)
            sock.sendall(command.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"(qemu) "):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return strip_ansi(reply.decode("utf-8", "replace"))

    def wait_exit(self, timeout: float, what: str):
        self.wait_for(lambda t: self.proc.poll() is not None, timeout, what)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=5)
        with open(self.log_path, "wb") as f:
            f.write(self.raw)



class Ovmf:
    """UEFI firmware (Debian's ovmf package) and an ESP disk, for the
    scenarios that start vhdboot.efi the way a PC does. The variable store
    is a private copy per scenario, kept across the boots of that scenario
    (each Vm built with this object), as NVRAM is on a real machine."""

    CODE = "/usr/share/OVMF/OVMF_CODE.fd"
    VARS = "/usr/share/OVMF/OVMF_VARS.fd"

    def __init__(self, args, name, esp):
        for path in (self.CODE, self.VARS):
            check(os.path.exists(path), f"{path} is missing: install the ovmf package (tests/install-deps)")
        check(esp is not None and os.path.exists(esp),
              f"the ESP disk {esp!r} is missing: run tests/e2e/build")
        self.esp = os.path.abspath(esp)
        self.vars = os.path.join(args.workdir, f"{name}.OVMF_VARS.fd")
        shutil.copyfile(self.VARS, self.vars)

    def qemu_args(self):
        return [
            "-drive", f"if=pflash,format=raw,readonly=on,file={self.CODE}",
            "-drive", f"if=pflash,format=raw,file={os.path.abspath(self.vars)}",
            # snapshot=on: whatever the firmware or the guest writes to the
            # ESP is dropped, so the built image serves every scenario.
            "-drive", f"file={self.esp},if=virtio,format=raw,snapshot=on",
        ]


def build_env_value(name: str):
    """A path from target/e2e/env, for fixtures the driver's arguments do
    not name (the ESP disks); None when the file or the name is missing."""
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    try:
        return load_build_env(repo).get(name)
    except OSError:
        return None


def last_lines(log: str, n: int) -> str:
    with open(log, "rb") as f:
        raw = f.read().decode("utf-8", "replace")
    screen = Screen()
    screen.feed(raw)
    lines = screen.history + screen.text().rstrip("\n").split("\n")
    lines = [line for line in lines if line.strip()]
    return "\n".join(lines[-n:])


def marker(vm: Vm, timeout: float):
    return vm.wait_for(MARKER, timeout, "the target's VHDBOOT-TARGET-OK marker")


def check(cond: bool, message: str):
    if not cond:
        raise Failure(message)


def check_booted_image(m, path: str, uki_word: str):
    check(uki_word in m["cmdline"].split(),
          f"target cmdline lacks {uki_word!r} (the image's own .cmdline): {m['cmdline']!r}")
    check(m["backing"].endswith(path),
          f"loop backing file {m['backing']!r} is not {path!r} on the host")
    check(m["dio"] == "1", f"loop direct I/O is {m['dio']!r}, expected 1")
    check(re.fullmatch(r"/dev/loop\d+p2", m["root"]) is not None,
          f"root {m['root']!r} is not partition 2 (GPT name 'root') of a loop device")


def uki_section(uki: str, section: str, out: str) -> str:
    subprocess.run(
        ["objcopy", "-O", "binary", f"--only-section={section}", uki, out],
        check=True,
    )
    return out


def scenario_direct(args, timings):
    linux = uki_section(args.uki, ".linux", os.path.join(args.workdir, "direct.linux"))
    initrd = uki_section(args.uki, ".initrd", os.path.join(args.workdir, "direct.initrd"))
    with open(uki_section(args.uki, ".cmdline", os.path.join(args.workdir, "direct.cmdline"))) as f:
        cmdline = f.read().strip("\0 \n")
    vm = Vm(args, "direct", linux, initrd, cmdline)
    try:
        m = marker(vm, args.timeout)
        timings["to marker"] = vm.elapsed()
        check(m["cmdline"] == cmdline, f"cmdline {m['cmdline']!r} != UKI .cmdline {cmdline!r}")
        check(m["backing"] == "", "a loop device is attached without vhdboot")
        vm.wait_for(lambda t: vm.proc.poll() is not None, 30, "the target to power off")
    finally:
        vm.close()
    return vm


def boot_menu(args, name, settings, answer_dsr=True):
    append = f"{BASE_CMDLINE} {settings}"
    return Vm(args, name, args.kernel, args.initrd, append, disk=args.disk, answer_dsr=answer_dsr)


def wait_menu(vm, args, timings, titles):
    for title in titles:
        vm.wait_for(re.escape(title), args.timeout, f"the menu to show {title!r}", on_screen=True)
    timings["start to menu"] = vm.elapsed()


def down_enter_boots_exfat(vm, args):
    """From the NTFS default, Down + Enter must boot the exFAT image: the
    proof, after a hand-back, that the menu takes keys again."""
    vm.settle()
    vm.key("down")
    vm.settle()
    vm.key("enter")
    m = marker(vm, args.timeout)
    check_booted_image(m, EXFAT_PATH, "e2e.uki=exfat")


def scenario_default(args, timings):
    vm = boot_menu(args, "default", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=3")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE])
        # SeaBIOS's "Booting from ROM..." is cleared before the menu, but be sure.
        vm.wait_for(r"(?i)booting (?!from ROM)", args.timeout, "the countdown line 'Booting ... in N s'",
                    on_screen=True)
        t_menu = vm.elapsed()
        m = marker(vm, args.timeout)
        timings["menu to marker"] = vm.elapsed() - t_menu
        check_booted_image(m, NTFS_PATH, "e2e.uki=ntfs")
    finally:
        vm.close()
    return vm


def scenario_4kn(args, timings):
    # A host disk with 4096-byte logical sectors (tests/e2e/make-host-disk
    # E2E_HOST_SECTOR_SIZE=4096). The VHD inside keeps 512-byte sectors, as
    # the format requires, so stage 2 must give the loop device 512-byte
    # blocks or the kernel finds no partition table in it. Direct I/O is then
    # impossible (the loop's blocks are smaller than the disk's), and stage 2
    # must say so.
    append = f"{BASE_CMDLINE} vhdboot.default={NTFS_PATH} vhdboot.timeout=0"
    vm = Vm(args, "4kn", args.kernel, args.initrd, append, disk=args.disk_4kn, sector_size=4096)
    try:
        m = marker(vm, args.timeout)
        timings["to marker"] = vm.elapsed()
        check(m["backing"].endswith(NTFS_PATH), f"loop backing file {m['backing']!r} is not {NTFS_PATH!r}")
        check(re.fullmatch(r"/dev/loop\d+p2", m["root"]) is not None,
              f"root {m['root']!r} is not partition 2 of the loop device: the kernel found no "
              f"partitions in the VHD (partitions: {m['parts']!r})")
        check(m["dio"] == "0", f"loop direct I/O is {m['dio']!r} with 512-byte blocks over a 4Kn disk")
        vm.wait_for(r"direct I/O OFF[^\n]*4096", 5, "stage 2's line saying why direct I/O is off")
    finally:
        vm.close()
    return vm


def scenario_pick(args, timings):
    # No countdown (-1): while one runs, the first key only stops it.
    vm = boot_menu(args, "pick", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, EXFAT_TITLE])
        vm.settle()
        # The default (NTFS, on the first volume) is selected; exFAT is next.
        vm.key("down")
        vm.settle()
        vm.key("enter")
        t_enter = vm.elapsed()
        timings["keys"] = t_enter - timings["start to menu"]
        m = marker(vm, args.timeout)
        timings["enter to marker"] = vm.elapsed() - t_enter
        check_booted_image(m, EXFAT_PATH, "e2e.uki=exfat")
    finally:
        vm.close()
    return vm


def scenario_edit(args, timings):
    vm = boot_menu(args, "edit", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE])
        vm.settle()
        vm.send(b"e")
        vm.settle()
        vm.key("end")
        vm.send(b" e2e.edited=1")
        vm.settle()
        vm.key("enter")
        t_enter = vm.elapsed()
        timings["keys"] = t_enter - timings["start to menu"]
        m = marker(vm, args.timeout)
        timings["enter to marker"] = vm.elapsed() - t_enter
        check("e2e.edited=1" in m["cmdline"].split(),
              f"the edited word is not in the target's cmdline: {m['cmdline']!r}")
        check_booted_image(m, NTFS_PATH, "e2e.uki=ntfs")
    finally:
        vm.close()
    return vm


def scenario_boot_dir(args, timings):
    # An image with no ESP and no UKI (tests/e2e/make-boot-dir-vhd): its
    # kernel and initramfs are in /boot on an ext4 root, found by name and
    # titled from its os-release; the command line is its
    # /etc/kernel/cmdline. It is the menu's last row, two Downs from NTFS.
    vm = boot_menu(args, "boot-dir", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, BOOT_DIR_TITLE])
        vm.settle()
        for _ in range(2):
            vm.key("down")
            vm.settle(quiet=0.5)
        vm.key("enter")
        t_enter = vm.elapsed()
        m = marker(vm, args.timeout)
        timings["enter to marker"] = vm.elapsed() - t_enter
        check("e2e.uki=bootdir" in m["cmdline"].split(),
              f"target cmdline lacks the image's /etc/kernel/cmdline: {m['cmdline']!r}")
        check(m["backing"].endswith(BOOT_DIR_PATH),
              f"loop backing file {m['backing']!r} is not {BOOT_DIR_PATH!r} on the host")
        check(m["dio"] == "1", f"loop direct I/O is {m['dio']!r}, expected 1")
        check(re.fullmatch(r"/dev/loop\d+p1", m["root"]) is not None,
              f"root {m['root']!r} is not partition 1 (the ext4 root) of a loop device")
    finally:
        vm.close()
    return vm


def scenario_carry(args, timings):
    # Zero-config modules (issue 12, item 3): the target's initramfs has
    # neither loop nor ntfs3, and the image's ext4 root has both in
    # /lib/modules/<kver> (tests/e2e/build, carry-disk.img). Stage 1 carries
    # them in the stage-2 archive; stage 2 loads them first and names them.
    disk = args.carry_disk or build_env_value("CARRY_DISK")
    check(disk is not None and os.path.exists(disk),
          f"no carry disk ({disk!r}): run tests/e2e/build")
    append = f"{BASE_CMDLINE} vhdboot.default={NTFS_PATH} vhdboot.timeout=0"
    vm = Vm(args, "carry", args.kernel, args.initrd, append, disk=disk)
    try:
        m = marker(vm, args.timeout)
        timings["to marker"] = vm.elapsed()
        check("e2e.uki=carry" in m["cmdline"].split(),
              f"target cmdline lacks the carry image's /etc/kernel/cmdline: {m['cmdline']!r}")
        check(m["backing"].endswith(NTFS_PATH),
              f"loop backing file {m['backing']!r} is not {NTFS_PATH!r} on the host")
        check(m["dio"] == "1", f"loop direct I/O is {m['dio']!r}, expected 1")
        check(re.fullmatch(r"/dev/loop\d+p1", m["root"]) is not None,
              f"root {m['root']!r} is not partition 1 (the ext4 root) of a loop device")
        vm.wait_for(r"carried modules loop, ntfs3 from " + re.escape(NTFS_PATH)
                    + r"[^\n]*partition 1 /lib/modules/[^\s:]+: loaded", 5,
                    "stage 2's line naming the carried modules and where they came from")
    finally:
        vm.close()
    return vm


# The btrfs and xfs roots (tests/e2e/build, ROOTFS_DISK): the target's
# kernel and initramfs in /boot, titled from each root's os-release.
BTRFS_TITLE = "E2E Btrfs Linux"
XFS_TITLE = "E2E XFS Linux"


def host_file_sha256(raw: str, index: int, path: str) -> str:
    """sha256 of the file `path` on the host disk's NTFS (index 0, read
    with ntfscat) or exFAT (index 1, a read-only exfat-fuse mount)
    partition, read from read-only loop devices."""
    import hashlib
    import tempfile
    _, offset, size = partitions(raw)[index]
    loop = subprocess.run(["losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit", str(size), raw],
                          check=True, capture_output=True, text=True).stdout.strip()
    mnt = tempfile.mkdtemp(prefix="e2e-exfat-")
    try:
        if index == 0:
            data = subprocess.run(["ntfscat", "-f", loop, path], check=True, capture_output=True).stdout
            return hashlib.sha256(data).hexdigest()
        subprocess.run(["mount.exfat-fuse", "-o", "ro", loop, mnt], check=True, capture_output=True)
        try:
            return sha256_range(os.path.join(mnt, path.lstrip("/")), 0, 1 << 40)
        finally:
            subprocess.run(["umount", mnt], check=False)
    finally:
        os.rmdir(mnt)
        subprocess.run(["losetup", "-d", loop], check=False)


def kernel_fs_root(args, timings, name, title, downs, path, index, word):
    """Boots the image whose root is btrfs or xfs (issue 12, item 2): stage
    1 lists its /boot kernel with the root's os-release title through a
    read-only, no-log-replay mount, reads the kernel and initrd through one
    at Enter, and the target reaches its marker. The VHD's bytes are the
    same before and after (its file on the host, hashed on both disks)."""
    disk = build_env_value("ROOTFS_DISK")
    check(disk is not None and os.path.exists(disk),
          f"no btrfs/xfs root disk ({disk!r}): run tests/e2e/build")
    before = host_file_sha256(disk, index, path)
    # The probe child that first mounts a btrfs or xfs root also loads the
    # driver, and under TCG the kernel's xz decompression of xfs.ko.xz
    # alone took ~2.5 s of the default probe_time of 5 s (measured from the
    # menu's log). The shipped bootstrapper builds both drivers in
    # (kconfig/vhdboot.config); this kernel has them as modules, so the
    # limit is raised here rather than made a race with the machine's load.
    append = f"{BASE_CMDLINE} vhdboot.default={NTFS_PATH} vhdboot.timeout=-1 vhdboot.probe_time=20s"
    vm = Vm(args, name, args.kernel, args.initrd, append, disk=disk)
    try:
        wait_menu(vm, args, timings, [title])
        vm.settle()
        for _ in range(downs):
            vm.key("down")
            vm.settle(quiet=0.5)
        vm.key("enter")
        t_enter = vm.elapsed()
        m = marker(vm, args.timeout)
        timings["enter to marker"] = vm.elapsed() - t_enter
        check(f"e2e.uki={word}" in m["cmdline"].split(),
              f"target cmdline lacks the {word} root's /etc/kernel/cmdline: {m['cmdline']!r}")
        check(m["backing"].endswith(path),
              f"loop backing file {m['backing']!r} is not {path!r} on the host")
        check(re.fullmatch(r"/dev/loop\d+p1", m["root"]) is not None,
              f"root {m['root']!r} is not partition 1 (the {word} root) of a loop device")
        vm.wait_exit(60, "QEMU to exit after the target powered off")
    finally:
        vm.close()
    raw = overlay_to_raw(args, name)
    try:
        after = host_file_sha256(raw, index, path)
    finally:
        os.unlink(raw)
    print(f"e2e:   {name}: {path} sha256 before {before} after {after}", flush=True)
    check(before == after, f"booting from the {word} root changed {path}")
    return vm


def scenario_btrfs_root(args, timings):
    # The NTFS image, the menu's first row and the default.
    return kernel_fs_root(args, timings, "btrfs-root", BTRFS_TITLE, 0, NTFS_PATH, 0, "btrfs")


def scenario_xfs_root(args, timings):
    # /Images/exfat-zboot.vhd, the menu's last row, two Downs from NTFS.
    return kernel_fs_root(args, timings, "xfs-root", XFS_TITLE, 2, BOOT_DIR_PATH, 1, "xfs")


def self_test():
    """Checks the driver's own parsing on known input, so that a harness bug
    cannot pass as a product bug (or hide one)."""
    # ratatui writes "E2E NTFS Linux" on an unstyled row as three runs with
    # cursor moves over the unchanged spaces.
    screen = Screen(columns=40, lines=5)
    screen.feed("\x1b[2J\x1b[2;3HE2E\x1b[2;7HNTFS\x1b[2;12H\x1b[1mLinux\x1b[0m\r\n\x1b[K")
    assert screen.text().split("\n")[1] == "  E2E NTFS Linux", screen.text()
    assert strip_ansi("a\x1b[31mb\x1b]0;t\x07c") == "abc"
    split = Screen(columns=20, lines=3)
    split.feed("\x1b[2;")
    split.feed("5Hok")
    assert split.text().split("\n")[1] == "    ok", split.text()
    line = ("VHDBOOT-TARGET-OK cmdline=console=ttyS0 quiet e2e.uki=ntfs rdinit=/vhdboot/stage2 "
            "backing=/run/h/Images/ntfs-linux.vhd dio=1 root=/dev/loop0p2 parts=loop0p1,loop0p2")
    m = MARKER.search(line)
    assert m and m["cmdline"].endswith("rdinit=/vhdboot/stage2") and m["dio"] == "1", m
    check_booted_image(m, NTFS_PATH, "e2e.uki=ntfs")
    try:
        check_booted_image(m, EXFAT_PATH, "e2e.uki=ntfs")
    except Failure:
        pass
    else:
        raise AssertionError("the wrong backing file was accepted")
    debian = DEBIAN_MARKER.search(
        "VHDBOOT-DEBIAN-OK root=/dev/loop0p2 dio=1 backing=/run/vhdboot/host/Images/debian.vhd "
        "state=running multi-user=active token=t-1 uptime=61.25 cmdline=root=UUID=x rw e2e.entry=debian-bls\r\n")
    assert debian, "DEBIAN_MARKER does not parse the unit's line"
    check_debian_marker(debian, DEBIAN_PATH, "debian-bls", "t-1", 2)
    assert debian["cmdline"] == "root=UUID=x rw e2e.entry=debian-bls", debian["cmdline"]
    assert DEBIAN_MARKER.search(
        "VHDBOOT-DEBIAN-OK root=/dev/loop0p2 dio=1 backing=/run/vhdboot/host/Images/debian.vhd "
        "state=running multi-user=active token=t-1 uptime=61.25 cmdline=root=UUID=x r") is None, \
        "DEBIAN_MARKER matches a line that has not ended yet"
    marks = timeline_marks("vhdboot: timeline: 2.5 PID 1 start | 3.0 menu start +0.5 | 9.1 reboot +6.1\n", "PID 1 start")
    assert marks == [(2.5, "PID 1 start"), (3.0, "menu start"), (9.1, "reboot")], marks
    empty = MARKER.search("VHDBOOT-TARGET-OK cmdline=quiet backing= dio= root= parts=")
    assert empty and empty["backing"] == "" and empty["cmdline"] == "quiet", empty
    # A 500x40 frame: a 10-row blue title bar, a 1-row grey border (not a
    # bar), and a 9-row grey selection bar with a black glyph in it.
    import tempfile
    w, h = 500, 40
    rows = [Screendump.TITLE_BLUE * w] * 10 + [bytes(3 * w)] * 5 + [Screendump.SELECTION_GREY * w]
    rows += [bytes(3 * w)] * 4 + [Screendump.SELECTION_GREY * 120 + bytes(3) + Screendump.SELECTION_GREY * (w - 121)] * 9
    rows += [bytes(3 * w)] * (h - len(rows))
    with tempfile.NamedTemporaryFile(suffix=".ppm") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h) + b"".join(rows))
        f.flush()
        dump = Screendump(f.name)
    assert dump.title_bar() == (0, 9), dump.title_bar()
    assert dump.selection_bar() == (20, 28), dump.selection_bar()
    assert dump.lit_pixels() == 10 * w + w + 9 * (w - 1), dump.lit_pixels()


def scenario_readonly(args, timings):
    """Stage 1 scans both host volumes, the user browses, opens the
    command-line editor and cancels it, then powers off from the menu: the
    host disk must be bit-for-bit unchanged (design.md, data-safety
    invariant 1: stage 1 never writes to user disks). Each partition is
    hashed (sha256) before and after, and qemu-img compares the whole disk."""
    disk = os.path.abspath(args.disk)
    parts = partitions(disk)
    before = {name: sha256_range(disk, off, size) for name, off, size in parts}
    vm = boot_menu(args, "readonly", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, EXFAT_TITLE])
        vm.settle()
        for key in ["down", "down", "up"]:
            vm.key(key)
            vm.settle(quiet=0.5)
        vm.send(b"e")
        vm.wait_for(r"\(this boot only\)", 20, "the command-line editor", on_screen=True)
        vm.send(b" e2e.never=1")
        vm.settle()
        vm.key("esc")
        vm.settle()
        check("(this boot only)" not in vm.screen(), "Esc did not close the command-line editor")
        vm.send(b"p")
        vm.settle()
        vm.send(b"y")
        vm.wait_exit(60, "QEMU to exit after p, y (power off)")
        timings["to power off"] = vm.elapsed()
    finally:
        vm.close()
    check(MARKER.search(vm.text()) is None, "a target booted: Esc in the editor did not cancel")
    raw = overlay_to_raw(args, "readonly")
    try:
        after = {name: sha256_range(raw, off, size) for name, off, size in parts}
    finally:
        os.unlink(raw)
    for name, _, _ in parts:
        print(f"e2e:   readonly: partition {name!r} sha256 before {before[name]} after {after[name]}",
              flush=True)
        check(before[name] == after[name], f"stage 1 changed partition {name!r}")
    overlay = os.path.join(args.workdir, "readonly.overlay.qcow2")
    cmp = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", "raw", overlay, disk],
        capture_output=True, text=True,
    )
    check(cmp.returncode == 0,
          f"stage 1 changed the host disk (qemu-img compare: {cmp.stdout.strip()} {cmp.stderr.strip()})")
    return vm


def scenario_silent(args, timings):
    """A serial console with nothing attached answers no terminal queries;
    the default must still boot by itself (a headless machine)."""
    vm = boot_menu(args, "silent", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=3",
                   answer_dsr=False)
    try:
        m = marker(vm, args.timeout)
        timings["to marker"] = vm.elapsed()
        check_booted_image(m, NTFS_PATH, "e2e.uki=ntfs")
    finally:
        vm.close()
    return vm


# Checks that need the pre-flight branch (dirty badge, initramfs module
# check). While False, their absence is reported as XFAIL and does not fail
# the run; once the branch is on main, set it to True and they must pass.
PREFLIGHT_ON_MAIN = True
RESCUE_PROMPT = "(vhdboot rescue)"


def partitions(disk: str):
    """(name, offset, size) of each GPT partition of a raw disk, in bytes."""
    import json
    out = subprocess.run(["sfdisk", "-J", disk], check=True, capture_output=True, text=True).stdout
    table = json.loads(out)["partitiontable"]
    sector = table.get("sectorsize", 512)
    return [(p.get("name", p["node"]), p["start"] * sector, p["size"] * sector)
            for p in table["partitions"]]


def sha256_range(path: str, offset: int, size: int) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        left = size
        while left > 0:
            chunk = f.read(min(left, 4 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def overlay_to_raw(args, name: str) -> str:
    """The disk as the VM left it, as a sparse raw file."""
    overlay = os.path.join(args.workdir, f"{name}.overlay.qcow2")
    raw = os.path.join(args.workdir, f"{name}.after.raw")
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", overlay, raw], check=True)
    return raw


def ntfs_state(raw: str, offset: int, size: int):
    """(flags, ntfsinfo_opens, host_file) of the NTFS volume at offset: the
    $Volume flags as ntfsinfo -f reports them, whether plain ntfsinfo (which
    refuses a volume scheduled for check) opens it, and the content of the
    file the target wrote beside the image (None when it is not there)."""
    loop = subprocess.run(["losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit", str(size), raw],
                          check=True, capture_output=True, text=True).stdout.strip()
    try:
        opens = subprocess.run(["ntfsinfo", "-m", loop], capture_output=True).returncode == 0
        forced = subprocess.run(["ntfsinfo", "-f", "-m", loop], capture_output=True, text=True).stdout
        cat = subprocess.run(["ntfscat", "-f", loop, "/written-by-target.txt"],
                             capture_output=True, text=True)
        host_file = cat.stdout if cat.returncode == 0 else None
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
    m = re.search(r"Volume Flags: (0x[0-9a-fA-F]+)", forced)
    check(m is not None, f"ntfsinfo -f -m printed no 'Volume Flags' for the NTFS partition: {forced[-300:]!r}")
    return int(m[1], 16), opens, host_file


def boot_with_shutdown_mode(args, timings, name, mode):
    """Boots the NTFS image with e2e.shutdown=MODE added through the editor;
    the target writes 2 MiB to its root, then shuts down that way."""
    vm = boot_menu(args, name, f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE])
        vm.settle()
        vm.send(b"e")
        vm.settle()
        vm.key("end")
        vm.send(f" e2e.shutdown={mode}".encode())
        vm.settle()
        vm.key("enter")
        m = marker(vm, args.timeout)
        check_booted_image(m, NTFS_PATH, "e2e.uki=ntfs")
        vm.wait_for(r"VHDBOOT-TARGET-WROTE \d+ bytes", 10, "the target's write to its root partition")
        vm.wait_exit(90, "the target to power off")
        timings["to power off"] = vm.elapsed()
    finally:
        vm.close()
    return vm


def ntfs_after(args, name):
    raw = overlay_to_raw(args, name)
    try:
        (_, offset, size) = partitions(os.path.abspath(args.disk))[0]
        flags, opens, host_file = ntfs_state(raw, offset, size)
    finally:
        os.unlink(raw)
    overlay = os.path.join(args.workdir, f"{name}.overlay.qcow2")
    same = subprocess.run(["qemu-img", "compare", "-q", "-f", "qcow2", "-F", "raw", overlay,
                           os.path.abspath(args.disk)]).returncode == 0
    check(not same, "the host disk is unchanged: the target's writes never reached the NTFS volume")
    print(f"e2e:   {name}: NTFS $Volume flags 0x{flags:04x}, plain ntfsinfo opens it: {opens}, "
          f"/written-by-target.txt: {host_file!r}", flush=True)
    return flags, opens, host_file


def scenario_shutdown(args, timings):
    """The target follows systemd's initrd shutdown interface: it execs
    /run/initramfs/shutdown poweroff with its root still mounted. vhdboot's
    shutdown must unmount the root, detach the loop device and unmount the
    host, so that the NTFS volume is clean afterwards (ntfs-3g's ntfsinfo)."""
    vm = boot_with_shutdown_mode(args, timings, "shutdown", "protocol")
    text = vm.text()
    for needed in [r"shutdown: unmounted /sysroot \(/dev/loop\d+p2, vfat\)",
                   r"shutdown: detached /dev/loop\d+",
                   r"shutdown: in-use record /run/initramfs/vhdboot/host/vhdboot-in-use\.txt "
                   r"removed from /dev/vda1",
                   r"shutdown: host volume /dev/vda1 \(ntfs3\) unmounted cleanly "
                   r"from /run/initramfs/vhdboot/host",
                   r"shutdown: everything detached cleanly; poweroff now"]:
        check(re.search(needed, text) is not None, f"the serial console lacks {needed!r}")
    flags, opens, host_file = ntfs_after(args, "shutdown")
    check(flags & 1 == 0, f"the NTFS volume is dirty after the shutdown protocol (flags 0x{flags:04x})")
    check(opens, "ntfsinfo refuses the NTFS volume after the shutdown protocol")
    check(bool(host_file and host_file.strip()),
          f"the file the target wrote on the host is missing or empty: {host_file!r}")
    # The same check on a volume known to be dirty (the fault disk's
    # E2E-DIRTY) must say so: the check can fail.
    (_, offset, size) = partitions(os.path.abspath(args.fault_disk))[1]
    dirty_flags, dirty_opens, _ = ntfs_state(os.path.abspath(args.fault_disk), offset, size)
    check(dirty_flags & 1 == 1 and not dirty_opens,
          f"the check does not see E2E-DIRTY as dirty (flags 0x{dirty_flags:04x}, opens {dirty_opens})")
    return vm


def scenario_crash(args, timings):
    """The target dies without any shutdown (sysrq c) while its image is
    attached. vhdboot's in-use record stays on the host, and the next start
    of vhdboot, on the disk as the crash left it, badges the NTFS host as
    needing a check and refuses to boot from it, with the fix in words; the
    exFAT host, untouched, still boots."""
    vm = boot_with_shutdown_mode(args, timings, "crash", "crash")
    check("sysrq: Trigger a crash" in vm.text(), "the target did not crash through sysrq")
    raw = overlay_to_raw(args, "crash")
    try:
        # ntfs-3g's tools cannot check for the record: after the crash they
        # refuse the volume ("$MFTMirr does not match $MFT"). The next stage
        # 1 reads it through ntfs3, read-only.
        nxt = Vm(args, "crash-next", args.kernel, args.initrd,
                 f"{BASE_CMDLINE} vhdboot.default={NTFS_PATH} vhdboot.timeout=-1 "
                 "vhdboot.columns=160 vhdboot.lines=50", disk=raw)
        try:
            wait_menu(nxt, args, timings, [NTFS_TITLE, EXFAT_TITLE])
            nxt.wait_for(r"needs check", 30, "the NTFS host's 'needs check' badge", on_screen=True)
            nxt.settle()
            nxt.key("enter")
            flat = lambda t: re.sub(r"\s+", " ", t)
            nxt.wait_for(lambda t: re.search(r"did not shut down with a clean detach", flat(t)),
                         60, "the refusal of the NTFS host with its reason", on_screen=True)
            nxt.settle()
            screen = flat(nxt.screen())
            check("chkdsk /f" in screen and "vhdboot-in-use.txt" in screen,
                  f"the refusal does not give the fix (chkdsk /f, delete vhdboot-in-use.txt): {screen[-600:]!r}")
            check("VHDBOOT-TARGET-OK" not in nxt.text(), "the refused image booted anyway")
            nxt.key("esc")
            down_enter_boots_exfat(nxt, args)
            timings["refused, exFAT booted"] = nxt.elapsed()
        finally:
            nxt.close()
    finally:
        os.unlink(raw)
    return vm


def scenario_faults(args, timings):
    """The fault disk (tests/e2e/make-fault-disk): one boot, one case per
    broken image. Enter on the default (bad-kernel.vhd) must end in a shown
    kexec refusal; then every image is selected in turn and the details
    pane must say what is wrong with it. The menu must stay live."""
    vm = Vm(args, "faults", args.kernel, args.initrd,
            f"{BASE_CMDLINE} vhdboot.default=/Images/bad-kernel.vhd vhdboot.timeout=-1 "
            "vhdboot.columns=160 vhdboot.lines=50",
            disk=args.fault_disk)
    failures, xfails, passes = [], [], []

    def case(name, ok, message, needs_preflight=False):
        if ok:
            passes.append(name)
            if needs_preflight and not PREFLIGHT_ON_MAIN:
                print(f"e2e:   faults/{name}: XPASS (set PREFLIGHT_ON_MAIN = True)", flush=True)
            else:
                print(f"e2e:   faults/{name}: PASS", flush=True)
        elif needs_preflight and not PREFLIGHT_ON_MAIN:
            xfails.append(name)
            print(f"e2e:   faults/{name}: XFAIL (needs the preflight branch): {message}", flush=True)
        else:
            failures.append(f"{name}: {message}")
            print(f"e2e:   faults/{name}: FAIL: {message}", flush=True)

    try:
        wait_menu(vm, args, timings, ["E2E Bad Kernel", "E2E-DIRTY"])
        vm.settle()
        vm.key("enter")
        t_enter = vm.elapsed()
        try:
            vm.wait_for(r"kexec", 60, "the kexec refusal", on_screen=True)
            vm.settle()
            shown = vm.screen()
            case("kexec-refused", "E2E Bad Kernel" in shown and re.search(r"kexec_file_load", shown),
                 "no kexec_file_load failure for E2E Bad Kernel on screen")
        except Failure as e:
            case("kexec-refused", False, str(e))
        timings["enter to refusal"] = vm.elapsed() - t_enter
        vm.key("esc")
        vm.settle()
        vm.key("home")
        vm.settle()
        seen = [vm.screen()]
        for _ in range(14):
            vm.key("down")
            vm.settle(quiet=0.5)
            seen.append(vm.screen())
        everything = "\n".join(seen)
        case("corrupt-footer", "corrupt-footer.vhd" in everything and "checksum is wrong" in everything,
             "no 'checksum is wrong' for corrupt-footer.vhd")
        case("dynamic-vhd", "dynamic.vhd" in everything and "dynamic VHD cannot sit on a loop" in everything,
             "no 'a dynamic VHD cannot sit on a loop device' for dynamic.vhd")
        case("no-esp", "no-esp.vhd" in everything and "no EFI system partition" in everything,
             "no 'has no EFI system partition' for no-esp.vhd")
        case("uki-without-linux", "no-linux.vhd" in everything and "no .linux section" in everything,
             "no 'no .linux section' for no-linux.vhd")
        case("dirty-ntfs", re.search(r"E2E-DIRTY.*\[dirty\]", everything) is not None,
             "the E2E-DIRTY volume has no [dirty] badge", needs_preflight=True)
        # The last entry is dirty.vhd's: booting it is refused, since stage 2
        # would need its volume read-write.
        vm.key("end")
        vm.settle()
        vm.key("enter")
        try:
            vm.wait_for(r"dirty", 60, "the refusal of the dirty volume", on_screen=True)
            vm.settle()
            case("dirty-ntfs-refused", re.search(r"not cleanly unmounted|dirty", vm.screen()) is not None,
                 "no refusal naming the dirty volume", needs_preflight=True)
        except Failure as e:
            case("dirty-ntfs-refused", False, str(e), needs_preflight=True)
        vm.key("esc")
        vm.settle()
        # The entry above it is no-loop.vhd's: the initramfs check runs at
        # Enter, before kexec, and refuses with the reason.
        vm.key("up")
        vm.settle()
        vm.key("enter")
        try:
            vm.wait_for(r"no loop module", 90, "the missing-loop refusal", on_screen=True)
            vm.settle()
            # Both places were checked: the image (whose root partition
            # holds no filesystem) could not give loop either.
            case("no-loop-module", re.search(r"\bcarry\b", vm.screen()) is not None,
                 "the refusal does not say that the image could not carry loop either",
                 needs_preflight=True)
        except Failure as e:
            case("no-loop-module", False, str(e), needs_preflight=True)
        vm.key("esc")
        vm.settle()
        # Still alive: the menu answers a key.
        vm.send(b"?")
        vm.settle()
        vm.key("esc")
        vm.settle()
        case("menu-live", "E2E Bad Kernel" in vm.screen() or "E2E-FAULTS" in vm.screen(),
             "the menu is gone after the fault cases")
    finally:
        vm.close()
    print(f"e2e:   faults: {len(passes)} passed, {len(xfails)} expected failures, {len(failures)} failed",
          flush=True)
    if failures:
        raise Failure("; ".join(failures))
    return vm


def scenario_empty(args, timings):
    """A disk with no NTFS or exFAT: stage 1 says why nothing can boot,
    starts the rescue shell by itself, and shows the empty menu when the
    shell exits."""
    vm = Vm(args, "empty", args.kernel, args.initrd, f"{BASE_CMDLINE} vhdboot.settle=3",
            disk=args.blank_disk)
    try:
        vm.wait_for(r"vhdboot: nothing bootable was found\.", args.timeout, "the 'nothing bootable' message")
        vm.wait_for(r"No NTFS or exFAT volume was found", 5, "the reason (no volume)")
        vm.wait_for(re.escape(RESCUE_PROMPT), 30, "the rescue shell prompt")
        timings["to shell"] = vm.elapsed()
        vm.send(b"echo RESCUE-$((6*7))\r")
        vm.wait_for(r"RESCUE-42", 20, "the rescue shell to run a command")
        vm.send(b"exit\r")
        vm.wait_for(r"No bootable image was found", 60, "the empty menu after the shell", on_screen=True)
        vm.wait_for(r"for a rescue shell", 10, "the empty menu's offer of the shell", on_screen=True)
        timings["to menu"] = vm.elapsed()
    finally:
        vm.close()
    return vm


def scenario_panic(args, timings):
    """vhdboot.failpoint=panic-on-boot panics inside the boot executor; the
    panic hook must show the panic and leave a working shell."""
    vm = boot_menu(args, "panic", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=1 "
                   "vhdboot.failpoint=panic-on-boot")
    try:
        vm.wait_for(r"(?s)vhdboot: internal error: panicked at .{0,80}?failpoint vhdboot\.failpoint=panic-on-boot",
                    args.timeout, "the panic message")
        vm.wait_for(r"vhdboot: starting a shell", 10, "the panic hook's shell notice")
        timings["to panic"] = vm.elapsed()
        vm.settle(quiet=1.0)
        vm.send(b"echo RESCUE-$((6*7))\r")
        vm.wait_for(r"RESCUE-42", 30, "the shell after the panic to run a command")
    finally:
        vm.close()
    return vm


def scenario_panic_locked(args, timings):
    """A password and vhdboot.failpoint=panic-on-boot: after the panic,
    PID 1 becomes the locked shell (/init --locked-shell), which asks for
    the password; a wrong one is refused with a wait, the right one opens
    the shell, and exiting it brings the prompt back: PID 1 never dies,
    and the password is never echoed."""
    vm = boot_menu(args, "panic-locked", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=1 "
                   f"vhdboot.failpoint=panic-on-boot vhdboot.password={LOCK_HASH}")
    prompt = "the rescue shell is locked. Password:"
    try:
        vm.wait_for(r"vhdboot: starting the rescue shell, which asks for the password",
                    args.timeout, "the panic hook's locked-shell notice")
        vm.wait_for(re.escape(prompt), 30, "the password prompt after the panic")
        timings["to prompt"] = vm.elapsed()
        vm.send(b"echo OPEN-$((6*7))\r")
        vm.wait_for(r"wrong password; try again in 2 s", 30, "a typed command to be refused")
        vm.wait_for(lambda t: t.count(prompt) >= 2, 30, "the prompt again after the wait")
        check("OPEN-42" not in vm.text(), "a command ran without the password")
        vm.send(LOCK_PASSWORD + b"\r")
        vm.wait_for(r"\(vhdboot rescue\)", 30, "the shell after the right password")
        vm.send(b"echo RESCUE-$((6*7))\r")
        vm.wait_for(r"RESCUE-42", 30, "the unlocked shell to run a command")
        vm.send(b"exit\r")
        vm.wait_for(lambda t: t.count(prompt) >= 3, 30, "the prompt again after the shell exits")
        check("Kernel panic" not in vm.text(), "PID 1 died (kernel panic)")
        check(LOCK_PASSWORD.decode() not in vm.text(), "the password was echoed")
    finally:
        vm.close()
    return vm


def scenario_late(args, timings):
    """The host disk is hot-added (QEMU monitor) while stage 1 waits for
    its default: stage 1 must wait, find it and boot it."""
    overlay = os.path.join(args.workdir, "late-host.overlay.qcow2")
    if os.path.exists(overlay):
        os.unlink(overlay)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                    "-b", os.path.abspath(args.disk), overlay], check=True)
    # No quiet: the kernel's "Run /init" line says when stage 1 starts. A
    # blank disk is present from the start, so virtio_blk is loaded.
    vm = Vm(args, "late", args.kernel, args.initrd,
            f"console=ttyS0 loglevel=7 vhdboot.settle=90 vhdboot.default={NTFS_PATH} vhdboot.timeout=1",
            disk=args.blank_disk, monitor=True)
    try:
        vm.wait_for(r"Run /init as init process", args.timeout, "the kernel to start stage 1")
        time.sleep(5)
        check(MARKER.search(vm.text()) is None, "booted before the disk was added")
        reply = vm.monitor(f"drive_add 0 if=none,id=late,file={overlay},format=qcow2")
        check("OK" in reply, f"drive_add failed: {reply!r}")
        reply = vm.monitor("device_add virtio-blk-pci,drive=late,id=latedisk")
        check("rror" not in reply, f"device_add failed: {reply!r}")
        t_add = vm.elapsed()
        timings["added at"] = t_add
        m = marker(vm, args.timeout)
        timings["add to marker"] = vm.elapsed() - t_add
        check(m["backing"].endswith(NTFS_PATH), f"booted {m['backing']!r}, not the late disk's {NTFS_PATH}")
        check(m["dio"] == "1", f"loop direct I/O is {m['dio']!r}, expected 1")
    finally:
        vm.close()
    return vm


def scenario_shell_keys(args, timings):
    """The rescue shell hands the console back: after `s` and `exit` the
    menu must take keys again, so Down + Enter boots the second entry.
    Checking that the menu is drawn is not enough; a menu that is drawn
    but deaf to the keyboard looks the same."""
    vm = boot_menu(args, "shell-keys", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, EXFAT_TITLE])
        vm.settle()
        vm.send(b"s")
        vm.wait_for(re.escape(RESCUE_PROMPT), 30, "the rescue shell prompt after s")
        vm.settle()
        vm.send(b"echo RESCUE-$((6*7))\r")
        vm.wait_for(r"RESCUE-42", 20, "the rescue shell to run a command")
        vm.send(b"exit\r")
        vm.wait_for(r"rescue shell exited", 30, "the menu's notice after the shell", on_screen=True)
        timings["shell and back"] = vm.elapsed() - timings["start to menu"]
        down_enter_boots_exfat(vm, args)
    finally:
        vm.close()
    return vm


REPAIR_DIR = "/run/vhdboot/repair/exfat-zboot"
REPORT_SECTIONS = ["versions", "configuration", "scan log", "problems", "boot timeline",
                   "kernel log", "block devices"]


def exfat_partition(disk: str):
    """(offset, size) of the host disk's exFAT partition (the second)."""
    parts = partitions(disk)
    check(len(parts) >= 2, f"the host disk has {len(parts)} partitions, expected 2")
    return parts[1][1], parts[1][2]


def open_for_repair(vm, args, key: bytes, confirm: bool):
    """From the NTFS default, two Downs select exfat-zboot.vhd (as in
    boot-dir); `key` opens it, `y` answers the read-write question."""
    vm.settle()
    vm.key("home")
    vm.settle(quiet=0.5)
    for _ in range(2):
        vm.key("down")
        vm.settle(quiet=0.5)
    vm.send(key)
    if confirm:
        vm.wait_for(r"read-write\?", 30, "the read-write question", on_screen=True)
        vm.settle()
        vm.send(b"y")
    vm.wait_for(r"vhdboot repair: exfat-zboot\.vhd", 60, "the repair summary")
    vm.wait_for(re.escape(RESCUE_PROMPT), 30, "the repair shell prompt")
    vm.settle()


def scenario_repair(args, timings):
    """Issue 16, items 1-3, read-only: o on exfat-zboot.vhd mounts its ext4
    root read-only (noload) and opens the shell in its folder; a file of
    the root is read there; `vhdboot inspect` and `scan` work there, and
    `vhdboot report` (on PATH) writes the bundle. Before that, d shows the
    report in the menu and w, Enter, y saves it to the NTFS host volume,
    where the host side finds it afterwards
    with every section; exit hands back a menu that boots another entry.
    From the host side afterwards, the exFAT partition holding the image
    hashes the same as before: nothing was written to it."""
    before = sha256_range(args.disk, *exfat_partition(args.disk))
    vm = boot_menu(args, "repair", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, BOOT_DIR_TITLE])
        # d shows the report; w, Enter, y saves it to the first place
        # offered, the NTFS host volume (no FAT stick here).
        vm.settle()
        vm.send(b"d")
        vm.wait_for(r"Support report \(\d+ lines", 60, "the report screen", on_screen=True)
        vm.settle()
        vm.send(b"w")
        vm.wait_for(r"Save vhdboot-report\.txt to:", 10, "the save chooser", on_screen=True)
        # The chooser's title can arrive before its rows: wait for the row.
        vm.wait_for(r"E2E-NTFS \(/dev/vda1, host volume\)", 10,
                    "the NTFS host volume offered for the report", on_screen=True)
        vm.settle()
        vm.key("enter")
        vm.wait_for(r"Write the report to E2E-NTFS", 10, "the save question", on_screen=True)
        vm.settle()
        vm.send(b"y")
        vm.wait_for(r"The report was saved to /dev/vda1:/vhdboot-report\.txt", 60,
                    "the notice naming where the report went", on_screen=True)
        vm.settle()
        vm.key("esc")
        open_for_repair(vm, args, b"o", confirm=False)
        vm.wait_for(re.escape(f"mounted at {REPAIR_DIR}/part1 [root]"), 10,
                    "the summary naming the ext4 root's mount point")
        vm.send(f"cat {REPAIR_DIR}/part1/etc/os-release\r".encode())
        vm.wait_for(r'PRETTY_NAME="E2E Boot Dir Linux"', 20, "the image's os-release read in the shell")
        vm.send(b"touch part1/x 2>/dev/null || echo RO-$((6*7))\r")
        vm.wait_for(r"RO-42", 20, "a write to the read-only root to fail")
        # vhdboot is on PATH there (item 2): inspect and scan work.
        vm.send(b"vhdboot inspect /run/vhdboot/hosts/*/Images/exfat-zboot.vhd | grep -q 'E2E Boot Dir Linux'"
                b" && vhdboot scan | grep -q exfat-zboot.vhd && echo CLI-$((6*7))\r")
        vm.wait_for(r"CLI-42", 60, "vhdboot inspect and scan in the rescue shell")
        vm.send(b"vhdboot report --out /tmp/report.txt && grep '^== ' /tmp/report.txt | tr '\\n' '|'"
                b" && echo REPORT-DONE\r")
        vm.wait_for(r"REPORT-DONE", 60, "vhdboot report in the rescue shell")
        headings = "|".join(f"== {name} ==" for name in REPORT_SECTIONS) + "|"
        vm.wait_for(re.escape(headings), 5, "the report's sections in order")
        vm.send(b"exit\r")
        vm.wait_for(r"repair shell exited", 30, "the menu's notice after the repair shell", on_screen=True)
        timings["repair and back"] = vm.elapsed() - timings["start to menu"]
        vm.settle()
        vm.key("home")
        vm.settle()
        vm.key("enter")
        m = marker(vm, args.timeout)
        check_booted_image(m, NTFS_PATH, "e2e.uki=ntfs")
    finally:
        vm.close()
    raw = overlay_to_raw(args, "repair")
    try:
        after = sha256_range(raw, *exfat_partition(raw))
        saved_report = ntfs_file(raw, "/vhdboot-report.txt")
    finally:
        os.unlink(raw)
    check(before == after, "the exFAT partition holding exfat-zboot.vhd changed during a read-only repair")
    check(saved_report is not None and all(f"== {n} ==" in saved_report for n in REPORT_SECTIONS),
          f"the report saved from the menu, read from the NTFS volume: {(saved_report or '')[:300]!r}")
    return vm


def ntfs_file(raw: str, path: str):
    """The content of `path` on the host disk's NTFS partition (the
    first), read with ntfscat, or None when it is not there."""
    _, offset, size = partitions(raw)[0]
    loop = subprocess.run(["losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit", str(size), raw],
                          check=True, capture_output=True, text=True).stdout.strip()
    try:
        cat = subprocess.run(["ntfscat", "-f", loop, path], capture_output=True, text=True)
        return cat.stdout if cat.returncode == 0 else None
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


def read_from_zboot_root(raw: str, path: str):
    """The content of `path` in exfat-zboot.vhd's ext4 root, read from the
    host side (exfat-fuse, then debugfs on a copy of the partition), or
    None when it is not there."""
    offset, size = exfat_partition(raw)
    loop = subprocess.run(["losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit", str(size), raw],
                          check=True, capture_output=True, text=True).stdout.strip()
    mnt = raw + ".mnt"
    part = raw + ".ext4"
    os.makedirs(mnt, exist_ok=True)
    try:
        subprocess.run(["mount.exfat-fuse", "-o", "ro", loop, mnt], check=True, capture_output=True)
        try:
            image = os.path.join(mnt, BOOT_DIR_PATH.lstrip("/"))
            # The root is the image's only partition, from 1 MiB
            # (make-boot-dir-vhd); debugfs ignores what follows the
            # filesystem, so the copy runs up to the footer.
            p_off = 1 << 20
            p_size = os.path.getsize(image) - 512 - p_off
            with open(image, "rb") as src, open(part, "wb") as dst:
                src.seek(p_off)
                left = p_size
                while left > 0:
                    chunk = src.read(min(left, 4 << 20))
                    if not chunk:
                        break
                    dst.write(chunk)
                    left -= len(chunk)
        finally:
            subprocess.run(["fusermount", "-u", mnt], check=False)
        out = subprocess.run(["debugfs", "-R", f"cat {path}", part], capture_output=True, text=True)
        return out.stdout if out.returncode == 0 and out.stdout else None
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
        for leftover in (part,):
            if os.path.exists(leftover):
                os.unlink(leftover)
        os.rmdir(mnt)


def scenario_repair_write(args, timings):
    """Issue 16, item 1, read-write: with the fault disk attached too, w on
    dirty.vhd (the E2E-DIRTY volume) is refused with the reason; w, y on
    exfat-zboot.vhd (a clean exFAT host) mounts it read-write with a
    chroot; a command run by `chroot` writes a file inside the root; exit
    undoes it all and the menu boots another entry. From the host side
    afterwards, the file is in the image's ext4 root."""
    vm = Vm(args, "repair-write", args.kernel, args.initrd,
            f"{BASE_CMDLINE} vhdboot.default={NTFS_PATH} vhdboot.timeout=-1",
            disk=args.disk, extra_disks=[args.fault_disk])
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, BOOT_DIR_TITLE, "E2E-DIRTY"])
        vm.settle()
        # The fault disk's volumes come after the host disk's; dirty.vhd's
        # entry is the last row (as in faults).
        vm.key("end")
        vm.settle()
        vm.send(b"w")
        vm.wait_for(r"Cannot open the image read-write", 30, "the refusal on the dirty host", on_screen=True)
        check(re.search(r"dirty|not cleanly unmounted", vm.screen()) is not None,
              "the refusal does not say the host is dirty")
        check("read-write?" not in vm.screen(), "a question was asked for a dirty host")
        vm.key("esc")
        open_for_repair(vm, args, b"w", confirm=True)
        vm.wait_for(r"chroot ready", 10, "the summary's chroot line")
        vm.send(f"chroot {REPAIR_DIR}/part1 /bin/sh -c "
                "'echo repaired-in-chroot > /etc/vhdboot-repaired; echo CHROOT-$((6*7)); ls /proc/self >/dev/null"
                " && echo PROC-BOUND'\r".encode())
        vm.wait_for(r"CHROOT-42", 30, "a command run by chroot inside the image's root")
        vm.wait_for(r"PROC-BOUND", 10, "/proc bound into the chroot")
        vm.send(b"cd / && exit\r")
        vm.wait_for(r"Rescanned the disks|repair shell exited", 60, "the menu after the repair shell",
                    on_screen=True)
        vm.settle()
        vm.key("home")
        vm.settle()
        vm.key("enter")
        m = marker(vm, args.timeout)
        check_booted_image(m, NTFS_PATH, "e2e.uki=ntfs")
    finally:
        vm.close()
    raw = overlay_to_raw(args, "repair-write")
    try:
        content = read_from_zboot_root(raw, "/etc/vhdboot-repaired")
    finally:
        os.unlink(raw)
    check(content is not None and "repaired-in-chroot" in content,
          f"/etc/vhdboot-repaired in the image's root, read from the host: {content!r}")
# `openssl passwd -6 -salt e2esalt 'open sesame'`: the lock scenario's
# password, as vhdboot.conf (here the kernel command line) holds it.
LOCK_PASSWORD = b"open sesame"
LOCK_HASH = ("$6$e2esalt$IyurL3ll0vECRrh6apwmmK2mjeLib6cAcIm.Rvtr5EkThqrCn1AE/"
             "6nOz8H45k9a74g6rOCTmXSiEWQj5hWJr0")


def scenario_lock(args, timings):
    """The editor and shell lock (issue 16). With editor=no and a
    password: e only says the editor is off; s asks for the password, a
    wrong one is refused with a wait, the right one opens the shell. A
    second boot with the password alone: e asks for it and the right one
    opens the editor. The password never reaches the console."""
    vm = boot_menu(args, "lock", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1 "
                   f"vhdboot.editor=no vhdboot.password={LOCK_HASH}")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE])
        vm.settle()
        vm.send(b"e")
        vm.wait_for(r"editor is turned off \(editor = no\)", 30,
                    "the notice that the editor is off", on_screen=True)
        check("Command line for" not in vm.screen(), "e opened the editor with editor=no")
        vm.send(b"s")
        vm.wait_for(r"Type the password to open the rescue shell", 30,
                    "the password prompt after s", on_screen=True)
        vm.settle()
        vm.send(b"wrong guess\r")
        vm.wait_for(r"Wrong password\. Try again in \d+ s", 30,
                    "the refusal of a wrong password", on_screen=True)
        check(RESCUE_PROMPT not in vm.text(), "a wrong password opened the shell")
        # The first wait is 2 s, counted by the menu's one-second ticks.
        time.sleep(3.5)
        vm.send(LOCK_PASSWORD + b"\r")
        vm.wait_for(re.escape(RESCUE_PROMPT), 30, "the rescue shell after the right password")
        vm.settle()
        vm.send(b"echo LOCKED-$((6*7))\r")
        vm.wait_for(r"LOCKED-42", 20, "the rescue shell to run a command")
        check(LOCK_PASSWORD.decode() not in vm.text(), "the password was echoed")
        timings["lock: editor off, wrong and right password"] = vm.elapsed() - timings["start to menu"]
    finally:
        vm.close()
    vm = boot_menu(args, "lock-editor", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1 "
                   f"vhdboot.password={LOCK_HASH}")
    try:
        wait_menu(vm, args, {}, [NTFS_TITLE])
        vm.settle()
        vm.send(b"e")
        vm.wait_for(r"Type the password to open the command-line editor", 30,
                    "the password prompt after e", on_screen=True)
        vm.settle()
        vm.send(LOCK_PASSWORD + b"\r")
        vm.wait_for(r"Command line for", 30, "the editor after the right password", on_screen=True)
        check(LOCK_PASSWORD.decode() not in vm.text(), "the password was echoed")
    finally:
        vm.close()
    return vm


def scenario_kexec_refused(args, timings):
    """A refused kexec hands back a menu that takes keys. The failpoint
    vhdboot.failpoint=kexec-refused-once refuses the first kexec_file_load
    the way the kernel refuses a bad kernel (the faults scenario shows a
    real refusal, but its disk holds no entry that boots); after Esc,
    Down + Enter boots the other entry."""
    vm = boot_menu(args, "kexec-refused", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1 "
                   "vhdboot.failpoint=kexec-refused-once")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, EXFAT_TITLE])
        vm.settle()
        vm.key("enter")
        t_enter = vm.elapsed()
        vm.wait_for(r"with kexec_file_load", 60, "the refused kexec_file_load on screen", on_screen=True)
        timings["enter to refusal"] = vm.elapsed() - t_enter
        vm.settle()
        vm.key("esc")
        down_enter_boots_exfat(vm, args)
    finally:
        vm.close()
    return vm


def scenario_confirm_cancel(args, timings):
    """A cancelled confirmation hands back a menu that takes keys: after
    p (power off?) and n, Down + Enter boots the exFAT entry."""
    vm = boot_menu(args, "confirm-cancel", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, EXFAT_TITLE])
        vm.settle()
        vm.send(b"p")
        vm.wait_for(r"Power off the machine now\?", 30, "the power-off question", on_screen=True)
        vm.settle()
        vm.send(b"n")
        vm.settle()
        check("Power off the machine now?" not in vm.screen(), "the question is still shown after n")
        down_enter_boots_exfat(vm, args)
    finally:
        vm.close()
    return vm


def scenario_exec_fails(args, timings):
    """A failed reboot into the loaded kernel hands back a working menu.
    vhdboot.failpoint=exec-fails-once makes the first reboot fail after
    the volumes were unmounted for it; stage 1 must mount them again, the
    error must show, r must list both images again, and Down + Enter must
    boot the exFAT entry (which reads its file from the remounted volume)."""
    vm = boot_menu(args, "exec-fails", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1 "
                   "vhdboot.failpoint=exec-fails-once")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, EXFAT_TITLE])
        vm.settle()
        vm.key("enter")
        t_enter = vm.elapsed()
        vm.wait_for(r"rebooting into the loaded kernel", 60, "the failed reboot on screen", on_screen=True)
        timings["enter to failure"] = vm.elapsed() - t_enter
        vm.settle()
        vm.key("esc")
        vm.settle()
        vm.send(b"r")
        vm.wait_for(r"Rescanned the disks", 60, "the rescan notice", on_screen=True)
        vm.settle()
        shown = vm.screen()
        check(NTFS_TITLE in shown and EXFAT_TITLE in shown,
              "the rescan after the failed reboot does not list both images")
        down_enter_boots_exfat(vm, args)
    finally:
        vm.close()
    return vm


def scenario_default_broken(args, timings):
    """timeout=0 with a default that cannot boot (a UKI without .linux):
    the menu opens with the default selected and the reason on screen,
    before any key is pressed."""
    vm = Vm(args, "default-broken", args.kernel, args.initrd,
            f"{BASE_CMDLINE} vhdboot.default=/Images/no-linux.vhd vhdboot.timeout=0 "
            "vhdboot.columns=160 vhdboot.lines=50", disk=args.fault_disk)
    try:
        vm.wait_for(r"did not start", args.timeout, "the dialog saying the default did not start",
                    on_screen=True)
        vm.wait_for(r"no \.linux section", 10, "the cause: the UKI has no .linux section",
                    on_screen=True)
        timings["to reason"] = vm.elapsed()
        check(re.search(r"►[^\n]*no-linux\.vhd", vm.screen()) is not None,
              "the cursor is not on the default image no-linux.vhd")
    finally:
        vm.close()
    return vm


# The hostile images (tests/hostile/make-hostile-images) on the hostile disk.
HOSTILE_IMAGES = ["fat-loop.vhd", "cross-linked.vhd", "gpt-8192.vhd", "bls-slow.vhd",
                  "bls-huge-initrd.vhd", "bls-initrd-total.vhd"]
# PID 1's peak resident memory must stay below this with the hostile disk
# attached (issue 11): the parsing happens in bounded children.
PID1_HWM_LIMIT_KIB = 64 * 1024


def scenario_hostile(args, timings):
    """A second disk holds one hostile image per class. The menu must appear
    within the settle time plus the per-image budget, list every hostile
    image as not bootable with a reason in the scan log, keep PID 1 small,
    and still boot the good image on the first disk."""
    settle, probe_time = 10, 5
    vm = Vm(args, "hostile", args.kernel, args.initrd,
            f"{BASE_CMDLINE} vhdboot.default={NTFS_PATH} vhdboot.timeout=-1 "
            "vhdboot.columns=160 vhdboot.lines=50",
            disk=args.disk, extra_disks=[args.hostile_disk])
    try:
        # Kernel start (up to ~15 s under TCG), then the scan: at most the
        # settle time plus one probe budget per hostile image.
        budget = 15 + settle + probe_time * len(HOSTILE_IMAGES)
        vm.wait_for(re.escape(NTFS_TITLE), budget, "the menu with the good image", on_screen=True)
        vm.wait_for(r"E2E-HOSTILE", 10, "the hostile volume in the list", on_screen=True)
        timings["start to menu"] = vm.elapsed()
        vm.settle()
        vm.send(b"l")
        vm.wait_for(r"(?i)scan log|Log", 10, "the log view", on_screen=True)
        vm.settle()
        log = vm.screen()
        # The log may be longer than a screen: page through it.
        for _ in range(6):
            vm.key("pgdn")
            vm.settle(quiet=0.5)
            log += "\n" + vm.screen()
        for name in HOSTILE_IMAGES:
            line = next((l for l in log.splitlines() if f"/Images/{name}:" in l), None)
            check(line is not None, f"no scan-log line with a reason for the hostile image {name}")
            print(f"e2e:   hostile/{name}: {line.strip()[:150]}", flush=True)
        vm.key("esc")
        vm.settle()
        vm.send(b"s")
        vm.wait_for(re.escape(RESCUE_PROMPT), 30, "the rescue shell prompt")
        vm.settle()
        vm.send(b"sed -n 's/^VmHWM:[^0-9]*\\([0-9]*\\).*/PID1HWM=\\1/p' /proc/1/status\r")
        m = vm.wait_for(r"PID1HWM=(\d+)", 20, "PID 1's peak memory from /proc/1/status")
        hwm = int(m.group(1))
        print(f"e2e:   hostile: PID 1 VmHWM {hwm} KiB", flush=True)
        check(hwm < PID1_HWM_LIMIT_KIB, f"PID 1's peak memory is {hwm} KiB, over {PID1_HWM_LIMIT_KIB}")
        vm.send(b"exit\r")
        vm.wait_for(r"rescue shell exited", 30, "the menu after the shell", on_screen=True)
        vm.settle()
        vm.key("enter")
        m = marker(vm, args.timeout)
        check_booted_image(m, NTFS_PATH, "e2e.uki=ntfs")
    finally:
        vm.close()
    return vm


def scenario_ovmf(args, timings):
    """UEFI firmware (OVMF) starts vhdboot.efi from the ESP's removable-media
    path, EFI/BOOT/BOOTX64.EFI: no -kernel, no -append; the UKI's .cmdline
    puts the menu on the serial port and waits for a key (ESP_SERIAL in
    tests/e2e/build). Down + Enter boots the exFAT image."""
    fw = Ovmf(args, "ovmf", args.esp_serial or build_env_value("ESP_SERIAL"))
    vm = Vm(args, "ovmf", None, None, None, disk=args.disk, firmware=fw)
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, EXFAT_TITLE])
        check_started_by_firmware(vm)
        t_menu = vm.elapsed()
        down_enter_boots_exfat(vm, args)
        timings["menu to marker"] = vm.elapsed() - t_menu
    finally:
        vm.close()
    return vm


def check_started_by_firmware(vm):
    """OVMF's boot manager logs on the serial port which Boot#### entry it
    starts; the ESP disk is the first virtio disk (PCI slot 3)."""
    check(re.search(r'BdsDxe: starting Boot[0-9A-F]{4} "UEFI Misc Device" from PciRoot\(0x0\)/Pci\(0x3,0x0\)',
                    vm.text()) is not None,
          "OVMF's log does not show it starting the ESP disk (BdsDxe: starting ... Pci(0x3,0x0))")


EFI_LINE = re.compile(r"VHDBOOT-TARGET-EFI info=(?P<info>\S*) selected=(?P<selected>\S*) "
                      r"features=(?P<features>\S*) entries=(?P<entries>\S*)")
# LoaderFeatures as efivarfs shows it: attributes NV|BS|RT (07 00 00 00),
# then the u64 with bits 2 (LoaderEntryDefault), 3 (LoaderEntryOneShot)
# and 9 (@saved).
LOADER_FEATURES = "070000000c02000000000000"


def check_efi_line(vm, selected_prefix: str):
    m = vm.wait_for(EFI_LINE, 30, "the target's VHDBOOT-TARGET-EFI line")
    check(re.fullmatch(r"vhdboot_\d+\.\d+\.\d+\S*", m["info"]) is not None,
          f"LoaderInfo in the target is {m['info']!r}, not 'vhdboot <version>'")
    check(m["selected"].startswith(selected_prefix),
          f"LoaderEntrySelected is {m['selected']!r}, not the {selected_prefix}* entry")
    check(m["features"] == LOADER_FEATURES,
          f"LoaderFeatures is {m['features']!r}, expected {LOADER_FEATURES}")
    entries = m["entries"].split(",")
    check(m["selected"] in entries, f"LoaderEntries {entries} lacks the selected {m['selected']!r}")
    return entries


def scenario_ovmf_efivars(args, timings):
    """Four boots over one private OVMF variable store, as a PC's NVRAM
    keeps it (ESP_SAVED: default=@saved, timeout=3)."""
    fw = Ovmf(args, "ovmf-efivars", args.esp_saved or build_env_value("ESP_SAVED"))
    started = time.monotonic()

    # Boot 1: nothing saved yet, so the menu waits; Down + Enter boots exFAT.
    vm = Vm(args, "ovmf-efivars", None, None, None, disk=args.disk, firmware=fw)
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, EXFAT_TITLE])
        check(not re.search(r"Booting .* in \d+ s", vm.screen()),
              "boot 1 counts down, but nothing was saved yet")
        down_enter_boots_exfat(vm, args)
        entries = check_efi_line(vm, "exfat-linux-")
        vm.wait_exit(30, "the target to power off after boot 1")
    finally:
        vm.close()
    ntfs_ids = [e for e in entries if e.startswith("ntfs-linux-")]
    check(len(ntfs_ids) == 1, f"no single NTFS entry id in LoaderEntries {entries}")
    timings["boot 1"] = time.monotonic() - started

    # Boot 2: @saved preselects exFAT and boots it when the countdown ends,
    # with no key pressed. Its target asks for a one-shot of the NTFS entry.
    t = time.monotonic()
    vm = Vm(args, "ovmf-efivars", None, None, None, disk=args.disk, firmware=fw)
    try:
        vm.wait_for(r"Booting E2E exFAT Linux.* in \d+ s", args.timeout,
                    "the countdown to the saved exFAT entry", on_screen=True)
        m = marker(vm, args.timeout)
        check_booted_image(m, EXFAT_PATH, "e2e.uki=exfat")
        check_efi_line(vm, "exfat-linux-")
        vm.wait_for(r"VHDBOOT-TARGET-ASK", 30, "the target's one-shot question")
        vm.send(f"oneshot {ntfs_ids[0]}\r".encode())
        vm.wait_for(r"VHDBOOT-TARGET-ONESHOT " + re.escape(ntfs_ids[0]), 30,
                    "the target to set LoaderEntryOneShot")
        vm.wait_exit(30, "the target to power off after boot 2")
    finally:
        vm.close()
    timings["boot 2"] = time.monotonic() - t

    # Boot 3: the one-shot boots NTFS at once: no menu, no countdown.
    t = time.monotonic()
    vm = Vm(args, "ovmf-efivars", None, None, None, disk=args.disk, firmware=fw)
    try:
        m = marker(vm, args.timeout)
        check_booted_image(m, NTFS_PATH, "e2e.uki=ntfs")
        check(EXFAT_TITLE not in vm.text() and not re.search(r"in \d+ s, press any key", vm.text()),
              "boot 3 drew the menu or a countdown before the one-shot entry")
        check_efi_line(vm, "ntfs-linux-")
        vm.wait_exit(30, "the target to power off after boot 3")
    finally:
        vm.close()
    timings["boot 3"] = time.monotonic() - t

    # Boot 4: the one-shot is gone, and booting it did not change the saved
    # entry (systemd-boot's rule): exFAT again, after the countdown. Its
    # target runs `vhdboot snap` to boot the firmware's shell once.
    t = time.monotonic()
    vm = Vm(args, "ovmf-efivars", None, None, None, disk=args.disk, firmware=fw)
    try:
        vm.wait_for(r"Booting E2E exFAT Linux.* in \d+ s", args.timeout,
                    "the countdown to the saved exFAT entry", on_screen=True)
        m = marker(vm, args.timeout)
        check_booted_image(m, EXFAT_PATH, "e2e.uki=exfat")
        vm.wait_for(r"VHDBOOT-TARGET-ASK", 30, "the target's question")
        vm.send(b"snap EFI Internal Shell\r")
        snap = vm.wait_for(r"BootNext = (Boot[0-9A-F]{4}) \"EFI Internal Shell\"", 30,
                           "vhdboot snap to set BootNext in the target")
        check(re.search(r"\* Boot[0-9A-F]{4} UEFI Misc Device\s", vm.text()) is not None,
              "vhdboot snap's list does not mark the ESP disk's entry as BootCurrent")
        vm.wait_for(r"VHDBOOT-TARGET-SNAP rc=0", 30, "vhdboot snap to succeed")
        vm.wait_exit(30, "the target to power off after boot 4")
    finally:
        vm.close()
    timings["boot 4"] = time.monotonic() - t

    # Boot 5: the firmware starts the entry BootNext names, once.
    t = time.monotonic()
    vm = Vm(args, "ovmf-efivars", None, None, None, disk=args.disk, firmware=fw)
    try:
        vm.wait_for(rf'BdsDxe: starting {snap.group(1)} "EFI Internal Shell"', args.timeout,
                    "OVMF to start the BootNext entry (the EFI shell)")
    finally:
        vm.close()
    timings["boot 5 (to the shell)"] = time.monotonic() - t
    return vm


class Screendump:
    """One QEMU monitor screendump (binary PPM, P6): what the framebuffer
    shows. fbcon draws with the VGA palette: the menu's title bar is white
    on blue (0, 0, 0xaa), and the selected row is a light grey
    (0xaa, 0xaa, 0xaa) bar across the entry list."""

    TITLE_BLUE = b"\x00\x00\xaa"
    SELECTION_GREY = b"\xaa\xaa\xaa"

    def __init__(self, path: str):
        with open(path, "rb") as f:
            data = f.read()
        magic, size, maxval, self.pixels = data.split(b"\n", 3)
        check(magic == b"P6" and maxval == b"255", f"{path} is not a binary PPM screendump")
        self.width, self.height = map(int, size.split())
        stride = self.width * 3
        self.rows = [self.pixels[y * stride:(y + 1) * stride] for y in range(self.height)]

    def lit_pixels(self) -> int:
        """Pixels that are not black (the console's background)."""
        px = self.pixels
        return sum(1 for i in range(0, len(px) - 2, 3) if px[i:i + 3] != b"\0\0\0")

    def bands(self, colour: bytes, run: int) -> list:
        """(top, bottom) of each band of at least 8 consecutive pixel rows
        that hold `run` pixels of `colour` side by side: a bar as tall as a
        text line, not a one-pixel box border."""
        needle = colour * run
        bands, top = [], None
        for y, row in enumerate(self.rows + [b""]):
            if needle in row:
                top = y if top is None else top
            elif top is not None:
                if y - top >= 8:
                    bands.append((top, y - 1))
                top = None
        return bands

    def title_bar(self):
        bands = self.bands(self.TITLE_BLUE, 400)
        return bands[0] if bands else None

    def selection_bar(self):
        bands = self.bands(self.SELECTION_GREY, 100)
        return bands[0] if bands else None


def screendump(vm, path: str):
    """Takes a screendump through the monitor; None while QEMU has not
    opened its monitor socket yet."""
    if os.path.exists(path):
        os.unlink(path)
    try:
        vm.monitor(f"screendump {path}")
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    return Screendump(path) if os.path.exists(path) else None


def wait_screen(vm, what, timeout, path, test):
    """Polls screendumps until test(dump) holds; returns that dump."""
    deadline = min(time.monotonic() + timeout, vm.deadline)
    while True:
        if vm.proc.poll() is not None:
            raise Failure(f"QEMU exited (status {vm.proc.returncode}) before {what}")
        dump = screendump(vm, path)
        if dump is not None and test(dump):
            return dump
        if time.monotonic() >= deadline:
            raise Failure(f"timed out at {vm.elapsed():.0f} s waiting for {what} on the screen ({path})")
        time.sleep(1)


def scenario_ovmf_vga(args, timings):
    """As ovmf, with the menu on a VGA framebuffer instead of the serial
    port: the UKI's last console is tty0 (ESP_VGA in tests/e2e/build), the
    keys come from the QEMU monitor (a PS/2 keyboard), and the screen is
    read from monitor screendumps. The menu must be drawn (a lit screen with
    the blue selection bar), Down must move the bar down, and Enter must
    boot the exFAT image; its marker arrives on the serial port."""
    fw = Ovmf(args, "ovmf-vga", args.esp_vga or build_env_value("ESP_VGA"))
    vm = Vm(args, "ovmf-vga", None, None, None, disk=args.disk, firmware=fw, vga=True, monitor=True)
    first_path = os.path.join(args.workdir, "ovmf-vga.menu.ppm")
    second_path = os.path.join(args.workdir, "ovmf-vga.down.ppm")
    try:
        first = wait_screen(vm, "the menu (its blue title bar and grey selection bar)", args.timeout,
                            first_path, lambda d: d.title_bar() and d.selection_bar())
        timings["start to menu"] = vm.elapsed()
        check_started_by_firmware(vm)
        # The frame may still be in the middle of its first draw: dump again.
        time.sleep(1)
        first = screendump(vm, first_path)
        lit, title, selected = first.lit_pixels(), first.title_bar(), first.selection_bar()
        print(f"e2e:   ovmf-vga: {first.width}x{first.height}, {lit} lit pixels, "
              f"title bar rows {title}, selection bar rows {selected}", flush=True)
        check(lit >= 5000, f"the menu screen has only {lit} lit pixels: it looks blank")
        check(title is not None and selected is not None and selected[0] > title[1],
              f"the selection bar {selected} is not below the title bar {title}")
        reply = vm.monitor("sendkey down")
        check("rror" not in reply, f"sendkey down failed: {reply!r}")
        second = wait_screen(vm, "the selection bar to move down after Down", 30, second_path,
                             lambda d: d.selection_bar() and d.selection_bar()[0] > selected[1])
        check(second.pixels != first.pixels, "the screen did not change after Down")
        timings["down redrawn"] = vm.elapsed() - timings["start to menu"]
        vm.monitor("sendkey ret")
        t_enter = vm.elapsed()
        m = marker(vm, args.timeout)
        timings["enter to marker"] = vm.elapsed() - t_enter
        check_booted_image(m, EXFAT_PATH, "e2e.uki=exfat")
    finally:
        vm.close()
    return vm


# scenario keymap-de: the keys pressed in the editor (QEMU sendkey names, so
# a PS/2 keyboard sends their scancodes) and the word they type with a German
# layout and with the kernel's US one. y and z trade places, Shift+0 and
# Shift+7 move, and the key right of 0 gives a non-ASCII letter.
KEYMAP_KEYS = ["spc", "k", "m", "shift-0", "z", "y", "shift-7", "minus"]
KEYMAP_WORDS = {"de": "km=yz/\u00df", "us": "km)zy&-"}


def keymap_boot(args, timings, name, layout, expect):
    """Boots with the menu on the VGA console (the last console=) and
    vhdboot.keymap=<layout>, presses e, End and KEYMAP_KEYS on the PS/2
    keyboard, then Enter; the target's cmdline, read on the serial port,
    must hold the word `expect`."""
    append = ("console=ttyS0,115200 console=tty0 quiet loglevel=3 init_on_alloc=0 "
              f"preempt=full vhdboot.default={NTFS_PATH} vhdboot.timeout=-1 "
              f"vhdboot.keymap={layout}")
    vm = Vm(args, name, args.kernel, args.initrd, append, disk=args.disk, vga=True, monitor=True)
    menu_path = os.path.join(args.workdir, f"{name}.menu.ppm")
    editor_path = os.path.join(args.workdir, f"{name}.editor.ppm")
    try:
        # Without firmware the kernel keeps the VGA text mode (vgacon, a
        # 720x400 dump), whose palette's blue is 00 00 a8, not efifb's aa,
        # and whose title text leaves runs of about 330 blue pixels.
        menu = wait_screen(vm, "the menu (its blue title bar)", args.timeout, menu_path,
                           lambda d: d.lit_pixels() >= 5000
                           and (d.title_bar() or d.bands(b"\0\0\xa8", 200)))
        timings[f"{layout}: start to menu"] = vm.elapsed()
        # The frame may still be in the middle of its first draw.
        time.sleep(1)
        menu = screendump(vm, menu_path)
        vm.monitor("sendkey e")
        wait_screen(vm, "the editor to open after e", 30, editor_path,
                    lambda d: d.pixels != menu.pixels)
        for key in ["end"] + KEYMAP_KEYS:
            reply = vm.monitor(f"sendkey {key}")
            check("rror" not in reply and "nvalid" not in reply,
                  f"sendkey {key} failed: {reply!r}")
        # The keys are queued on the console in order: Enter lands after them.
        vm.monitor("sendkey ret")
        t_enter = vm.elapsed()
        m = marker(vm, args.timeout)
        timings[f"{layout}: enter to marker"] = vm.elapsed() - t_enter
        words = m["cmdline"].split()
        typed = [w for w in words if w.startswith("km")]
        print(f"e2e:   {name}: keys {' '.join(KEYMAP_KEYS[1:])} typed {typed}", flush=True)
        check(expect in words,
              f"with vhdboot.keymap={layout} the keys {KEYMAP_KEYS[1:]} did not type {expect!r}: "
              f"the target's cmdline is {m['cmdline']!r}")
        check_booted_image(m, NTFS_PATH, "e2e.uki=ntfs")
    finally:
        vm.close()
    return vm


def scenario_keymap_de(args, timings):
    """keymap=de: the editor types what a German keyboard gives. The
    control boot names a layout that is not shipped: the menu still works
    and the same keys type the US characters, so the German word can only
    come from the loaded keymap."""
    keymap_boot(args, timings, "keymap-de", "de", KEYMAP_WORDS["de"])
    keymap_boot(args, timings, "keymap-unknown", "xx", KEYMAP_WORDS["us"])
    # The same unknown layout with the menu on the serial port, where the
    # screen can be read: its status line names the layout and where the
    # shipped ones are listed.
    vm = boot_menu(args, "keymap-notice",
                   f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1 vhdboot.keymap=xx")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE])
        vm.wait_for(re.escape("keyboard layout 'xx' is not shipped (see /usr/share/vhdboot/keymaps"),
                    30, "the menu to say the layout is not shipped", on_screen=True)
    finally:
        vm.close()
    return vm


def stage1_timeline(vm: Vm) -> list:
    """The steps of stage 1's timeline line (printed just before the
    reboot into the target), in order."""
    m = re.search(r"vhdboot: timeline:([^\r\n]*)", vm.text())
    check(m is not None, "stage 1 printed no timeline before the reboot")
    steps = []
    for part in m.group(1).split("|"):
        step = re.match(r"\s*[0-9.]+ (.+?)(?: \+[0-9.]+)?\s*$", part)
        if step:
            steps.append(step.group(1))
    return steps


def scenario_preload_default(args, timings):
    """The default boots after a preload (issue 17): with a countdown long
    enough for it, the menu prepares the default's boot in the background
    (read, check, kexec_file_load), and the countdown's end only reboots.
    Stage 1's timeline must show the preload finished before the reboot was
    asked for, and one kexec_file_load in all."""
    vm = boot_menu(args, "preload-default", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=10")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE])
        t_menu = vm.elapsed()
        m = marker(vm, args.timeout)
        timings["menu to marker"] = vm.elapsed() - t_menu
        check_booted_image(m, NTFS_PATH, "e2e.uki=ntfs")
        steps = stage1_timeline(vm)
        check("preload ready" in steps, f"no 'preload ready' in stage 1's timeline: {steps}")
        check(steps.count("kexec_file_load done") == 1,
              f"expected one kexec_file_load, the preload's: {steps}")
        check("boot requested" not in steps, f"a second, foreground load ran: {steps}")
        check(steps.index("preload ready") < steps.index("reboot requested"),
              f"the reboot was asked for before the preload was ready: {steps}")
    finally:
        vm.close()
    return vm


def scenario_preload_pick(args, timings):
    """A second entry chosen while the default preloads (issue 17): the
    first Down stops the countdown, the second moves to exFAT (cancelling
    the default's preload), Enter at once waits for exFAT's own preload,
    naming its steps on the status line, and boots it."""
    vm = boot_menu(args, "preload-pick", f"vhdboot.default={NTFS_PATH} vhdboot.timeout=10")
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE, EXFAT_TITLE])
        vm.key("down")
        vm.key("down")
        vm.key("enter")
        t_enter = vm.elapsed()
        vm.wait_for(r"Booting [^\n]*: (preparing|reading the kernel|checking the initramfs|"
                    r"adding the stage-2 archive|loading)", 60,
                    "the status line naming the boot's step", on_screen=True)
        m = marker(vm, args.timeout)
        timings["enter to marker"] = vm.elapsed() - t_enter
        check_booted_image(m, EXFAT_PATH, "e2e.uki=exfat")
        steps = stage1_timeline(vm)
        # The default's preload may have reached kexec_file_load before the
        # Down arrived; then it was unloaded again.
        loads = steps.count("kexec_file_load done")
        check(loads == 1 or (loads == 2 and "preload unloaded" in steps),
              f"the cancelled preload's kernel was not unloaded: {steps}")
    finally:
        vm.close()
    return vm


# The host-safety disks (tests/e2e/make-safety-disk, issue 13).
TWIN_TITLE = "E2E Twin B"
TWIN_PATH = "/Images/twin-b.vhd"
# E2E-BIG: mkntfs filled 16 MiB (its boot sector needs every byte of it,
# the backup boot sector included); the partition lost 8 sectors after.
BIG_NEEDS, BIG_PARTITION = 16 << 20, (16 << 20) - 8 * 512


def squeezed(text: str) -> str:
    """Text without any whitespace: a sentence the menu wrapped inside its
    details pane still matches, wherever the lines broke."""
    return re.sub(r"\s+", "", text)


def details(screen: str) -> str:
    """The details pane's text: the part of each row right of the list's
    border (the two panes meet as "││")."""
    return "\n".join(line.split("││", 1)[1].rstrip().removesuffix("│")
                     for line in screen.split("\n") if "││" in line)


def select_row(vm, text: str, limit: int = 16) -> str:
    """Home, then Down until the selected row ("►") holds text; returns the
    screen with it selected."""
    vm.key("home")
    vm.settle(quiet=0.5)
    for _ in range(limit):
        screen = vm.screen()
        if any("►" in line and text in line.split("││")[0] for line in screen.split("\n")):
            return screen
        vm.key("down")
        vm.settle(quiet=0.5)
    raise Failure(f"no menu row holding {text!r} could be selected")


def partition_hashes(disk: str) -> dict:
    return {name: sha256_range(disk, off, size) for name, off, size in partitions(disk)}


def extra_overlay_to_raw(args, name: str, index: int) -> str:
    overlay = os.path.join(args.workdir, f"{name}.extra{index}.qcow2")
    raw = os.path.join(args.workdir, f"{name}.extra{index}.after.raw")
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", overlay, raw], check=True)
    return raw


def compare_hashes(scenario: str, disk: str, raw: str, skip=()):
    """Each partition of raw (the disk after the run) must hash as in disk,
    except those named in skip."""
    before, after = partition_hashes(disk), partition_hashes(raw)
    for name in before:
        if name in skip:
            continue
        print(f"e2e:   {scenario}: partition {name!r} sha256 before {before[name][:16]} "
              f"after {after[name][:16]}", flush=True)
        check(before[name] == after[name], f"partition {name!r} changed: something wrote to it")


def scenario_host_safety(args, timings):
    """The safety disk alone (issue 13): an exFAT volume with VolumeDirty,
    an NTFS volume with an unclean $LogFile and one larger than its
    partition are listed and refused, each with its own reason; two volumes
    with the same UUID are both listed with a [duplicate id] badge and
    mounted at mount points of their own; the image on the second one
    boots, told apart by its PARTUUID, and nothing else on the disk is
    written."""
    disk = os.path.abspath(args.safety_disk)
    vm = Vm(args, "host-safety", args.kernel, args.initrd,
            f"{BASE_CMDLINE} vhdboot.timeout=-1 vhdboot.columns=160 vhdboot.lines=50", disk=disk)
    try:
        wait_menu(vm, args, timings, ["E2E-SAFE", TWIN_TITLE])
        vm.settle()
        screen = vm.screen()
        for label, badge in [("E2E-XDIRTY", "[dirty]"), ("E2E-JOURNAL", "[journal not clean]"),
                             ("E2E-TWIN-A", "[duplicate id]"), ("E2E-TWIN-B", "[duplicate id]"),
                             ("E2E-BIG", "[larger than partition]")]:
            check(re.search(re.escape(label) + r" .*" + re.escape(badge), screen) is not None,
                  f"the volume {label} has no {badge} badge")
        check(re.search(r"E2E-SAFE .*\[", screen) is None, "the clean volume E2E-SAFE has a badge")
        for image, summary, sentence in [
            ("xdirty.vhd", "host volume dirty",
             "E2E-XDIRTY (/dev/vda2) is marked dirty (not cleanly unmounted)"),
            ("journal.vhd", "host journal not clean",
             "E2E-JOURNAL (/dev/vda3) is not cleanly unmounted: its NTFS journal ($LogFile) holds "
             "changes that were never replayed"),
            ("big.vhd", "host larger than its partition",
             f"E2E-BIG (/dev/vda6): its NTFS boot sector needs {BIG_NEEDS} bytes, more than the "
             f"{BIG_PARTITION}-byte partition holds, so the kernel would mount it read-only"),
        ]:
            shown = select_row(vm, image)
            row = next(line for line in shown.split("\n") if "►" in line)
            check(summary in row, f"the row of {image} does not say {summary!r}: {row.strip()!r}")
            check(squeezed(sentence) in squeezed(details(shown)),
                  f"the details of {image} do not say {sentence!r}")
            print(f"e2e:   host-safety: {image}: refused: {summary}", flush=True)
        for image in ["twin-a.vhd", TWIN_TITLE]:
            row = next(line for line in select_row(vm, image).split("\n") if "►" in line)
            check("not unique" not in row, f"{image} is refused although its PARTUUID is unique: {row!r}")
        # Every host mount on a mount point of its own, named by device.
        vm.send(b"s")
        vm.wait_for(re.escape(RESCUE_PROMPT), 30, "the rescue shell")
        vm.send(b"awk '$2 ~ /vhdboot.hosts/ {print \"MNT\", $1, $2}' /proc/mounts; echo MOUNTS-$((1+1))\r")
        vm.wait_for(r"MOUNTS-2", 20, "the list of host mounts")
        mounts = re.findall(r"^MNT (\S+) (\S+)$", vm.text(), re.M)
        devices = [d for d, _ in mounts]
        points = [p for _, p in mounts]
        print(f"e2e:   host-safety: host mounts {mounts}", flush=True)
        check(len(mounts) == 6, f"expected the six host volumes mounted, found {mounts}")
        check(len(set(devices)) == len(devices) and len(set(points)) == len(points),
              f"a device or a mount point appears twice (stacked mounts): {mounts}")
        for dev, point in mounts:
            check(point == "/run/vhdboot/hosts/" + os.path.basename(dev),
                  f"{dev} is mounted at {point}, not at a mount point named after the device")
        vm.send(b"exit\r")
        vm.wait_for(re.escape(TWIN_TITLE), 60, "the menu after the shell", on_screen=True)
        vm.settle()
        select_row(vm, TWIN_TITLE)
        vm.key("enter")
        m = marker(vm, args.timeout)
        timings["to marker"] = vm.elapsed()
        check_booted_image(m, TWIN_PATH, "e2e.uki=twin")
        stage2 = re.search(r"vhdboot: (/Images/twin-b\.vhd on /dev/loop\d+.*)", vm.text())
        check(stage2 is not None, "stage 2 did not report attaching twin-b.vhd")
        print(f"e2e:   host-safety: stage 2: {stage2[1][:100]}", flush=True)
        check("PARTUUID=" in m["cmdline"] and "vhdboot.uuid=5AFE5AFE5AFE5AFE" in m["cmdline"],
              f"the handoff does not find the twin by PARTUUID and check its UUID: {m['cmdline']!r}")
        vm.wait_exit(60, "the target to power off")
    finally:
        vm.close()
    raw = overlay_to_raw(args, "host-safety")
    try:
        # The booted volume is written by stage 2 and the target; no other.
        compare_hashes("host-safety", disk, raw, skip={"E2E-TWIN-B"})
    finally:
        os.unlink(raw)
    return vm


def scenario_hibernation(args, timings):
    """The safety disk plus a disk whose NTFS volume holds a hibernated
    hiberfil.sys (issue 13): Windows hibernated, so every internal host is
    listed and browsable but refused, naming the volume with the file and
    the fix; booting is refused; nothing is written to either disk."""
    disk, hiber = os.path.abspath(args.safety_disk), os.path.abspath(args.hiber_disk)
    vm = Vm(args, "hibernation", args.kernel, args.initrd,
            f"{BASE_CMDLINE} vhdboot.timeout=-1 vhdboot.columns=160 vhdboot.lines=50",
            disk=disk, extra_disks=[hiber])
    try:
        # Nothing can boot, so stage 1 says why on the console and opens
        # the rescue shell first; the menu follows when it exits.
        vm.wait_for(r"vhdboot: nothing bootable was found\.", args.timeout, "the 'nothing bootable' message")
        vm.wait_for(re.escape(RESCUE_PROMPT), 30, "the rescue shell prompt")
        said = squeezed(vm.text())
        for line in ["E2E-SAFE (/dev/vda1): [Windows hibernated]",
                     "E2E-HIBER (/dev/vdb1): [hibernated]",
                     "E2E-SAFE (/dev/vda1): /Images/safe.vhd: Windows is hibernated (Fast Startup or "
                     "hibernation): E2E-HIBER (/dev/vdb1) holds its hibernation file"]:
            check(squeezed(line) in said, f"the console does not say {line!r}")
        vm.send(b"exit\r")
        # A refused host's images show as rows of their own, entries folded.
        wait_menu(vm, args, timings, ["E2E-HIBER", "twin-b.vhd"])
        vm.settle()
        screen = vm.screen()
        check(re.search(r"E2E-HIBER .*\[hibernated\]", screen) is not None,
              "E2E-HIBER, which holds hiberfil.sys, has no [hibernated] badge")
        check(re.search(r"E2E-SAFE .*\[Windows hibernated\]", screen) is not None,
              "E2E-SAFE has no [Windows hibernated] badge")
        shown = select_row(vm, "safe.vhd")
        row = next(line for line in shown.split("\n") if "►" in line)
        check("Windows hibernated" in row, f"safe.vhd's row does not say Windows hibernated: {row!r}")
        sentence = ("Windows is hibernated (Fast Startup or hibernation): E2E-HIBER (/dev/vdb1) holds "
                    "its hibernation file, and a hibernated Windows keeps every internal volume in use, "
                    "so E2E-SAFE (/dev/vda1) must not be written")
        fix = "start Windows and choose Restart (a restart ends the hibernated session), or turn Fast Startup off"
        for words in [sentence, fix]:
            check(squeezed(words) in squeezed(details(shown)), f"safe.vhd's details do not say {words!r}")
        # Enter on the image that would boot otherwise shows the refusal.
        select_row(vm, "twin-b.vhd")
        vm.key("enter")
        vm.wait_for(lambda t: "holdsitshibernationfile" in squeezed(t), 30,
                    "the refusal to boot E2E Twin B", on_screen=True)
        check("or turn Fast Startup off" in " ".join(vm.screen().split()) or
              "orturnFastStartupoff" in squeezed(vm.screen()),
              "the refusal does not give the fix")
        vm.key("esc")
        vm.settle()
        vm.send(b"p")
        vm.settle()
        vm.send(b"y")
        vm.wait_exit(60, "QEMU to exit after p, y (power off)")
        timings["to power off"] = vm.elapsed()
    finally:
        vm.close()
    check(MARKER.search(vm.text()) is None, "a target booted although Windows is hibernated")
    raw, hraw = overlay_to_raw(args, "hibernation"), extra_overlay_to_raw(args, "hibernation", 0)
    try:
        compare_hashes("hibernation", disk, raw)
        compare_hashes("hibernation", hiber, hraw)
    finally:
        os.unlink(raw)
        os.unlink(hraw)


def boot_edited(vm, args, words: str, keys=()):
    """Presses `keys` in the menu, then adds `words` to the selected
    entry's command line in the editor and boots it."""
    for k in keys:
        vm.send(k)
        vm.settle()
    vm.send(b"e")
    vm.settle()
    vm.key("end")
    vm.send(f" {words}".encode())
    vm.settle()
    vm.key("enter")
    return marker(vm, args.timeout)


# The real Debian target (issue 12, items 1 and 4): tests/e2e/make-debian-rootfs
# builds Debian 13 with systemd and its own kernel, make-debian-disk puts it
# twice on the NTFS volume E2E-DEBIAN: debian.vhd (an ESP with a UKI per
# initramfs flavour and a BLS type #1 entry) and debian-bootdir.vhd (no ESP,
# the kernel in /boot on ext4). Its unit vhdboot-e2e.service prints this once
# `systemctl is-system-running --wait` returns, writes the token, syncs and
# powers off (or reboots with e2e.then=reboot). The line must have ended:
# the serial port under TCG delivers it in pieces, and a match on a line
# still arriving once cut the command line before `e2e.entry=`.
DEBIAN_MARKER = re.compile(
    r"VHDBOOT-DEBIAN-OK root=(?P<root>\S*) dio=(?P<dio>\S*) backing=(?P<backing>\S*) "
    r"state=(?P<state>\S*) multi-user=(?P<target>\S*) token=(?P<token>\S*) "
    r"uptime=(?P<uptime>[0-9.]*) cmdline=(?P<cmdline>[^\r\n]*)\r?\n"
)
DEBIAN_PATH = "/Images/debian.vhd"
DEBIAN_BOOTDIR_PATH = "/Images/debian-bootdir.vhd"
# Titles: the UKIs' .osrel, the BLS entry's title, the /boot image's
# /etc/os-release (Debian's own PRETTY_NAME).
DEBIAN_ITOOLS_TITLE = "E2E Debian initramfs-tools"
DEBIAN_DRACUT_TITLE = "E2E Debian dracut"
DEBIAN_CARRY_TITLE = "E2E Debian dracut without loop"
DEBIAN_BLS_TITLE = "E2E Debian BLS"
DEBIAN_OS_RELEASE_TITLE = "Debian GNU/Linux 13 (trixie)"
# The menu's entry rows on E2E-DEBIAN, top to bottom, as vhdboot orders
# them: images by file name (debian-bootdir.vhd first), then debian.vhd's
# UKIs by file name and its BLS entry. The default (debian.vhd) selects its
# first entry, the carry UKI; the driver moves from there.
DEBIAN_ROWS = [DEBIAN_OS_RELEASE_TITLE, DEBIAN_CARRY_TITLE, DEBIAN_DRACUT_TITLE, DEBIAN_ITOOLS_TITLE,
               DEBIAN_BLS_TITLE]
DEBIAN_DEFAULT_ROW = DEBIAN_ROWS.index(DEBIAN_CARRY_TITLE)
# A Debian boot under TCG takes about a minute; the limit allows for a
# loaded machine.
DEBIAN_TIMEOUT = 420.0


def timeline_marks(text: str, which: str) -> list:
    """(seconds, step) of the first timeline line whose first step is
    `which` ("PID 1 start" for stage 1, "stage 2 start" for stage 2)."""
    for m in re.finditer(r"vhdboot: timeline:([^\n]*)", text):
        marks = []
        for part in m.group(1).split("|"):
            step = re.match(r"\s*([0-9.]+) (.+?)(?: \+[0-9.]+)?\s*$", part)
            if step:
                marks.append((float(step.group(1)), step.group(2)))
        if marks and marks[0][1] == which:
            return marks
    return []


def debian_timings(vm: Vm, m, t_marker: float, timings: dict):
    """Splits QEMU start -> marker into vhdboot's share and Debian's, from
    stage 1's and stage 2's timeline lines (guest clock, which under TCG
    follows the host's) and the uptime the marker carries."""
    text = vm.text()
    stage1 = timeline_marks(text, "PID 1 start")
    stage2 = timeline_marks(text, "stage 2 start")
    check(bool(stage1), "stage 1 printed no timeline before the reboot")
    check(bool(stage2), "stage 2 printed no timeline before the target's init")
    times = dict((step, t) for t, step in stage1)
    timings["start to marker"] = t_marker
    # The bootstrapper kernel and stage 1 until the menu is up.
    timings["vhdboot to menu"] = times.get("menu start", 0.0)
    # The load (read the UKI or kernel and initramfs, check, add the
    # stage-2 archive, kexec_file_load): from the last load's start to its
    # kexec_file_load, whether a preload ran it while the menu waited for
    # keys or the Enter key did; then from the request to the reboot.
    starts = [t for t, step in stage1 if step in ("preload started", "boot requested")]
    loaded = [t for t, step in stage1 if step == "kexec_file_load done"]
    if starts and loaded:
        timings["vhdboot load"] = loaded[-1] - starts[-1]
    asked = times.get("reboot requested", times.get("boot requested", stage1[-1][0]))
    timings["vhdboot request to kexec"] = stage1[-1][0] - asked
    timings["stage 2"] = stage2[-1][0] - stage2[0][0]
    # The target kernel starts at uptime 0; stage 2 runs inside it.
    timings["debian to marker"] = float(m["uptime"]) - timings["stage 2"]


def check_debian_marker(m, path: str, entry: str, token: str, root_part: int):
    check(f"e2e.entry={entry}" in m["cmdline"].split() or entry == "",
          f"the target's cmdline lacks e2e.entry={entry}: {m['cmdline']!r}")
    check(m["backing"].endswith(path), f"loop backing file {m['backing']!r} is not {path!r} on the host")
    check(m["dio"] == "1", f"loop direct I/O is {m['dio']!r}, expected 1")
    check(re.fullmatch(rf"/dev/loop\d+p{root_part}", m["root"]) is not None,
          f"root {m['root']!r} is not partition {root_part} (GPT name 'root') of a loop device")
    check(m["target"] == "active", f"multi-user.target is {m['target']!r}, not active")
    check(m["state"] == "running", f"systemctl is-system-running said {m['state']!r}, not running "
          "(a unit failed: see the serial log)")
    check(m["token"] == token, f"the target read token {m['token']!r}, expected {token!r}")


@contextlib.contextmanager
def vhd_root_readonly(args, name: str, raw: str, image_path: str, root_part: int):
    """The VHD's root partition as a raw disk `raw` holds it, with no
    kernel driver for NTFS or ext4 and no journal replay: the NTFS volume
    through a read-only ntfs-3g, the VHD's root partition on a read-only
    loop. Yields (vhd file, root loop device, partition offset, size)."""
    import tempfile
    mnt = tempfile.mkdtemp(prefix=f"{name}.", dir=args.workdir)
    loops = []
    mounted = False
    try:
        (_, offset, size) = partitions(raw)[0]
        # Before anything mounts it: did the target's shutdown leave the
        # host volume clean? Printed for the host-safety issue, not judged.
        flags, opens, _ = ntfs_state(raw, offset, size)
        print(f"e2e:   {name}: host NTFS $Volume flags after power-off 0x{flags:04x}, "
              f"plain ntfsinfo opens it: {opens}", flush=True)
        ntfs = subprocess.run(["losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit", str(size), raw],
                              check=True, capture_output=True, text=True).stdout.strip()
        loops.append(ntfs)
        subprocess.run(["ntfs-3g", "-o", "ro", ntfs, mnt], check=True)
        mounted = True
        vhd = mnt + image_path
        (_, poff, psize) = partitions(vhd)[root_part - 1]
        root = subprocess.run(["losetup", "-f", "--show", "-r", "-o", str(poff), "--sizelimit", str(psize), vhd],
                              check=True, capture_output=True, text=True).stdout.strip()
        loops.append(root)
        yield vhd, root, poff, psize
    finally:
        for loop in reversed(loops[1:]):
            subprocess.run(["losetup", "-d", loop], check=False)
        if mounted:
            subprocess.run(["umount", mnt], check=False)
        for loop in loops[:1]:
            subprocess.run(["losetup", "-d", loop], check=False)
        os.rmdir(mnt)


def token_and_fsck(root: str):
    """The token file read with debugfs, and e2fsck -fn's verdict."""
    cat = subprocess.run(["debugfs", "-R", "cat /vhdboot-e2e-token", root],
                         capture_output=True, text=True)
    fsck = subprocess.run(["e2fsck", "-fn", root], capture_output=True, text=True)
    verdict = "clean" if fsck.returncode == 0 else f"e2fsck -fn exit {fsck.returncode}: {fsck.stdout[-300:]!r}"
    return cat.stdout.strip(), verdict


def token_in_vhd(args, name: str, image_path: str, root_part: int):
    """After QEMU exited: the token file read from the VHD as the VM left
    it (the host disk's overlay converted to raw), and e2fsck -n's verdict
    on that partition."""
    raw = overlay_to_raw(args, name)
    try:
        with vhd_root_readonly(args, name, raw, image_path, root_part) as (_, root, _, _):
            return token_and_fsck(root)
    finally:
        os.unlink(raw)


# vhdboot's detach at the target's shutdown (issue 13, item 3), in the
# order it must happen: the old root unmounted, its loop detached, the
# in-use record removed, the host volume unmounted, and only then the
# final poweroff or reboot.
def detach_steps(host: str = "/dev/vda1") -> list:
    """DETACH_STEPS for a host volume on `host`."""
    return [r"vhdboot: shutdown: unmounted /oldroot \(/dev/loop\d+p\d, ext4\)",
            r"vhdboot: shutdown: detached /dev/loop\d+",
            rf"vhdboot: shutdown: in-use record \S+ removed from {re.escape(host)}",
            rf"vhdboot: shutdown: host volume {re.escape(host)} \(ntfs3\) unmounted cleanly",
            r"vhdboot: shutdown: everything detached cleanly; {verb} now"]


DETACH_STEPS = detach_steps()
# systemd-shutdown's line while / is on the loop (tests/e2e/README.md
# says why it cannot go); an info line, so below the console's level with
# `quiet loglevel=3`; E2E_DEBIAN_WORDS="loglevel=7 systemd.log_level=info"
# shows it.
SYSTEMD_LOOP_LEFT = "Not all loop devices detached"


def check_detach(name: str, text: str, verb: str, steps=None):
    """Judges one target shutdown's console output (from its marker to its
    end): vhdboot's detach steps in order, each after the one before, the
    last naming `verb` (poweroff or reboot); and all of them after
    systemd-shutdown's last "Not all loop devices detached", when that
    shows: the loop it left is detached by vhdboot before the final
    reboot."""
    at = 0
    first = None
    steps = steps or DETACH_STEPS
    for step in steps:
        found = re.compile(step.format(verb=verb)).search(text, at)
        check(found is not None,
              f"the target's shutdown did not log {step.format(verb=verb)!r} after the step before it")
        first = found.start() if first is None else first
        at = found.end()
    left = text.rfind(SYSTEMD_LOOP_LEFT)
    check(left < first, f"systemd-shutdown's {SYSTEMD_LOOP_LEFT!r} comes after vhdboot's detach")
    print(f"e2e:   {name}: detach before {verb}: {len(steps)} steps in order; systemd's "
          f"{SYSTEMD_LOOP_LEFT!r} {'before them' if left >= 0 else 'not on the console'}", flush=True)


def debian_vm(args, name: str, settings: str, allow_reboot=False, **disks) -> Vm:
    """The Debian disk's VM; `disks` go to Vm (extra_disks, usb_removable)."""
    check(args.debian_disk is not None and os.path.exists(args.debian_disk),
          f"the Debian disk {args.debian_disk!r} is missing: run tests/e2e/build")
    append = f"{BASE_CMDLINE} {settings}"
    return Vm(args, name, args.kernel, args.initrd, append, disk=args.debian_disk,
              allow_reboot=allow_reboot, **disks)


def debian_pick(vm: Vm, args, timings, title: str, words: str):
    """From the default's row, moves to `title`, opens the editor, adds
    `words` at the end of the command line and boots."""
    wait_menu(vm, args, timings, [DEBIAN_ITOOLS_TITLE, title])
    vm.settle()
    moves = DEBIAN_ROWS.index(title) - DEBIAN_DEFAULT_ROW
    for _ in range(abs(moves)):
        vm.key("down" if moves > 0 else "up")
        vm.settle(quiet=0.5)
    vm.send(b"e")
    # The editor's footer: its title ("... (this boot only)") is cut on
    # an 80-column screen when the entry's title is long.
    vm.wait_for(r"Esc cancel", 30, "the command-line editor", on_screen=True)
    vm.key("end")
    vm.send(f" {words}".encode())
    vm.settle()
    vm.key("enter")
    timings["keys"] = vm.elapsed() - timings["start to menu"]


IMMUTABLE_RAM_MIB = 4


def scenario_immutable(args, timings):
    """Issue 15: `i` boots the NTFS image immutable with a 4 MiB RAM layer.
    The target writes a token into its root partition and reads it back,
    then writes 16 MiB, more than the layer holds, and must get an I/O
    error (not a hang), with stage 2's console line naming the limit. After
    QEMU exits the host disk is bit-for-bit unchanged, and a normal boot of
    the same disk does not see the token."""
    settings = (f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1 "
                f"vhdboot.immutable_ram={IMMUTABLE_RAM_MIB}M")
    vm = boot_menu(args, "immutable", settings)
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE])
        vm.settle()
        vm.send(b"i")
        vm.wait_for(rf"Immutable: changes kept in RAM \(up to {IMMUTABLE_RAM_MIB} MiB\)", 20,
                    "the status line naming the immutable boot", on_screen=True)
        t_enter = vm.elapsed()
        m = boot_edited(vm, args, "e2e.immutable=write")
        timings["enter to marker"] = vm.elapsed() - t_enter
        check(re.fullmatch(r"/dev/loop\d+p2", m["root"]) is not None,
              f"root {m['root']!r} is not partition 2 of a loop device")
        check(re.fullmatch(r"/dev/dm-\d+", m["backing"]) is not None,
              f"the partitioned loop device's backing {m['backing']!r} is not the snapshot")
        text = vm.text()
        notice = (rf"immutable: changes kept in RAM, up to {IMMUTABLE_RAM_MIB} MiB, lost at "
                  r"reboot.*Invalidating snapshot: Unable to allocate exception")
        check(re.search(notice, text) is not None,
              "stage 2 did not name the RAM limit and the kernel's line on the console")
        stack = re.search(r"immutable: \S+ read-only on .*", text)
        print(f"e2e:   immutable: {stack.group(0).strip() if stack else 'no stack line'}", flush=True)
        r = vm.wait_for(r"VHDBOOT-TARGET-IMMUTABLE token=(\w+) flood=(\w+) invalidated=(\d+)",
                        60, "the target's immutable report")
        line = re.search(r"VHDBOOT-TARGET-IMMUTABLE .*", vm.text()).group(0).strip()
        print(f"e2e:   immutable: {line}", flush=True)
        check(r.group(1) == "ok", f"the token did not read back from the snapshot: {line}")
        check(r.group(2) == "failed", f"writing past the RAM limit did not fail: {line}")
        check(int(r.group(3)) > 0, f"the kernel did not invalidate the full snapshot: {line}")
        vm.wait_exit(90, "the target to power off")
        timings["to power off"] = vm.elapsed()
    finally:
        vm.close()
    overlay = os.path.join(args.workdir, "immutable.overlay.qcow2")
    cmp = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", "raw", overlay, os.path.abspath(args.disk)],
        capture_output=True, text=True,
    )
    check(cmp.returncode == 0,
          f"the immutable boot changed the host disk (qemu-img compare: {cmp.stdout.strip()})")
    vm = Vm(args, "immutable-after", args.kernel, args.initrd, f"{BASE_CMDLINE} {settings}",
            disk=args.disk, overlay_of="immutable")
    try:
        wait_menu(vm, args, {}, [NTFS_TITLE])
        vm.settle()
        m = boot_edited(vm, args, "e2e.immutable=check")
        check(re.search(r"/dev/dm-", m["backing"]) is None,
              f"the normal boot is stacked on a snapshot: {m['backing']!r}")
        r = vm.wait_for(r"VHDBOOT-TARGET-TOKEN (\w+)", 30, "the target's token check")
        check(r.group(1) == "absent", "the normal boot after the immutable one sees the token")
        vm.wait_exit(90, "the target to power off")
    finally:
        vm.close()
    timings["keys"] = vm.elapsed() - timings["start to menu"]


TRIAL_MIB = 32


def trial_write_boot(args, timings, name: str, settings: str):
    """The first boot of the trial scenarios: `t` on the NTFS default with a
    32 MiB store; stage 2 creates <image>.trial on the host and stacks a
    persistent snapshot on it, and the target's token reads back through
    it. The disk state goes on in `name`'s overlay."""
    vm = boot_menu(args, name, settings)
    try:
        wait_menu(vm, args, timings, [NTFS_TITLE])
        vm.settle()
        vm.send(b"t")
        vm.wait_for(rf"Trial: changes kept in \S+\.trial \(up to {TRIAL_MIB} MiB\)", 20,
                    "the status line naming the trial boot", on_screen=True)
        t_enter = vm.elapsed()
        # The host is read-write and carries the in-use record: the target
        # shuts down through stage 2's hook, as a distro's shutdown does.
        m = boot_edited(vm, args, "e2e.immutable=write e2e.shutdown=hook")
        timings["enter to marker"] = vm.elapsed() - t_enter
        check(re.fullmatch(r"/dev/loop\d+p2", m["root"]) is not None,
              f"root {m['root']!r} is not partition 2 of a loop device")
        check(re.fullmatch(r"/dev/dm-\d+", m["backing"]) is not None,
              f"the partitioned loop device's backing {m['backing']!r} is not the snapshot")
        stack = re.search(r"trial: \S+ read-only on .*", vm.text())
        check(stack is not None and "(created," in stack.group(0),
              "stage 2 did not log the trial stack with a newly created store")
        print(f"e2e:   {name}: {stack.group(0).strip()}", flush=True)
        r = vm.wait_for(r"VHDBOOT-TARGET-IMMUTABLE token=(\w+)", 60, "the target's report")
        check(r.group(1) == "ok", "the token did not read back through the trial snapshot")
        vm.wait_exit(90, "the target to power off")
        timings["trial boot to power off"] = vm.elapsed()
    finally:
        vm.close()


def trial_settings():
    return (f"vhdboot.default={NTFS_PATH} vhdboot.timeout=-1 "
            f"vhdboot.trial_size={TRIAL_MIB}M")


def scenario_trial(args, timings):
    """Issue 15 item 2: a trial boot (trial_write_boot). The next start of
    the menu shows "trial changes (32 MiB)" in the image's details
    (discovery saw the store without writing), and a normal boot of that
    disk does not see the token: the VHD itself was not written."""
    settings = trial_settings()
    trial_write_boot(args, timings, "trial", settings)
    vm = Vm(args, "trial-after", args.kernel, args.initrd, f"{BASE_CMDLINE} {settings}",
            disk=args.disk, overlay_of="trial")
    try:
        wait_menu(vm, args, {}, [NTFS_TITLE])
        vm.wait_for(rf"trial changes \({TRIAL_MIB} MiB\)", 20,
                    "the menu showing the pending trial in the image's details", on_screen=True)
        vm.settle()
        m = boot_edited(vm, args, "e2e.immutable=check")
        check(re.search(r"/dev/dm-", m["backing"]) is None,
              f"the normal boot is stacked on a snapshot: {m['backing']!r}")
        r = vm.wait_for(r"VHDBOOT-TARGET-TOKEN (\w+)", 30, "the target's token check")
        check(r.group(1) == "absent", "the VHD itself holds the trial's token")
        vm.wait_exit(90, "the target to power off")
    finally:
        vm.close()
    timings["keys"] = vm.elapsed() - timings["start to menu"]


def ntfs_files(args, run: str, disk: str, folder: str) -> list:
    """The names in `folder` of the disk's first (NTFS) partition as run
    `run` left it, read with ntfsls (no kernel driver)."""
    raw = overlay_to_raw(args, run)
    try:
        (_, offset, size) = partitions(os.path.abspath(disk))[0]
        loop = subprocess.run(["losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit",
                               str(size), raw], check=True, capture_output=True, text=True).stdout.strip()
        try:
            out = subprocess.run(["ntfsls", "-f", "-p", folder, loop], check=True,
                                 capture_output=True, text=True).stdout
        finally:
            subprocess.run(["losetup", "-d", loop], check=False)
    finally:
        os.unlink(raw)
    return out.split()


def trial_action(vm, args, key: bytes, question: str, done: str, timings: dict, what: str):
    """Presses `key` (m or x) on the selected image, checks the question,
    says yes, and waits for the notice `done` with the menu back."""
    vm.send(key)
    vm.wait_for(question, 30, f"the question before {what}", on_screen=True)
    vm.settle()
    t0 = vm.elapsed()
    vm.send(b"y")
    vm.wait_for(done, 300, f"the menu's note that {what} ended", on_screen=True)
    timings[f"{what} (y to note)"] = vm.elapsed() - t0
    vm.settle()


def scenario_trial_keep(args, timings):
    """Issue 15 item 2, keep: after a trial boot, m then y merges the store
    into the image (snapshot-merge, progress on the status line); the
    .trial file and its marker are gone afterwards, and a normal boot sees
    the trial's token in the image itself."""
    settings = trial_settings()
    trial_write_boot(args, timings, "trial-keep", settings)
    vm = Vm(args, "trial-keep-after", args.kernel, args.initrd, f"{BASE_CMDLINE} {settings}",
            disk=args.disk, overlay_of="trial-keep")
    try:
        wait_menu(vm, args, {}, [NTFS_TITLE])
        vm.wait_for(rf"trial changes \({TRIAL_MIB} MiB\)", 20,
                    "the menu showing the pending trial", on_screen=True)
        vm.settle()
        trial_action(vm, args, b"m", r"Keep the trial changes: merge them into ntfs-linux\.vhd\?",
                     r"Kept the trial changes", timings, "keep")
        check(not re.search(r"trial changes \(", vm.screen()),
              "the image still shows trial changes after the merge")
        m = boot_edited(vm, args, "e2e.immutable=check")
        check(re.search(r"/dev/dm-", m["backing"]) is None,
              f"the normal boot is stacked on a snapshot: {m['backing']!r}")
        r = vm.wait_for(r"VHDBOOT-TARGET-TOKEN (\w+)", 30, "the target's token check")
        check(r.group(1) == "present", "the merged image does not hold the trial's token")
        vm.wait_exit(90, "the target to power off")
    finally:
        vm.close()
    files = ntfs_files(args, "trial-keep", args.disk, "/Images")
    print(f"e2e:   trial-keep: /Images after the merge: {' '.join(files)}", flush=True)
    check("ntfs-linux.vhd.trial" not in files and "ntfs-linux.vhd.trial.merging" not in files,
          f"the store or its marker is still on the host: {files}")
    timings["keys"] = vm.elapsed() - timings["start to menu"]


def scenario_trial_discard(args, timings):
    """Issue 15 item 2, discard: after a trial boot, x then y deletes the
    .trial file; the image was never written, so a normal boot does not see
    the token."""
    settings = trial_settings()
    trial_write_boot(args, timings, "trial-discard", settings)
    vm = Vm(args, "trial-discard-after", args.kernel, args.initrd, f"{BASE_CMDLINE} {settings}",
            disk=args.disk, overlay_of="trial-discard")
    try:
        wait_menu(vm, args, {}, [NTFS_TITLE])
        vm.wait_for(rf"trial changes \({TRIAL_MIB} MiB\)", 20,
                    "the menu showing the pending trial", on_screen=True)
        vm.settle()
        trial_action(vm, args, b"x", r"Discard the trial changes of ntfs-linux\.vhd\?",
                     r"Discarded the trial changes", timings, "discard")
        m = boot_edited(vm, args, "e2e.immutable=check")
        r = vm.wait_for(r"VHDBOOT-TARGET-TOKEN (\w+)", 30, "the target's token check")
        check(r.group(1) == "absent", "the image holds the discarded trial's token")
        vm.wait_exit(90, "the target to power off")
    finally:
        vm.close()
    files = ntfs_files(args, "trial-discard", args.disk, "/Images")
    print(f"e2e:   trial-discard: /Images after the discard: {' '.join(files)}", flush=True)
    check("ntfs-linux.vhd.trial" not in files, f"the store is still on the host: {files}")
    check("ntfs-linux.vhd" in files, f"the image is gone from the host: {files}")
    timings["keys"] = vm.elapsed() - timings["start to menu"]


def debian_scenario(args, timings, name: str, title: str, entry: str, path=DEBIAN_PATH,
                    root_part=2, then="poweroff", extra_words="", then_boot=None,
                    host="/dev/vda1", before_boot=None, **disks):
    """Boots one Debian entry through the menu with a fresh token added in
    the editor, checks the marker, waits for the power-off (or, with
    then="reboot", for the menu to come back, then powers off from it, or
    boots `then_boot`, a (title, entry) of debian.vhd, which powers off),
    judges vhdboot's detach at each target shutdown (the host volume on
    `host`), and finds the last token in the VHD afterwards. `disks` go to
    Vm; `before_boot(vm)` runs once the menu shows the Debian rows, before
    any key."""
    extra_words = f"{extra_words} {os.environ.get('E2E_DEBIAN_WORDS', '')}".strip()
    token = f"{name}-{os.getpid()}-{int(time.time())}"
    limit = args.timeout
    args.timeout = max(limit, DEBIAN_TIMEOUT)
    try:
        vm = debian_vm(args, name, "vhdboot.default=/Images/debian.vhd vhdboot.timeout=-1",
                       allow_reboot=(then == "reboot"), **disks)
    finally:
        args.timeout = limit
    menu_again = None
    try:
        if before_boot is not None:
            wait_menu(vm, args, timings, [DEBIAN_ITOOLS_TITLE, title])
            before_boot(vm)
        debian_pick(vm, args, timings, title, f"{extra_words} e2e.token={token} e2e.then={then}".strip())
        m = vm.wait_for(DEBIAN_MARKER, DEBIAN_TIMEOUT, "the Debian target's VHDBOOT-DEBIAN-OK marker")
        debian_timings(vm, m, vm.elapsed(), timings)
        print(f"e2e:   {name}: {m.group(0).strip()}", flush=True)
        check_debian_marker(m, path, entry, token, root_part)
        if then == "reboot":
            # The bootstrapper starts again: its menu's header after the
            # marker, then the Debian rows on the screen.
            after = m.end()
            vm.wait_for(lambda t: t.find("choose a system to boot", after) >= 0, 180,
                        "the bootstrapper's menu again after the target's reboot")
            menu_again = vm.text().find("choose a system to boot", after)
            timings["marker to menu again"] = vm.elapsed() - timings["start to marker"]
            vm.wait_for(re.escape(DEBIAN_BLS_TITLE), 120, "the menu again after the reboot", on_screen=True)
            vm.settle()
            if then_boot is None:
                vm.send(b"p")
                vm.wait_for(r"Power off the machine now\?", 30, "the power-off question", on_screen=True)
                vm.send(b"y")
        first = m
        if then_boot is not None:
            # A second target boot in the same machine, which powers off.
            (title, entry) = then_boot
            token = f"{name}-2-{os.getpid()}-{int(time.time())}"
            debian_pick(vm, args, {}, title, f"{extra_words} e2e.token={token} e2e.then=poweroff".strip())
            m = vm.wait_for(lambda t: DEBIAN_MARKER.search(t, menu_again),
                            DEBIAN_TIMEOUT, "the second Debian boot's VHDBOOT-DEBIAN-OK marker")
            timings["menu again to marker"] = vm.elapsed() - timings["start to marker"] - \
                timings["marker to menu again"]
            print(f"e2e:   {name}: {m.group(0).strip()}", flush=True)
            check_debian_marker(m, path, entry, token, root_part)
        vm.wait_exit(180, "the target (or the menu) to power off")
        timings["to power off"] = vm.elapsed()
        check_detach(name, vm.text()[first.end():menu_again], then, detach_steps(host))
        if then_boot is not None:
            check_detach(name, vm.text()[m.end():], "poweroff", detach_steps(host))
    finally:
        vm.close()
    found, fsck = token_in_vhd(args, name, path, root_part)
    print(f"e2e:   {name}: token in {path} after power-off: {found!r}; root ext4: {fsck}", flush=True)
    check(found == token, f"the token {token!r} is not in {path}'s /vhdboot-e2e-token (read {found!r})")
    return vm


# The Debian disk's NTFS volume has about 130 MiB free (make-debian-disk),
# and stage 2 keeps 64 MiB spare: the store must stay below that. A Debian
# boot to multi-user writes a few MiB to its root.
DEBIAN_TRIAL_MIB = 48
DEBIAN_IMMUTABLE_MIB = 256
DEBIAN_TRIAL_SETTINGS = (f"vhdboot.default={DEBIAN_PATH} vhdboot.timeout=-1 "
                         f"vhdboot.trial_size={DEBIAN_TRIAL_MIB}M")


def debian_trial_boot(vm: Vm, args, timings, name: str, token: str, immutable=False):
    """Boots debian.vhd's initramfs-tools UKI as a trial (t; or immutable,
    i) with `token`, checks the target ran on the snapshot stack and wrote
    the token, and waits for the bootstrapper's menu to come back after
    its reboot, showing the pending trial (not for immutable)."""
    wait_menu(vm, args, timings, [DEBIAN_ITOOLS_TITLE])
    vm.settle()
    moves = DEBIAN_ROWS.index(DEBIAN_ITOOLS_TITLE) - DEBIAN_DEFAULT_ROW
    for _ in range(abs(moves)):
        vm.key("down" if moves > 0 else "up")
        vm.settle(quiet=0.5)
    if immutable:
        vm.send(b"i")
        vm.wait_for(rf"Immutable: changes kept in RAM \(up to {DEBIAN_IMMUTABLE_MIB} MiB\)",
                    20, "the status line naming the immutable boot", on_screen=True)
    else:
        vm.send(b"t")
        vm.wait_for(rf"Trial: changes kept in debian\.vhd\.trial \(up to {DEBIAN_TRIAL_MIB} MiB\)",
                    20, "the status line naming the trial boot", on_screen=True)
    vm.settle()
    vm.send(b"e")
    vm.wait_for(r"Esc cancel", 30, "the command-line editor", on_screen=True)
    vm.key("end")
    words = f"{os.environ.get('E2E_DEBIAN_WORDS', '')} e2e.token={token} e2e.then=reboot".strip()
    vm.send(f" {words}".encode())
    vm.settle()
    vm.key("enter")
    m = vm.wait_for(DEBIAN_MARKER, DEBIAN_TIMEOUT, "the Debian target's VHDBOOT-DEBIAN-OK marker")
    timings["start to trial marker"] = vm.elapsed()
    print(f"e2e:   {name}: {m.group(0).strip()[:200]}", flush=True)
    if immutable:
        stack = re.search(r"immutable: \S+ read-only on .*", vm.text())
        check(stack is not None, "stage 2 did not log the immutable stack")
    else:
        stack = re.search(r"trial: \S+ read-only on .*", vm.text())
        check(stack is not None and "(created," in stack.group(0),
              "stage 2 did not log the trial stack with a newly created store")
    print(f"e2e:   {name}: {stack.group(0).strip()}", flush=True)
    check(m["token"] == token, f"the target read token {m['token']!r}, expected {token!r}")
    check(re.fullmatch(r"/dev/loop\d+p2", m["root"]) is not None,
          f"root {m['root']!r} is not partition 2 of a loop device")
    check(re.fullmatch(r"/dev/dm-\d+", m["backing"]) is not None,
          f"the root's loop device is backed by {m['backing']!r}, not the snapshot")
    check(m["state"] == "running", f"systemctl is-system-running said {m['state']!r}")
    after = m.end()
    vm.wait_for(lambda t: t.find("choose a system to boot", after) >= 0, 240,
                "the bootstrapper's menu again after the target's reboot")
    if not immutable:
        vm.wait_for(rf"trial changes \({DEBIAN_TRIAL_MIB} MiB\)", 120,
                    "the menu showing the pending trial", on_screen=True)
    else:
        vm.wait_for(re.escape(DEBIAN_ITOOLS_TITLE), 120, "the menu's Debian rows", on_screen=True)
    timings["marker to menu again"] = vm.elapsed() - timings["start to trial marker"]
    # The snapshot stack comes apart in order too: the old root, the
    # device-mapper device, every loop device, then the host. An immutable
    # boot mounts the host read-only and writes no in-use record.
    steps = DETACH_STEPS if not immutable else [
        s.replace("in-use record \\S+ removed from", "no in-use record on") for s in DETACH_STEPS]
    check_detach(name, vm.text()[after:], "reboot", steps)
    vm.settle()


def scenario_debian_immutable(args, timings):
    """Issue 15 on the real Debian target: an immutable boot (i, RAM layer
    up to 256 MiB) writes a token and reboots into the menu; after the
    power-off the host disk is bit-for-bit unchanged (qemu-img compare;
    so is the VHD and its sha256), the VHD's root does not hold the token
    and e2fsck -fn finds it clean."""
    name = "debian-immutable"
    token = f"{name}-{os.getpid()}-{int(time.time())}"
    limit = args.timeout
    args.timeout = max(limit, DEBIAN_TIMEOUT + 120)
    try:
        vm = Vm(args, name, args.kernel, args.initrd,
                f"{BASE_CMDLINE} vhdboot.default={DEBIAN_PATH} vhdboot.timeout=-1 "
                f"vhdboot.immutable_ram={DEBIAN_IMMUTABLE_MIB}M",
                disk=args.debian_disk, allow_reboot=True)
    finally:
        args.timeout = limit
    try:
        debian_trial_boot(vm, args, timings, name, token, immutable=True)
        debian_power_off_from_menu(vm)
    finally:
        vm.close()
    overlay = os.path.join(args.workdir, f"{name}.overlay.qcow2")
    cmp = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", "raw", overlay, os.path.abspath(args.debian_disk)],
        capture_output=True, text=True,
    )
    check(cmp.returncode == 0,
          f"the immutable boot changed the host disk (qemu-img compare: {cmp.stdout.strip()})")
    found, fsck = token_in_vhd(args, name, DEBIAN_PATH, 2)
    print(f"e2e:   {name}: host disk unchanged (qemu-img compare); token in the VHD {found!r}; "
          f"root ext4: {fsck}", flush=True)
    check(found != token, f"the immutable boot's token {token!r} reached the VHD")
    check(fsck == "clean", f"e2fsck -fn of the root: {fsck}")


def debian_power_off_from_menu(vm: Vm):
    vm.send(b"p")
    vm.wait_for(r"Power off the machine now\?", 30, "the power-off question", on_screen=True)
    vm.send(b"y")
    vm.wait_exit(120, "the menu to power off")


def debian_after(args, name: str, token: str, want_token: bool):
    """The VHD and the host as the run left them: the token in the root
    (debugfs), e2fsck -fn of the root, and the host's /Images."""
    found, fsck = token_in_vhd(args, name, DEBIAN_PATH, 2)
    files = ntfs_files(args, name, args.debian_disk, "/Images")
    print(f"e2e:   {name}: token in the VHD {found!r}; root ext4: {fsck}; /Images: {' '.join(files)}",
          flush=True)
    check(fsck == "clean", f"e2fsck -fn of the root: {fsck}")
    if want_token:
        check(found == token, f"the kept trial's token {token!r} is not in the VHD (read {found!r})")
    else:
        check(found != token, f"the discarded trial's token {token!r} is in the VHD")
    check("debian.vhd.trial" not in files and "debian.vhd.trial.merging" not in files,
          f"the store or its marker is still on the host: {files}")


def debian_trial_vm(args, name: str, overlay_of=None, monitor=False) -> Vm:
    check(args.debian_disk is not None and os.path.exists(args.debian_disk),
          f"the Debian disk {args.debian_disk!r} is missing: run tests/e2e/build")
    return Vm(args, name, args.kernel, args.initrd, f"{BASE_CMDLINE} {DEBIAN_TRIAL_SETTINGS}",
              disk=args.debian_disk, allow_reboot=True, overlay_of=overlay_of, monitor=monitor)


def debian_trial_scenario(args, timings, name: str, keep: bool):
    token = f"{name}-{os.getpid()}-{int(time.time())}"
    limit = args.timeout
    args.timeout = max(limit, DEBIAN_TIMEOUT + 300)
    try:
        vm = debian_trial_vm(args, name)
    finally:
        args.timeout = limit
    try:
        debian_trial_boot(vm, args, timings, name, token)
        if keep:
            trial_action(vm, args, b"m", r"Keep the trial changes: merge them into debian\.vhd\?",
                         r"Kept the trial changes", timings, "keep")
        else:
            trial_action(vm, args, b"x", r"Discard the trial changes of debian\.vhd\?",
                         r"Discarded the trial changes", timings, "discard")
        check(not re.search(r"trial changes \(", vm.screen()),
              "the image still shows trial changes")
        debian_power_off_from_menu(vm)
    finally:
        vm.close()
    debian_after(args, name, token, want_token=keep)


def scenario_debian_trial_keep(args, timings):
    """Issue 15 on the real Debian target: a trial boot writes a token and
    reboots into the menu; m, y merges the store into debian.vhd; the token
    is then in the VHD's root (read from the test side), e2fsck -fn finds
    the root clean, and the .trial file and its marker are gone."""
    debian_trial_scenario(args, timings, "debian-trial-keep", keep=True)


def scenario_debian_trial_discard(args, timings):
    """Issue 15 on the real Debian target: a trial boot writes a token and
    reboots into the menu; x, y deletes the store; the VHD's root never
    got the token, e2fsck -fn finds it clean, the .trial file is gone."""
    debian_trial_scenario(args, timings, "debian-trial-discard", keep=False)


def scenario_debian_trial_cut(args, timings):
    """Issue 15 on the real Debian target: QEMU is killed while the merge
    runs. The next start says the merge was cut short; m, y finishes it;
    the token is in the VHD, e2fsck -fn finds the root clean, and the store
    and marker are gone."""
    name = "debian-trial-cut"
    token = f"{name}-{os.getpid()}-{int(time.time())}"
    limit = args.timeout
    args.timeout = max(limit, DEBIAN_TIMEOUT + 300)
    try:
        vm = debian_trial_vm(args, name, monitor=True)
    finally:
        args.timeout = limit
    try:
        debian_trial_boot(vm, args, timings, name, token)
        # Unthrottled, the merge of a Debian boot's changes takes about a
        # second; at 1 MB/s of disk writes it runs long enough for the cut
        # to land in its middle.
        vm.monitor("block_set_io_throttle virtio0 0 0 1048576 0 0 0")
        vm.send(b"m")
        vm.wait_for(r"Keep the trial changes: merge them into debian\.vhd\?", 30,
                    "the question before keeping", on_screen=True)
        vm.settle()
        vm.send(b"y")
        vm.wait_for(r"Merging the trial changes into debian\.vhd: (\d+)%", 120,
                    "the merge's progress on the status line", on_screen=True)
        # Two polls later the kernel has merged part of it, and the menu
        # still says it runs: the power cut lands in the middle.
        progress = vm.wait_for(r"Merging the trial changes into debian\.vhd: ([1-9]\d?)% "
                               r"\((\d+) MiB left\)", 120, "the merge past 0 %", on_screen=True)
        vm.proc.kill()
        print(f"e2e:   {name}: QEMU killed at {progress.group(0)}", flush=True)
    finally:
        vm.close()
    vm = debian_trial_vm(args, f"{name}-again", overlay_of=name)
    try:
        # The default (debian.vhd) cannot boot until the merge is done: the
        # menu says why in a dialog, and the status line says what to do.
        vm.wait_for(r"the merge of its trial changes was cut", 180,
                    "the dialog saying why the default cannot boot", on_screen=True)
        vm.wait_for(r"trial changes was cut short: select it and press m", 30,
                    "the status line offering to finish the merge", on_screen=True)
        vm.settle()
        vm.key("esc")
        vm.settle()
        vm.key("home")
        vm.settle(quiet=0.5)
        for _ in range(DEBIAN_ROWS.index(DEBIAN_ITOOLS_TITLE)):
            vm.key("down")
            vm.settle(quiet=0.5)
        trial_action(vm, args, b"m", r"Finish merging the trial changes into debian\.vhd\?",
                     r"Kept the trial changes", timings, "resumed merge")
        debian_power_off_from_menu(vm)
    finally:
        vm.close()
    debian_after(args, name, token, want_token=True)


def scenario_debian_itools(args, timings):
    # The UKI with Debian's own initramfs-tools image; the target reboots,
    # the menu comes back and powers the machine off.
    return debian_scenario(args, timings, "debian-itools", DEBIAN_ITOOLS_TITLE, "debian-itools",
                           then="reboot")


def scenario_debian_dracut(args, timings):
    return debian_scenario(args, timings, "debian-dracut", DEBIAN_DRACUT_TITLE, "debian-dracut")


def scenario_debian_bls(args, timings):
    # Arch-style: a BLS type #1 entry on the ESP, its kernel and initramfs
    # (initramfs-tools) files beside it.
    return debian_scenario(args, timings, "debian-bls", DEBIAN_BLS_TITLE, "debian-bls")


def scenario_debian_bootdir(args, timings):
    # No ESP: Debian's /boot/vmlinuz-* and /boot/initrd.img-* on the ext4
    # root, titled from its /etc/os-release. The command line is derived
    # (root=UUID=... ro); the console and the token are added in the editor.
    return debian_scenario(args, timings, "debian-bootdir", DEBIAN_OS_RELEASE_TITLE, "",
                           path=DEBIAN_BOOTDIR_PATH, root_part=1,
                           extra_words="console=ttyS0 systemd.show_status=0")


def scenario_debian_carry(args, timings):
    # dracut without loop, ntfs3 and exfat (as a host-only image is): stage 1
    # must carry them from the image's /lib/modules and say so. The target
    # reboots; from the menu that comes back the dracut image (with its own
    # loop) boots and powers off: dracut's shutdown is judged after a reboot
    # and after a poweroff in one scenario (debian-itools does both for
    # initramfs-tools with debian-bls).
    vm = debian_scenario(args, timings, "debian-carry", DEBIAN_CARRY_TITLE, "debian-carry",
                         then="reboot", then_boot=(DEBIAN_DRACUT_TITLE, "debian-dracut"))
    text = vm.text()
    check(any("carried" in line and "loop" in line for line in text.split("\n")),
          "the console names no carried modules (a line with 'carried' and 'loop')")
    return vm


def scenario_debian_removable(args, timings):
    """Issue 13, item 1: Windows is hibernated on an internal disk (the
    hibernation fixture, a virtio disk), and the Debian host disk is a USB
    stick (usb-storage, removable). The stick's volume is badged
    [removable] and is not held by the internal disk's hibernation: its
    initramfs-tools UKI boots, the target's shutdown detaches from
    /dev/sda1, and the token persists; the hibernated disk is unchanged."""
    hiber = os.path.abspath(args.hiber_disk)

    def badges(vm):
        vm.wait_for(r"E2E-HIBER .*\[hibernated\]", 30, "E2E-HIBER's [hibernated] badge", on_screen=True)
        vm.wait_for(r"E2E-DEBIAN .*\[removable\]", 30, "the USB stick's [removable] badge",
                    on_screen=True)
        rows = [line for line in vm.screen().split("\n") if "E2E-DEBIAN" in line]
        check(all("hibernated" not in line for line in rows),
              f"the removable E2E-DEBIAN is badged hibernated: {rows!r}")
        print(f"e2e:   debian-removable: {' '.join(rows[0].split()) if rows else 'no E2E-DEBIAN row'}",
              flush=True)

    vm = debian_scenario(args, timings, "debian-removable", DEBIAN_ITOOLS_TITLE, "debian-itools",
                         host="/dev/sda1", before_boot=badges, extra_disks=[hiber],
                         usb_removable=True)
    hraw = extra_overlay_to_raw(args, "debian-removable", 0)
    try:
        compare_hashes("debian-removable", hiber, hraw)
    finally:
        os.unlink(hraw)
    return vm


BOOTCTL_LINE = re.compile(r"VHDBOOT-BOOTCTL (?P<line>[^\r\n]*)")


def scenario_ovmf_debian(args, timings):
    """Issue 14: OVMF starts vhdboot.efi (ESP_SERIAL), the menu lists the
    real Debian disk, and the initramfs-tools UKI boots with e2e.bootctl
    added in the editor. make-debian-disk's wrapper around the marker unit
    then prints `bootctl status` and `systemd-analyze` in the target: bootctl
    must name vhdboot as the boot loader (LoaderInfo) and show the selected
    entry (LoaderEntrySelected) as the id the details pane showed before
    the boot."""
    token = f"ovmf-debian-{os.getpid()}-{int(time.time())}"
    fw = Ovmf(args, "ovmf-debian", args.esp_serial or build_env_value("ESP_SERIAL"))
    check(args.debian_disk is not None and os.path.exists(args.debian_disk),
          f"the Debian disk {args.debian_disk!r} is missing: run tests/e2e/build")
    limit = args.timeout
    args.timeout = max(limit, DEBIAN_TIMEOUT)
    try:
        vm = Vm(args, "ovmf-debian", None, None, None, disk=args.debian_disk, firmware=fw)
    finally:
        args.timeout = limit
    try:
        # ESP_SERIAL's default is the NTFS image of the other host disk,
        # which is not here: the menu opens with that reason, and a key
        # returns to it.
        vm.wait_for(r"Press any key to return to the menu", args.timeout,
                    "the dialog saying the default /Images/ntfs-linux.vhd was not found", on_screen=True)
        check("ntfs-linux.vhdwasnotfound" in squeezed(vm.screen()),
              "the dialog does not say the default image was not found")
        vm.settle()
        vm.key("esc")
        wait_menu(vm, args, timings, [DEBIAN_ITOOLS_TITLE, DEBIAN_BLS_TITLE])
        check_started_by_firmware(vm)
        vm.settle()
        shown = select_row(vm, DEBIAN_ITOOLS_TITLE)
        m = re.search(r"Entryid:?(.+?-[0-9a-f]{8})(?:Commandline|$)", squeezed(details(shown)))
        check(m is not None, f"the details pane shows no entry id:\n{details(shown)}")
        shown_id = m.group(1)
        print(f"e2e:   ovmf-debian: the menu shows entry id {shown_id}", flush=True)
        vm.send(b"e")
        vm.wait_for(r"Esc cancel", 30, "the command-line editor", on_screen=True)
        vm.key("end")
        vm.send(f" e2e.bootctl e2e.token={token}".encode())
        vm.settle()
        vm.key("enter")
        timings["keys"] = vm.elapsed() - timings["start to menu"]
        vm.wait_for(r"VHDBOOT-BOOTCTL-END", DEBIAN_TIMEOUT, "the target's bootctl status lines")
        timings["start to bootctl"] = vm.elapsed()
        lines = [b.group("line").rstrip() for b in BOOTCTL_LINE.finditer(vm.text())]
        print("\n".join(f"e2e:   ovmf-debian: bootctl: {line}" for line in lines), flush=True)
        fields = {}
        for line in lines:
            key, sep, value = line.strip().partition(": ")
            if sep and key not in fields:
                fields[key] = value.strip()
        check(re.fullmatch(r"vhdboot \d+\.\d+\.\d+\S*", fields.get("Product", "")) is not None,
              f"bootctl status does not name vhdboot as the boot loader (Product: {fields.get('Product')!r})")
        check(fields.get("Current Entry") == shown_id,
              f"bootctl's current entry is {fields.get('Current Entry')!r}, "
              f"not the id the menu showed, {shown_id!r}")
        # LoaderDevicePartUUID and LoaderImageIdentifier (set by the stub
        # vhdboot.efi is made of): the ESP partition and the removable-media
        # path OVMF started vhdboot.efi from.
        esp = json.loads(subprocess.run(["sfdisk", "--json", fw.esp], check=True, capture_output=True,
                                        text=True).stdout)["partitiontable"]["partitions"][0]["uuid"]
        check(fields.get("Partition", "").lower() == f"/dev/disk/by-partuuid/{esp.lower()}",
              f"bootctl's loader partition is {fields.get('Partition')!r}, not the ESP's {esp}")
        check(fields.get("Loader", "").endswith("/EFI/BOOT/BOOTX64.EFI"),
              f"bootctl's loader image is {fields.get('Loader')!r}, not /EFI/BOOT/BOOTX64.EFI")
        # LoaderTimeInitUSec and LoaderTimeExecUSec: systemd-analyze names
        # a loader share of the boot.
        check(any(re.search(r"Startup finished in .*\(loader\)", line) for line in lines),
              "systemd-analyze in the target shows no loader time (LoaderTime*USec)")
        m = vm.wait_for(DEBIAN_MARKER, DEBIAN_TIMEOUT, "the Debian target's VHDBOOT-DEBIAN-OK marker")
        check_debian_marker(m, DEBIAN_PATH, "debian-itools", token, 2)
        timings["start to marker"] = vm.elapsed()
        vm.wait_exit(180, "the target to power off")
    finally:
        vm.close()


# Issue 13, item 6: a grown image stays writable. The growth and the
# partition change are made from the test side, the filesystem grow and
# the write from the target (see scenario_debian_grow).
GROW_MIB = 256
GROW_TAIL_MIB = 64
GROW_MARKER = re.compile(
    r"VHDBOOT-DEBIAN-GROW root=(?P<root>\S*) sectors=(?P<sectors>\d*) blocks_before=(?P<before>\d*) "
    r"blocks_after=(?P<after>\d*) resize=(?P<resize>\d*) dd=(?P<dd>\d*) sha256=(?P<sha>\w*) "
    r"readback=(?P<back>\w*)\r?\n")
# Replaces /usr/local/sbin/vhdboot-e2e in the scenario's copy of the image
# (the original becomes vhdboot-e2e-marker and runs afterwards). The
# target has resize2fs but no sfdisk or growpart, so the partition was
# grown before the boot. The filesystem is grown online to 64 MiB short of
# its partition; those last 64 MiB, the end of the grown disk, get random
# bytes written with O_DIRECT and read back with O_DIRECT.
GROW_SCRIPT = """#!/bin/sh
# debian-grow (tests/e2e/driver.py): grow, write the tail, then the marker.
root=$(findmnt -no SOURCE /)
part=${root#/dev/}
sectors=$(cat /sys/class/block/$part/size)
tail=$((TAIL_MIB * 1048576))
at=$((sectors * 512 - tail))
blocks() { dumpe2fs -h "$root" 2>/dev/null | sed -n 's/^Block count: *//p'; }
before=$(blocks)
resize2fs "$root" "$((at / 4096 * 4))K" >/run/grow-resize.log 2>&1; resize=$?
[ "$resize" = 0 ] || cat /run/grow-resize.log >/dev/console
after=$(blocks)
head -c "$tail" /dev/urandom >/run/grow.bin
sum=$(sha256sum </run/grow.bin | cut -c1-64)
dd if=/run/grow.bin of="$root" bs=1M seek="$at" oflag=direct,seek_bytes conv=notrunc status=none; wrote=$?
rm -f /run/grow.bin
sync
back=$(dd if="$root" bs=1M skip="$at" count=TAIL_MIB iflag=direct,skip_bytes status=none | sha256sum | cut -c1-64)
echo "VHDBOOT-DEBIAN-GROW root=$root sectors=$sectors blocks_before=$before blocks_after=$after resize=$resize dd=$wrote sha256=$sum readback=$back" >/dev/console
exec /usr/local/sbin/vhdboot-e2e-marker
""".replace("TAIL_MIB", str(GROW_TAIL_MIB))


def ntfs_file_sizes(ntfs_dev: str, path: str):
    """(data size, initialized size i.e. valid data length, sparse) of a
    file's unnamed $DATA, read by ntfsinfo from an unmounted volume."""
    out = subprocess.run(["ntfsinfo", "-F", path, ntfs_dev], capture_output=True, text=True).stdout
    data = re.findall(r"Data size:\s+(\d+) \(0x[0-9a-f]+\)\s*\n\s*Allocated size:", out)
    valid = re.findall(r"Initialized size:\s+(\d+)", out)
    check(bool(data) and bool(valid), f"ntfsinfo -F {path} printed no $DATA sizes: {out[-400:]!r}")
    return int(data[-1]), int(valid[-1]), "SPARSE_FILE" in out


def grow_image_copy(args, name: str) -> str:
    """A copy of the Debian disk with debian.vhd grown by GROW_MIB the way
    a user grows one: `truncate` and `vhdboot raw2vhd` over ntfs-3g, then
    the backup GPT moved to the new end and the root partition grown to
    it (sfdisk on a loop device that stops before the footer), and
    GROW_SCRIPT put in the image's root with debugfs. debian-bootdir.vhd
    is deleted first: the volume's slack is smaller than the growth.
    Prints the file's NTFS sizes after the truncate and after raw2vhd."""
    import tempfile
    binary = build_env_value("VHDBOOT")
    check(binary is not None and os.path.exists(binary),
          f"the vhdboot binary {binary!r} (VHDBOOT in target/e2e/env) is missing: run tests/e2e/build")
    disk = os.path.join(args.workdir, f"{name}.disk.img")
    subprocess.run(["cp", "--sparse=always", args.debian_disk, disk], check=True)
    (_, offset, size) = partitions(disk)[0]
    mnt = tempfile.mkdtemp(prefix=f"{name}.", dir=args.workdir)
    ntfs = subprocess.run(["losetup", "-f", "--show", "-o", str(offset), "--sizelimit", str(size), disk],
                          check=True, capture_output=True, text=True).stdout.strip()
    inner = []
    mounted = False
    try:
        subprocess.run(["ntfs-3g", ntfs, mnt], check=True)
        mounted = True
        os.unlink(mnt + DEBIAN_BOOTDIR_PATH)
        vhd = mnt + DEBIAN_PATH
        old_len = os.path.getsize(vhd)
        subprocess.run(["truncate", "-s", f"+{GROW_MIB}M", vhd], check=True)
        subprocess.run(["umount", mnt], check=True)
        mounted = False
        data, valid, sparse = ntfs_file_sizes(ntfs, DEBIAN_PATH)
        print(f"e2e:   {name}: after truncate +{GROW_MIB}M (ntfs-3g): data size {data}, valid data "
              f"length {valid}, sparse: {sparse}", flush=True)
        subprocess.run(["ntfs-3g", ntfs, mnt], check=True)
        mounted = True
        r2v = subprocess.run([binary, "raw2vhd", vhd], capture_output=True, text=True)
        check(r2v.returncode == 0, f"vhdboot raw2vhd on the grown image failed: {r2v.stdout}{r2v.stderr}")
        for line in (r2v.stdout + r2v.stderr).splitlines():
            if "older VHD footer" in line or "was a hole" in line:
                print(f"e2e:   {name}: raw2vhd: {line.split(': ', 1)[-1]}", flush=True)
        new_len = os.path.getsize(vhd)
        check(new_len == old_len + GROW_MIB * 1048576 + 512,
              f"the grown image is {new_len} bytes, expected {old_len + GROW_MIB * 1048576 + 512}")
        # The partition table, on a loop device that stops before the
        # footer (the disk the target sees): backup GPT to the new end,
        # root (partition 2, the last) grown to fill the disk.
        vloop = subprocess.run(["losetup", "-f", "--show", "--sizelimit", str(new_len - 512), vhd],
                               check=True, capture_output=True, text=True).stdout.strip()
        inner.append(vloop)
        subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", "--relocate", "gpt-bak-std", vloop],
                       check=True)
        subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", "-N", "2", vloop],
                       input=", +\n", text=True, check=True)
        (_, poff, psize) = partitions(vloop)[1]
        rloop = subprocess.run(["losetup", "-f", "--show", "-o", str(poff), "--sizelimit", str(psize), vhd],
                               check=True, capture_output=True, text=True).stdout.strip()
        inner.append(rloop)
        script = os.path.join(args.workdir, f"{name}.vhdboot-e2e")
        with open(script, "w") as f:
            f.write(GROW_SCRIPT)
        # debugfs' ln and unlink leave link counts alone: together, a rename.
        cmds = ("ln /usr/local/sbin/vhdboot-e2e /usr/local/sbin/vhdboot-e2e-marker\n"
                "unlink /usr/local/sbin/vhdboot-e2e\n"
                f"write {script} /usr/local/sbin/vhdboot-e2e\n"
                "sif /usr/local/sbin/vhdboot-e2e mode 0100755\n")
        subprocess.run(["debugfs", "-w", "-f", "-", rloop], input=cmds, text=True, check=True,
                       capture_output=True)
        listed = subprocess.run(["debugfs", "-R", "ls -l /usr/local/sbin", rloop],
                                capture_output=True, text=True).stdout
        check("vhdboot-e2e-marker" in listed and "100755" in listed,
              f"debugfs did not put the grow script in place: {listed!r}")
        print(f"e2e:   {name}: root partition {psize // 1048576} MiB after the grow "
              f"(image {new_len} bytes)", flush=True)
    finally:
        for loop in reversed(inner):
            subprocess.run(["losetup", "-d", loop], check=False)
        if mounted:
            subprocess.run(["umount", mnt], check=False)
    try:
        data, valid, sparse = ntfs_file_sizes(ntfs, DEBIAN_PATH)
        print(f"e2e:   {name}: after raw2vhd: data size {data}, valid data length {valid}, "
              f"sparse: {sparse}", flush=True)
        check(valid == data and not sparse,
              f"after raw2vhd the valid data length {valid} does not reach the end ({data}), "
              f"or the file is still sparse ({sparse})")
    finally:
        subprocess.run(["losetup", "-d", ntfs], check=False)
        os.rmdir(mnt)
    return disk


def scenario_debian_grow(args, timings):
    """Issue 13, item 6: debian.vhd grown by 256 MiB (grow_image_copy);
    the initramfs-tools UKI boots; the target grows its root filesystem
    online, writes 64 MiB with O_DIRECT at the end of the grown disk,
    reads them back, and powers off. From the host side afterwards: the
    same bytes at the end of the VHD's root partition, the filesystem's
    new size, e2fsck clean, the token there."""
    t0 = time.monotonic()
    disk = grow_image_copy(args, "debian-grow")
    timings["grow the copy"] = time.monotonic() - t0
    token = f"debian-grow-{os.getpid()}-{int(time.time())}"
    limit = args.timeout
    args.timeout = max(limit, DEBIAN_TIMEOUT)
    try:
        # The copy is this scenario's own: no overlay.
        vm = Vm(args, "debian-grow", args.kernel, args.initrd,
                f"{BASE_CMDLINE} vhdboot.default=/Images/debian.vhd vhdboot.timeout=-1",
                disk=disk, overlay=False)
    finally:
        args.timeout = limit
    try:
        debian_pick(vm, args, timings, DEBIAN_ITOOLS_TITLE, f"e2e.token={token} e2e.then=poweroff")
        g = vm.wait_for(GROW_MARKER, DEBIAN_TIMEOUT, "the target's VHDBOOT-DEBIAN-GROW line")
        print(f"e2e:   debian-grow: {g.group(0).strip()}", flush=True)
        m = vm.wait_for(DEBIAN_MARKER, DEBIAN_TIMEOUT, "the Debian target's VHDBOOT-DEBIAN-OK marker")
        timings["start to marker"] = vm.elapsed()
        check_debian_marker(m, DEBIAN_PATH, "debian-itools", token, 2)
        vm.wait_exit(180, "the target to power off")
        timings["to power off"] = vm.elapsed()
        check_detach("debian-grow", vm.text()[m.end():], "poweroff")
    finally:
        vm.close()
    check(g["resize"] == "0", "resize2fs could not grow the mounted root (its output is above)")
    check(int(g["after"]) > int(g["before"]),
          f"the root filesystem did not grow ({g['before']} -> {g['after']} blocks)")
    check(g["dd"] == "0", "the O_DIRECT write of the last 64 MiB failed in the target")
    check(g["sha"] == g["back"], "the last 64 MiB read back in the target differ from what it wrote")
    t0 = time.monotonic()
    with vhd_root_readonly(args, "debian-grow", disk, DEBIAN_PATH, 2) as (vhd, root, poff, psize):
        check(psize == int(g["sectors"]) * 512,
              f"the root partition is {psize} bytes on the host, {int(g['sectors']) * 512} in the target")
        tail = sha256_range(vhd, poff + psize - GROW_TAIL_MIB * 1048576, GROW_TAIL_MIB * 1048576)
        check(tail == g["sha"], f"the last {GROW_TAIL_MIB} MiB of the root partition read from the host "
              f"({tail}) are not what the target wrote ({g['sha']})")
        stats = subprocess.run(["debugfs", "-R", "stats", root], capture_output=True, text=True).stdout
        blocks = re.search(r"Block count:\s+(\d+)", stats)
        check(blocks is not None and blocks.group(1) == g["after"],
              f"the root filesystem has {blocks.group(1) if blocks else '?'} blocks on the host, "
              f"{g['after']} in the target")
        found, fsck = token_and_fsck(root)
    timings["verify"] = time.monotonic() - t0
    print(f"e2e:   debian-grow: the last {GROW_TAIL_MIB} MiB match from the host side (sha256 {tail[:16]}...); "
          f"root {g['before']} -> {g['after']} blocks; token {found!r}; root ext4: {fsck}", flush=True)
    check(found == token, f"the token {token!r} is not in the grown image (read {found!r})")
    check(fsck == "clean", f"the grown root filesystem is not clean: {fsck}")
    os.unlink(disk)
    return vm


SCENARIOS = {
    "direct": scenario_direct,
    "default": scenario_default,
    "pick": scenario_pick,
    "edit": scenario_edit,
    "readonly": scenario_readonly,
    "silent": scenario_silent,
    "shutdown": scenario_shutdown,
    "crash": scenario_crash,
    "faults": scenario_faults,
    "empty": scenario_empty,
    "panic": scenario_panic,
    "panic-locked": scenario_panic_locked,
    "late": scenario_late,
    "4kn": scenario_4kn,
    "shell-keys": scenario_shell_keys,
    "lock": scenario_lock,
    "default-broken": scenario_default_broken,
    "hostile": scenario_hostile,
    "kexec-refused": scenario_kexec_refused,
    "confirm-cancel": scenario_confirm_cancel,
    "exec-fails": scenario_exec_fails,
    "ovmf": scenario_ovmf,
    "ovmf-vga": scenario_ovmf_vga,
    "keymap-de": scenario_keymap_de,
    "ovmf-efivars": scenario_ovmf_efivars,
    "ovmf-debian": scenario_ovmf_debian,
    "preload-default": scenario_preload_default,
    "host-safety": scenario_host_safety,
    "hibernation": scenario_hibernation,
    "preload-pick": scenario_preload_pick,
    "boot-dir": scenario_boot_dir,
    "btrfs-root": scenario_btrfs_root,
    "xfs-root": scenario_xfs_root,
    "repair": scenario_repair,
    "repair-write": scenario_repair_write,
    "carry": scenario_carry,
    "immutable": scenario_immutable,
    "trial": scenario_trial,
    "trial-keep": scenario_trial_keep,
    "trial-discard": scenario_trial_discard,
    "debian-trial-keep": scenario_debian_trial_keep,
    "debian-trial-discard": scenario_debian_trial_discard,
    "debian-trial-cut": scenario_debian_trial_cut,
    "debian-immutable": scenario_debian_immutable,
    "debian-itools": scenario_debian_itools,
    "debian-dracut": scenario_debian_dracut,
    "debian-bootdir": scenario_debian_bootdir,
    "debian-bls": scenario_debian_bls,
    "debian-removable": scenario_debian_removable,
    "debian-carry": scenario_debian_carry,
    "debian-grow": scenario_debian_grow,
}
# The scenarios run when none is named, the longest first: they run two
# (one per CPU) at a time, and a long one started last would run alone.
DEFAULT_SCENARIOS = ["debian-carry", "ovmf-efivars", "debian-grow", "ovmf-debian",
                     "debian-trial-keep", "debian-trial-cut",
                     "debian-immutable", "debian-trial-discard", "debian-itools", "debian-bls",
                     "debian-removable", "debian-bootdir", "direct", "default", "pick", "edit",
                     "readonly", "silent",
                     "shutdown", "faults", "empty", "panic", "late", "4kn", "shell-keys",
                     "kexec-refused", "confirm-cancel", "exec-fails", "default-broken", "hostile",
                     "ovmf", "ovmf-vga", "preload-default", "preload-pick", "boot-dir",
                     "btrfs-root", "xfs-root", "repair", "repair-write", "host-safety",
                     "hibernation", "carry", "crash", "immutable", "trial", "trial-keep",
                     "trial-discard", "lock", "keymap-de", "panic-locked"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernel", required=True, help="the bootstrapper kernel (bzImage)")
    p.add_argument("--initrd", required=True, help="the bootstrapper initramfs")
    p.add_argument("--disk", required=True, help="the raw host disk")
    p.add_argument("--uki", required=True, help="the NTFS image's UKI (for 'direct')")
    p.add_argument("--fault-disk", required=True, help="tests/e2e/make-fault-disk's fault disk")
    p.add_argument("--safety-disk", help="make-safety-disk's safety disk (default: SAFETY_DISK in target/e2e/env)")
    p.add_argument("--hiber-disk", help="make-safety-disk's hibernated disk (default: HIBER_DISK in target/e2e/env)")
    p.add_argument("--blank-disk", required=True, help="a disk with no filesystem")
    p.add_argument("--disk-4kn", required=True, help="the host disk again, with 4096-byte sectors")
    p.add_argument("--hostile-disk", required=True, help="tests/e2e/make-hostile-disk's disk")
    p.add_argument("--esp-serial", help="the ESP disk for 'ovmf' (default: ESP_SERIAL in target/e2e/env)")
    p.add_argument("--carry-disk", help="the host disk for 'carry' (default: CARRY_DISK in target/e2e/env)")
    p.add_argument("--esp-vga", help="the ESP disk for 'ovmf-vga' (default: ESP_VGA in target/e2e/env)")
    p.add_argument("--esp-saved", help="the ESP disk for 'ovmf-efivars' (default: ESP_SAVED in target/e2e/env)")
    p.add_argument("--debian-disk", help="tests/e2e/make-debian-disk's disk for the debian-* scenarios "
                   "(default: DEBIAN_DISK in target/e2e/env)")
    p.add_argument("--workdir", required=True, help="overlays and serial logs go here")
    p.add_argument("--timeout", type=float, default=180.0, help="per-scenario limit in seconds")
    p.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                   help="run only these (repeatable); default: all, in order")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("E2E_JOBS", "0")) or os.cpu_count() or 1,
                   help="scenarios run at once (default: E2E_JOBS, else the number of CPUs)")
    args = p.parse_args()
    args.safety_disk = args.safety_disk or build_env_value("SAFETY_DISK")
    args.hiber_disk = args.hiber_disk or build_env_value("HIBER_DISK")
    args.debian_disk = args.debian_disk or build_env_value("DEBIAN_DISK")
    self_test()
    os.makedirs(args.workdir, exist_ok=True)
    names = args.scenario or DEFAULT_SCENARIOS
    jobs = max(1, args.jobs)
    print(f"e2e: {len(names)} scenario(s), {jobs} at a time", flush=True)
    results = []
    failed = []
    # Each scenario is one QEMU with one vCPU under TCG, so the machine's
    # cores can run that many at once; every scenario keeps its files under
    # its own name in the workdir. A scenario gets its own copy of args,
    # since some raise args.timeout for their run.
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = {pool.submit(run_scenario, copy.copy(args), name): name for name in names}
        for done in concurrent.futures.as_completed(pending):
            name, total, error = done.result()
            if error is None:
                results.append((name, total))
            else:
                failed.append(name)
    order = {n: i for i, n in enumerate(names)}
    results.sort(key=lambda r: order[r[0]])
    if failed:
        print(f"e2e: failed: {', '.join(sorted(failed, key=order.get))}", file=sys.stderr)
    else:
        print("e2e: all passed: " + ", ".join(f"{n} {t:.1f} s" for n, t in results))
    # The plain closing line CI reads as the suite's count.
    print(f"e2e: {len(results)} passed, {len(failed)} failed")
    return 1 if failed else 0


# One lock for the multi-line reports, so two scenarios ending together do
# not interleave their serial tails.
REPORT_LOCK = threading.Lock()


def run_scenario(args, name: str):
    """Runs one scenario; returns (name, seconds, None) or (name, seconds,
    the failure's text). Only a Failure is a scenario's verdict; anything
    else is a harness bug and is reported as a failure too, with its trace."""
    timings: dict = {}
    print(f"e2e: {name} ...", flush=True)
    started = time.monotonic()
    try:
        SCENARIOS[name](args, timings)
    except Exception as e:  # noqa: BLE001 - every error ends this scenario only
        total = time.monotonic() - started
        what = str(e) if isinstance(e, Failure) else "".join(traceback.format_exception(e))
        with REPORT_LOCK:
            print(f"e2e: FAIL {name} after {total:.1f} s: {what}", file=sys.stderr, flush=True)
            log = os.path.join(args.workdir, f"{name}.serial.log")
            if os.path.exists(log):
                print(f"--- {name}: last 60 lines of serial output, as a terminal shows them ({log}) ---",
                      file=sys.stderr)
                print(last_lines(log, 60), file=sys.stderr, flush=True)
        return name, total, what
    total = time.monotonic() - started
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    print(f"e2e: PASS {name}: {parts}, total {total:.1f} s", flush=True)
    return name, total, None


if __name__ == "__main__":
    sys.exit(main())
