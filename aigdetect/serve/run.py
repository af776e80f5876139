"""Running the service: uvicorn on the app, the detector loading beside it, a graceful stop.

uvicorn's own graceful shutdown does the draining: on SIGTERM (or Ctrl-C) it closes the listening
socket, lets the requests in flight finish (their batches included, for up to `drain_timeout_s`),
and returns; the scoring thread then ends with the queue empty.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Callable

from ..errors import ConfigError, InputError
from .config import ServeConfig
from .service import ScoringSettings, Service


def _close_network_sockets() -> None:
    """In a decode worker just forked from the service: close the TCP sockets it inherited.

    Otherwise the worker would hold the listening socket open (after SIGTERM the kernel would keep
    accepting connections nobody answers) and the connections open at the fork (a client would
    never see its connection closed). The worker's own pipes are Unix sockets and stay.
    """
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            probe = socket.socket(fileno=fd)
            family = probe.family
            probe.detach()
            if family in (socket.AF_INET, socket.AF_INET6):
                os.close(fd)
        except OSError:
            continue


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use or an unknown address is one clear error.

    Raises:
        InputError: the address cannot be resolved or bound.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def run_service(config: ServeConfig, scoring: ScoringSettings, *, notify: Callable[[str], None] | None = None) -> None:
    """Serve until stopped; ``notify`` hears when the server listens and when the detector is ready.

    Raises:
        ConfigError: the serve extra is not installed.
        InputError: the address cannot be listened on.
        AigdetectError: the detector could not be loaded (the server stops first).
        KeyboardInterrupt: re-raised by uvicorn after a graceful stop on a signal.
    """
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        raise ConfigError(f"serving needs the serve extra ({exc.name} is missing): pip install 'aigdetect[serve]'") from None
    tell = notify or (lambda message: None)
    sock = listen(config.host, config.port)
    service = Service(config, scoring)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service), host=config.host, port=config.port, lifespan="off", access_log=False,
            log_level="warning", server_header=False, proxy_headers=False, timeout_keep_alive=5,
            timeout_graceful_shutdown=config.drain_timeout_s,
        )
    )  # fmt: skip

    def load() -> None:
        try:
            service.load()
        except BaseException:
            server.should_exit = True
            return
        tell(f"ready: {service.info()['detector']}")

    os.register_at_fork(after_in_child=_close_network_sockets)
    loader = threading.Thread(target=load, name="aigdetect-serve-load", daemon=True)
    host, port = sock.getsockname()[:2]
    tell(f"listening on http://{f'[{host}]' if ':' in host else host}:{port}; the detector loads meanwhile "
         "(/v1/health answers 503 until then)")  # fmt: skip
    loader.start()
    try:
        server.run(sockets=[sock])
    finally:
        service.close()
        sock.close()
    if service.failure is not None:
        raise service.failure
