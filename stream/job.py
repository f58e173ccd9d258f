"""``stream-job``: the PyFlink aggregation job (local mini-cluster by default; ``flink run -py`` for a cluster).

    stream-job run --config configs/stream.example.yaml           # monitor the landing dir, run until stopped
    stream-job run --config ... --bounded                          # read what is there, close all windows, exit
    flink run -m HOST:8081 -py stream/job.py -pyexec PY -pyclientexec PY run --config ...   # on a cluster

Checkpoints go to ``job.checkpoint_dir`` (retained on cancel); a restarted job resumes from the newest
complete checkpoint there (``job.resume``), and a failing job is restarted at most
``job.restart_attempts`` times (the Flink default with checkpointing retries forever, silently).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

from edge.contract.cli import ArgumentParser, add_mqtt_arguments, mqtt_overrides, run
from edge.contract.errors import JobError
from edge.contract.mqtt import check_broker
from stream import jvm
from stream.config import StreamConfig, is_uri, load, load_rules, location_uri, with_mqtt_overrides, with_overrides
from stream.localbind import bind_options, bind_python_worker_pool

log = logging.getLogger("stream.job")


def submitted_by_flink_client() -> bool:
    """True when ``flink run -py`` runs this file: the Flink client started this interpreter and its JVM is the
    gateway (PythonDriver sets PYFLINK_GATEWAY_PORT). Then the cluster's configuration and the command line
    (``-pyexec``, ``-pyarch``, ...) decide the Python environment and the sockets, not this process."""
    return "PYFLINK_GATEWAY_PORT" in os.environ


def latest_checkpoint(checkpoint_dir) -> Optional[Path]:
    """The newest complete checkpoint (a ``chk-N`` directory with ``_metadata``) under ``checkpoint_dir``
    (None for a URI: this process cannot list it; resume with --from-checkpoint)."""
    if is_uri(checkpoint_dir):
        log.warning("job.checkpoint_dir is %s: this process cannot list it to find the newest checkpoint; "
                    "to resume, pass --from-checkpoint <uri of its chk-N directory>", checkpoint_dir)
        return None
    found = [p.parent for p in Path(checkpoint_dir).glob("*/chk-*/_metadata") if p.is_file()]
    if not found:
        return None
    return max(found, key=lambda p: (p.joinpath("_metadata").stat().st_mtime, int(p.name.split("-")[1])))


def flink_configuration(cfg: StreamConfig, restore_from: Optional[Path] = None, checkpointing: bool = True):
    from pyflink.common import Configuration
    job = cfg.job
    conf = Configuration()
    if checkpointing:
        conf.set_string("execution.checkpointing.interval", f"{int(job.checkpoint_interval_s * 1000)} ms")
        conf.set_string("execution.checkpointing.dir", location_uri(job.checkpoint_dir))
        conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
        conf.set_string("execution.checkpointing.num-retained", "2")
    conf.set_string("restart-strategy.type", "fixed-delay")
    conf.set_string("restart-strategy.fixed-delay.attempts", str(job.restart_attempts))
    conf.set_string("restart-strategy.fixed-delay.delay", f"{int(job.restart_delay_s * 1000)} ms")
    conf.set_string("parallelism.default", str(job.parallelism))
    if not submitted_by_flink_client():     # local mini-cluster: its Python workers run this interpreter
        conf.set_string("python.executable", sys.executable)
        conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.fn-execution.bundle.time", str(job.python_bundle_ms))
    conf.set_string("pipeline.auto-watermark-interval", f"{job.watermark_interval_ms} ms")
    if restore_from is not None:
        conf.set_string("execution.state-recovery.path", location_uri(restore_from))
    if not submitted_by_flink_client():     # a cluster binds its sockets by its own configuration
        for key, value in bind_options(job.bind_host).items():       # no port on all interfaces (issue 14)
            conf.set_string(key, value)
    return conf


def start_jvm(options: list[str]) -> None:
    """Start the JVM of PyFlink's gateway (which runs the local mini-cluster) with ``options``: PyFlink reads
    JVM_ARGS when it starts that JVM. A JVM_ARGS set by the user wins; a JVM already running (a second job in
    one process, or ``flink run -py``, whose gateway is the Flink client's JVM) keeps its options."""
    from pyflink.java_gateway import get_gateway
    if not options or "JVM_ARGS" in os.environ:
        get_gateway()
        return
    os.environ["JVM_ARGS"] = " ".join(options)
    try:
        get_gateway()
    finally:
        del os.environ["JVM_ARGS"]


def make_environments(cfg: StreamConfig, restore_from: Optional[Path] = None, checkpointing: bool = True):
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment
    start_jvm(cfg.job.jvm_options)
    if not submitted_by_flink_client():
        bind_python_worker_pool(cfg.job.bind_host)
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(cfg, restore_from, checkpointing))
    env.add_jars(jvm.jar().as_uri())          # the job's Java operators, shipped with the job to a cluster
    env.set_parallelism(cfg.job.parallelism)
    if not submitted_by_flink_client():
        env.set_python_executable(sys.executable)
    return env, StreamTableEnvironment.create(env)


