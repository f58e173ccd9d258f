"""The emulation is a Raspberry Pi 4's CPU: aarch64 Python, the Pi's /proc/cpuinfo, and the Cortex-A72's
instruction set enforced (an ARMv8.2 instruction dies with SIGILL, as it would on a Pi).

Only the helpers' pure logic runs without the ``pi`` marker."""
from __future__ import annotations

import signal

import pytest

import pi_root
from pi_runner import NEWER_CORE_SNIPPET, EmulatedCrash, describe_exit


def test_exit_descriptions_say_what_a_signal_means_on_a_pi():
    assert describe_exit(3) == "exit status 3"
    text = describe_exit(-signal.SIGILL)
    assert text.startswith("killed by SIGILL") and "Cortex-A72" in text
    assert describe_exit(-signal.SIGSEGV).startswith("killed by SIGSEGV (segmentation fault")


def test_pi4_cpuinfo_describes_four_cortex_a72_cores():
    cores = pi_root.PI4_CPUINFO.split("\n\n")[:-1]
    assert len(cores) == 4
    for core in cores:
        assert "CPU part\t: 0xd08" in core and "CPU implementer\t: 0x41" in core
        assert {"fp", "asimd", "crc32"} <= set(core.split("Features\t: ")[1].split("\n")[0].split())


def test_debian_mirror_comes_from_the_host_apt_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("SIGMAWATCH_PI_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# comment\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n")
    assert pi_root.debian_mirror("bookworm", tmp_path) == "http://mirror.invalid/debian"
    (tmp_path / "sources.list.d" / "debian.sources").write_text("")
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://other.invalid/debian bookworm main\n")
    assert pi_root.debian_mirror("bookworm", tmp_path) == "http://other.invalid/debian"
    with pytest.raises(pi_root.PiRootError, match="SIGMAWATCH_PI_MIRROR"):
        pi_root.debian_mirror("trixie", tmp_path)
    monkeypatch.setenv("SIGMAWATCH_PI_MIRROR", "http://set.invalid/debian")
    assert pi_root.debian_mirror("trixie", tmp_path) == "http://set.invalid/debian"


@pytest.mark.pi
def test_root_python_is_aarch64_and_sees_a_pi4(pi_python):
    py = pi_python("edge")
    out = py.run("-c", "import platform, sys; print(platform.machine(), sys.version_info[:2]); "
                       "print(open('/proc/cpuinfo').read())", timeout=120).stdout
    first = out.splitlines()[0]
    assert first == "aarch64 (3, 11)"
    assert "CPU part\t: 0xd08" in out and "Raspberry Pi 4" in out


@pytest.mark.pi
def test_cortex_a72_model_rejects_instructions_of_newer_cores(pi_python):
    with pytest.raises(EmulatedCrash) as info:
        pi_python("edge").run("-c", NEWER_CORE_SNIPPET, timeout=120)
    assert "killed by SIGILL" in str(info.value) and "Cortex-A72" in str(info.value)
    # Control: the same code on a core that has the instruction runs, so the crash above is the CPU model's.
    out = pi_python("edge", cpu="cortex-a76").run("-c", NEWER_CORE_SNIPPET, timeout=120).stdout
    assert out.strip() == "sdot executed"
