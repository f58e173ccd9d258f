"""Run the emulated Pi's Python: ``QEMU_CPU=cortex-a72 qemu-aarch64-static -L ROOT ROOT/usr/bin/python3.11``.

qemu-user translates one aarch64 process at a time and passes its system calls to the host kernel, so the
guest shares the host's network (a broker on 127.0.0.1 is reachable) and file system (``-L ROOT`` only
redirects absolute paths that exist inside ROOT: the dynamic loader, libraries, ``/proc/cpuinfo``).
``QEMU_CPU=cortex-a72`` limits the instruction set to the Raspberry Pi 4's core (ARMv8.0-A with CRC32, no
ARMv8.1 atomics, no ARMv8.2 dot product or fp16): code built for a newer core dies with SIGILL, as on a Pi.

Emulated timings say nothing about a Pi's speed and are never reported.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pi_root import PYTHON, tool

PI4_CPU = "cortex-a72"

# sdot v0.4s, v1.16b, v2.16b ; ret  -- the ARMv8.2 dot-product instruction (Cortex-A76 has it, the A72 not),
# which int8 kernels built for newer cores use. Executed from an mmap'ed page through ctypes.
NEWER_CORE_SNIPPET = """
import ctypes, mmap
code = bytes.fromhex("2094824e" "c0035fd6")
page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(code)
ctypes.CFUNCTYPE(None)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()
print("sdot executed")
"""


class EmulatedCrash(RuntimeError):
    """The emulated process died from a signal or exited non-zero."""


def describe_exit(returncode: int) -> str:
    """Human words for a process exit status, with what a signal means on a Pi."""
    if returncode >= 0:
        return f"exit status {returncode}"
    sig = -returncode
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    hints = {
        signal.SIGILL: "illegal instruction: the code uses an instruction the Raspberry Pi 4's Cortex-A72 "
                       "(ARMv8.0-A + CRC32) does not have, e.g. a wheel built for ARMv8.2 (dot product, fp16) "
                       "or with LSE atomics",
        signal.SIGSEGV: "segmentation fault in native code",
        signal.SIGBUS: "bus error (misaligned or unmapped access) in native code",
        signal.SIGABRT: "aborted by native code (assertion or C++ exception)",
        signal.SIGKILL: "killed (out of memory, or stopped by the test after a timeout)",
    }
    hint = hints.get(sig, "")
    return f"killed by {name}" + (f" ({hint})" if hint else "")


@dataclass
class EmulatedPython:
    """The aarch64 Python 3.11 of ``root`` under qemu-user with a given CPU model and import path."""
    root: Path
    pythonpath: list[Path] = field(default_factory=list)
    cpu: str = PI4_CPU

    def command(self, *args: str) -> list[str]:
        return [tool("qemu-aarch64-static"), "-L", str(self.root), str(self.root / PYTHON), *map(str, args)]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHON", "QEMU_", "VIRTUAL_ENV", "OMP_", "TF_"))}
        env.update(QEMU_CPU=self.cpu, PYTHONPATH=os.pathsep.join(str(p) for p in self.pythonpath),
                   PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        env.update(extra or {})
        return env

    def run(self, *args: str, timeout: float = 300, cwd: Path | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run to completion, capturing output. ``check``: raise EmulatedCrash (with the output) on failure."""
        try:
            proc = subprocess.run(self.command(*args), env=self.env(env), cwd=cwd, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise EmulatedCrash(f"emulated `python3.11 {' '.join(map(str, args))[:200]}` did not finish within "
                                f"{timeout:.0f} s; output so far:\n{(exc.stderr or b'')[-3000:]!r}") from None
        if check and proc.returncode != 0:
            raise EmulatedCrash(self.failure_message(args, proc.returncode, proc.stdout + proc.stderr))
        return proc

    def popen(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
        """Start in its own process group (stop it with :func:`stop`)."""
        return subprocess.Popen(self.command(*args), env=self.env(env), cwd=cwd, start_new_session=True, **kw)

    @property
    def where(self) -> str:
        return f"emulated aarch64, QEMU_CPU={self.cpu}"

    def failure_message(self, args, returncode: int, output: str) -> str:
        return (f"Python ({self.where}) `python3.11 {' '.join(map(str, args))[:300]}` "
                f"failed: {describe_exit(returncode)}\n--- output (last 4000 chars) ---\n{output[-4000:]}")


@dataclass
class HostPython(EmulatedPython):
    """The x86 reference: the host's base Python 3.11 without site-packages (``-S``), with exactly the
    import path given (the same requirement set installed for x86_64), so only the CPU differs from the Pi."""
    root: Path = Path("/")
    cpu: str = "host"

    def command(self, *args: str) -> list[str]:
        return [getattr(sys, "_base_executable", sys.executable), "-S", *map(str, args)]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = super().env(extra)
        env.pop("QEMU_CPU", None)
        return env

    @property
    def where(self) -> str:
        return "host x86_64"


def stop(proc: subprocess.Popen, timeout: float = 20) -> int:
    """SIGTERM, then SIGKILL after ``timeout``, of the process group ``proc`` leads. Returns its exit status."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
    return proc.returncode
