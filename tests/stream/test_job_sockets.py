"""Every listening socket of the running job on 127.0.0.1 (issue 14 item 5), listed with psutil.

What ``job.bind_host`` pins: Flink's REST endpoint, RPC, blob server and data exchange (``stream.localbind``) and
the gRPC pool PyFlink starts in the driver process for its Python workers. What it cannot: Apache Beam's Java
gRPC servers for those workers (control, data, state, logging, provisioning), which Beam's ServerFactory creates
with ``NettyServerBuilder.forPort`` (every interface) whatever address it is given, with no option (flink-python
ships its own copy of that class, loaded by the parent class loader, so a job jar cannot replace it). The test
below requires that whatever still listens on every interface is one of those gRPC servers, in the JVM, and
nothing else. The systemd unit limits the job's network to loopback (``IPAddressAllow=localhost``) for that
reason; the README says so.
"""
from __future__ import annotations

import sys

import pytest
import yaml

from stream_helpers import Proc, checkpoints, wait_for
from tests.support.sockets import listening, on_every_interface, speaks_grpc

pytestmark = pytest.mark.flink


@pytest.fixture(scope="module")
def running_job(tmp_path_factory):
    base = tmp_path_factory.mktemp("job-sockets")
    cfg = base / "stream.yaml"
    cfg.write_text(yaml.safe_dump({"job": {"landing_dir": str(base / "landing"), "output_dir": str(base / "out"),
                                           "checkpoint_dir": str(base / "chk"), "checkpoint_interval_s": 1.0,
                                           "publish_mqtt": False}}))
    job = Proc([sys.executable, "-m", "stream.job", "run", "--config", str(cfg), "--no-mqtt"], base / "job.log")
    try:
        wait_for(lambda: checkpoints(base / "chk"), 300, what="the job's first checkpoint", alive=job)
        yield job, listening(job.proc.pid)
    finally:
        job.kill()


def test_the_sockets_flink_and_pyflink_let_us_bind_are_on_loopback(running_job):
    job, sockets = running_job
    assert sockets, "the running job listens on nothing? (psutil sees no socket)"
    wild = on_every_interface(sockets)
    driver = [s for s in sockets if s.pid == job.proc.pid]
    assert driver and not on_every_interface(driver), f"the driver's worker pool listens on every interface: {driver}"
    # whatever still listens on every interface is a gRPC server: Beam's, in the JVM (REST, blob, RPC are not gRPC)
    assert all(s.name == "java" and speaks_grpc(s.port) for s in wild), wild
    assert len(wild) <= 6, wild
    loopback = [s for s in sockets if s not in wild]
    assert len(loopback) >= 3 and all(s.ip in ("127.0.0.1", "::ffff:127.0.0.1") for s in loopback), loopback

