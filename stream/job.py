"""``stream-job``: the PyFlink aggregation job (local mini-cluster by default; ``flink run -py`` for a cluster).

    stream-job run --config configs/stream.example.yaml           # monitor the landing dir, run until stopped
    stream-job run --config ... --bounded                          # read what is there, close all windows, exit
    flink run -m HOST:8081 -py stream/job.py -pyexec PY -pyclientexec PY run --config ...   # on a cluster

Checkpoints go to ``job.checkpoint_dir`` (retained on cancel); a restarted job resumes from the newest
complete checkpoint there (``job.resume``), and a failing job is restarted at most
``job.restart_attempts`` times (the Flink default with checkpointing retries forever, silently).
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional

from edge.contract.cli import ArgumentParser, add_mqtt_arguments, mqtt_overrides, run
from edge.contract.errors import JobError
from edge.contract.mqtt import check_broker
from stream.config import StreamConfig, load, load_rules, with_mqtt_overrides, with_overrides
from stream.localbind import bind_options, bind_python_worker_pool

log = logging.getLogger("stream.job")


def latest_checkpoint(checkpoint_dir: Path) -> Optional[Path]:
    """The newest complete checkpoint (a ``chk-N`` directory with ``_metadata``) under ``checkpoint_dir``."""
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
        conf.set_string("execution.checkpointing.dir", Path(job.checkpoint_dir).resolve().as_uri())
        conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
        conf.set_string("execution.checkpointing.num-retained", "2")
    conf.set_string("restart-strategy.type", "fixed-delay")
    conf.set_string("restart-strategy.fixed-delay.attempts", str(job.restart_attempts))
    conf.set_string("restart-strategy.fixed-delay.delay", f"{int(job.restart_delay_s * 1000)} ms")
    conf.set_string("parallelism.default", str(job.parallelism))
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.fn-execution.bundle.time", str(job.python_bundle_ms))
    conf.set_string("pipeline.auto-watermark-interval", f"{job.watermark_interval_ms} ms")
    if restore_from is not None:
        conf.set_string("execution.state-recovery.path", Path(restore_from).resolve().as_uri())
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
    bind_python_worker_pool(cfg.job.bind_host)
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(cfg, restore_from, checkpointing))
    env.set_parallelism(cfg.job.parallelism)
    env.set_python_executable(sys.executable)
    return env, StreamTableEnvironment.create(env)


def run_job(cfg: StreamConfig, bounded: bool = False, mqtt: bool = True, restore_from: Optional[Path] = None) -> int:
    from stream.pipeline import SinkSpec, SourceSpec, build_pipeline
    job = cfg.job
    if restore_from is None and job.resume:
        restore_from = latest_checkpoint(job.checkpoint_dir)
    if restore_from is not None:
        log.info("resuming from checkpoint %s", restore_from)
    rules = load_rules(job.alerts_file)
    Path(job.landing_dir).mkdir(parents=True, exist_ok=True)
    env, t_env = make_environments(cfg, restore_from)
    source = SourceSpec(str(job.landing_dir), None if bounded else job.monitor_interval_s, cfg.mqtt.topic_prefix)
    sinks = SinkSpec(output_dir=str(job.output_dir), mqtt=cfg.mqtt if (mqtt and job.publish_mqtt) else None)
    build_pipeline(t_env, source, sinks, job, rules)
    try:
        env.execute("sigmawatch-stream")
    except Exception as exc:  # py4j wraps the Java failure; keep its first line
        raise JobError(f"the Flink job failed: {str(exc).strip().splitlines()[0][:500]} "
                       "(full trace in the log above / pyflink/log/)") from exc
    return 0


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="stream-job", description="sigmawatch PyFlink aggregation job: "
                        "stream-job [run] --config FILE [options]")
    ap.add_argument("--config", type=Path, help="stream YAML (configs/stream.example.yaml)")
    ap.add_argument("--landing-dir", type=Path, help="override job.landing_dir")
    ap.add_argument("--output-dir", type=Path, help="override job.output_dir")
    ap.add_argument("--checkpoint-dir", type=Path, help="override job.checkpoint_dir")
    ap.add_argument("--bounded", action="store_true", help="read the files present, close every window, exit")
    ap.add_argument("--no-mqtt", action="store_true", help="write files only")
    ap.add_argument("--from-checkpoint", type=Path, help="restore from this checkpoint/savepoint directory")
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
