"""Job directories given as URIs (a cluster's shared file system) stay URIs; the bridge's directories must be
local; the job does not override a cluster submission's Python environment (``-pyexec``)."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge.contract.errors import ConfigError
from stream import job
from stream.config import from_dict, is_uri, location_uri


def test_object_store_uris_reach_flink_verbatim():
    cfg = from_dict({"job": {"landing_dir": "s3://fleet-bucket/landing", "output_dir": "hdfs://nn:8020/sw/out",
                             "checkpoint_dir": "s3://fleet-bucket/chk"}})
    assert cfg.job.landing_dir == "s3://fleet-bucket/landing"           # not PosixPath('s3:/fleet-bucket/landing')
    assert location_uri(cfg.job.output_dir) == "hdfs://nn:8020/sw/out"
    assert location_uri(cfg.job.checkpoint_dir) == "s3://fleet-bucket/chk"
    assert job.latest_checkpoint(cfg.job.checkpoint_dir) is None           # cannot be listed here: says so in the log
    assert "no summary" in job.bounded_summary(cfg.job.output_dir)


def test_local_paths_and_file_uris_are_paths(tmp_path):
    cfg = from_dict({"job": {"landing_dir": str(tmp_path / "landing"), "output_dir": f"file://{tmp_path}/out"}})
    assert cfg.job.landing_dir == tmp_path / "landing" and cfg.job.output_dir == tmp_path / "out"
    assert not is_uri(cfg.job.landing_dir) and not is_uri(str(tmp_path)) and is_uri("gs://b/x")
    assert location_uri(cfg.job.output_dir) == (tmp_path / "out").as_uri()
    assert location_uri("relative/dir") == Path("relative/dir").resolve().as_uri()


@pytest.mark.parametrize("key", ["landing_dir", "consumed_dir"])
def test_the_bridge_refuses_an_object_store_uri_naming_the_key(key):
    with pytest.raises(ConfigError) as err:
        from_dict({"bridge": {key: "s3://fleet-bucket/landing"}})
    text = str(err.value)
    assert f"bridge.{key}" in text and "local directory" in text and "s3://" in text


def test_flink_client_submission_is_detected_from_its_gateway(monkeypatch):
    monkeypatch.delenv("PYFLINK_GATEWAY_PORT", raising=False)
    assert not job.submitted_by_flink_client()
    monkeypatch.setenv("PYFLINK_GATEWAY_PORT", "40000")        # what Flink's PythonDriver sets for `flink run -py`
    assert job.submitted_by_flink_client()
