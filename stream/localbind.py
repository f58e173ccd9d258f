"""Every listening socket of the local mini-cluster on one address (``job.bind_host``, 127.0.0.1 by default).

PyFlink's local mini-cluster listens on about ten ports (REST, RPC, blob server, data exchange, the Python
workers' gRPC pool), on all interfaces unless told otherwise. :func:`bind_options` gives the Flink options that
pin the JVM's sockets. :func:`bind_python_worker_pool` does it for the gRPC server that PyFlink starts in this
(driver) process for its Python workers: ``BeamFnLoopbackWorkerPoolServicer.start`` binds ``[::]:0`` with no
option to change it (and its ``__init__`` forgets a started server, so each environment starts one more); its
``start`` is replaced by one that starts a single server on ``host`` and returns that address every time.
"""
from __future__ import annotations

import atexit
import functools
import threading

BIND_KEYS = ("rest.bind-address", "rest.address", "jobmanager.bind-host", "jobmanager.rpc.address",
             "taskmanager.bind-host", "taskmanager.host")
_lock = threading.Lock()
_address: dict[str, str] = {}


def bind_options(host: str) -> dict[str, str]:
    """Flink options binding the JVM's REST, RPC, blob and data-exchange sockets to ``host``."""
    return {key: host for key in BIND_KEYS}


def bind_python_worker_pool(host: str) -> None:
    """Make PyFlink's loopback worker pool (the Python workers' gRPC server in this process) listen on ``host``."""
    from pyflink.fn_execution.beam import beam_worker_pool_service as pool   # grpc and beam, as PyFlink has them

    def start(self) -> str:
        with _lock:
            if host not in _address:
                server = pool.grpc.server(pool.thread_pool_executor.shared_unbounded_instance())
                port = server.add_insecure_port(f"{host}:0")
                pool.beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(self, server)
                server.start()
                _address[host] = f"{host}:{port}"
                atexit.register(functools.partial(server.stop, 1))
            self._worker_address = _address[host]
            return self._worker_address

    pool.BeamFnLoopbackWorkerPoolServicer.start = start
