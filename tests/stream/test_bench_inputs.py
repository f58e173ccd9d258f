"""The throughput benchmark's inputs (no Flink): the 4x landing file and the JVM thread classification."""
from __future__ import annotations

import json

from bench.stream import JvmThreadCpu, replicate_landing, write_landing
from stream.landing import NAME_RE


def test_replicated_landing_file_has_every_line_for_four_device_sets_in_capture_order(tmp_path):
    write_landing(tmp_path / "base", 400, devices=5)
    (src,) = (tmp_path / "base").glob("*.jsonl")
    n = replicate_landing(tmp_path / "base", tmp_path / "big")
    (dst,) = (tmp_path / "big").glob("*.jsonl")
    base = [json.loads(x) for x in src.read_text().splitlines()]
    big = [json.loads(x) for x in dst.read_text().splitlines()]

    assert n == 4 * 400 == len(big) - 1
    assert int(NAME_RE.match(dst.name)["n"]) == n                   # the name's count, as the cleaner reads it
    for i, line in enumerate(base[:-1]):
        copies = big[4 * i:4 * i + 4]
        assert copies[0] == line
        for pfx, copy in zip("efg", copies[1:]):
            assert copy["device"] == pfx + line["device"][1:]
            assert {k: v for k, v in copy.items() if k != "device"} == {k: v for k, v in line.items() if k != "device"}
    devices = {r["device"] for r in big[:-1]}
    assert len(devices) == 4 * 5
    # the trailer describes the new file: its name, its lines, per device what the base trailer said
    eof = big[-1]
    assert eof["kind"] == "eof" and eof["file"] == dst.name and eof["records"] == n
    per_device = {d["d"]: (d["r"], d["m"]) for d in eof["devices"]}
    assert set(per_device) == devices
    for d in base[-1]["devices"]:
        assert {per_device[pfx + d["d"][1:]] for pfx in "defg"} == {(d["r"], d["m"])}


def test_jvm_thread_kinds():
    kinds = {c: JvmThreadCpu.kind(c) for c in ("GC Thread#0", "G1 Conc#0", "C2 CompilerThre", "C1 CompilerThre",
                                               "Source: landin", "WindowDeduplic", "LocalWindowAgg",
                                               "GlobalWindowAg", "flink-pekko.ac", "Thread-3")}
    assert kinds == {"GC Thread#0": "gc", "G1 Conc#0": "gc", "C2 CompilerThre": "jit", "C1 CompilerThre": "jit",
                     "Source: landin": "task", "WindowDeduplic": "task", "LocalWindowAgg": "task",
                     "GlobalWindowAg": "task", "flink-pekko.ac": "other", "Thread-3": "other"}