def startup_line(cfg: StreamConfig, bounded: bool, mqtt: bool, restore_from: Optional[Path]) -> str:
    job = cfg.job
    w = job.window
    windows = f"{w.size_s:g} s windows" + (f" sliding by {w.slide_s:g} s" if w.slide_s else "")
    return (f"stream-job: {'reading what has landed in' if bounded else 'following'} {job.landing_dir}; writing "
            f"{job.output_dir} (records/, deadletter/, consumed/); MQTT "
            f"{cfg.mqtt.url + ' prefix ' + cfg.mqtt.topic_prefix if mqtt else 'off'}; {windows}, out-of-orderness "
            f"{job.out_of_orderness_s:g} s, allowed lateness {job.allowed_lateness_s:g} s, clock skew tolerance "
            f"{job.clock_skew_tolerance_s:g} s; parallelism {job.parallelism}; checkpoints every "
            f"{job.checkpoint_interval_s:g} s to {job.checkpoint_dir}, "
            + (f"resuming from {restore_from}" if restore_from else "starting fresh"))


def _jsonl(directory: Path) -> list[dict]:
    out = []
    if Path(directory).is_dir():
        for p in sorted(Path(directory).rglob("*")):
            if p.is_file() and not p.name.startswith((".", "_")):
                out += [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    return out


def bounded_summary(output_dir) -> str:
    """What a bounded run did, from its committed outputs: messages read, windows, revisions, dead letters."""
    if is_uri(output_dir):
        return f"stream-job: bounded run done; its outputs are in {output_dir} (no summary: not a local directory)"
    out = Path(output_dir)
    consumed = _jsonl(out / "consumed")
    records = _jsonl(out / "records")
    dead = _jsonl(out / "deadletter")
    final: dict[str, dict] = {}
    window_types = ("aggregate", "fleet", "health", "objects", "present")
    for r in records:
        if r["type"] in window_types and r["revision"] >= final.get(r["id"], r)["revision"]:
            final[r["id"]] = r
    revised = {r["id"] for r in records if r["type"] in window_types[:3] and r.get("revision")}
    by_type = {t: sum(1 for r in final.values() if r["type"] == t) for t in window_types}
    late = sum(r["late_frames"] for r in final.values() if r["type"] == "health")
    too_late = sum(d["category"] == "too_late" for d in dead)
    skew = sum(d["category"] == "dead" and str(d.get("reason", "")).startswith("clock skew") for d in dead)
    return (f"stream-job: bounded run done: read {sum(c['records'] for c in consumed)} messages in "
            f"{len({c['file'] for c in consumed})} landing files; {by_type['aggregate']} aggregates, "
            f"{by_type['fleet']} fleet totals, {by_type['health']} health windows, {len(revised)} of them revised; "
            f"{by_type['objects']} objects and {by_type['present']} objects-present windows; "
            f"{late} frames arrived behind the watermark and were added to their windows; dead letters {len(dead)} (too late "
            f"{too_late}, clock skew {skew}, invalid {len(dead) - too_late - skew})")


def run_job(cfg: StreamConfig, bounded: bool = False, mqtt: bool = True, restore_from: Optional[Path] = None) -> int:
    from stream.pipeline import SinkSpec, SourceSpec, build_pipeline
    job = cfg.job
    if restore_from is None and job.resume:
        restore_from = latest_checkpoint(job.checkpoint_dir)
    rules = load_rules(job.alerts_file)
    if not is_uri(job.landing_dir):
        Path(job.landing_dir).mkdir(parents=True, exist_ok=True)
    env, t_env = make_environments(cfg, restore_from)
    source = SourceSpec(str(job.landing_dir), None if bounded else job.monitor_interval_s, cfg.mqtt.topic_prefix)
    publish = mqtt and job.publish_mqtt
    sinks = SinkSpec(output_dir=str(job.output_dir), mqtt=cfg.mqtt if publish else None)
    build_pipeline(env, t_env, source, sinks, job, rules)
    log.info("%s", startup_line(cfg, bounded, publish, restore_from))
    try:
        env.execute("sigmawatch-stream")
    except Exception as exc:  # py4j wraps the Java failure; keep its first line
        raise JobError(f"the Flink job failed: {str(exc).strip().splitlines()[0][:500]} "
                       "(full trace in the log above / pyflink/log/)") from exc
    if bounded:     # a line for the user (PyFlink's workers reconfigure logging by the time the job ends)
        print(bounded_summary(job.output_dir), flush=True)
    return 0


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="stream-job", description="sigmawatch PyFlink aggregation job: "
                        "stream-job [run] --config FILE [options]")
    ap.add_argument("--config", type=Path, help="stream YAML (configs/stream.example.yaml)")
    ap.add_argument("--landing-dir", help="override job.landing_dir (a path or a URI such as s3://bucket/landing)")
    ap.add_argument("--output-dir", help="override job.output_dir (a path or a URI)")
    ap.add_argument("--checkpoint-dir", help="override job.checkpoint_dir (a path or a URI)")
    ap.add_argument("--bounded", action="store_true", help="read the files present, close every window, exit")
    ap.add_argument("--no-mqtt", action="store_true", help="write files only")
    ap.add_argument("--from-checkpoint", help="restore from this checkpoint/savepoint directory (a path or a URI)")
    ap.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_mqtt_arguments(ap)
    return ap


def _main(args) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = with_mqtt_overrides(load(args.config), mqtt_overrides(args))
    cfg = with_overrides(cfg, "job", landing_dir=args.landing_dir, output_dir=args.output_dir,
                         checkpoint_dir=args.checkpoint_dir, resume=False if args.fresh else None)
    publish = not args.no_mqtt and cfg.job.publish_mqtt
    if publish:   # a refused connection is an error now, not a silent queue inside the running job
        check_broker(cfg.mqtt, f"{cfg.mqtt.client_id or 'sigmawatch-job'}-check", timeout=10)
    return run_job(cfg, bounded=args.bounded, mqtt=publish, restore_from=args.from_checkpoint)


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        argv = argv[1:]
    return run("stream-job", lambda: _main(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
