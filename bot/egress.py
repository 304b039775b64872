"""The start-up check of a worker's egress policy: can a build reach the metadata address?

A build's network lets its containers out through the worker's own routes,
unless the operator installed the egress policy (docs/reference.md, "Egress
policy for workers").  Without it a pull request can read the cloud's
metadata service, often the worker's own credentials.  Every `dockercise
worker` and `serve` tries, once at start-up and off the main thread, what a
build would: a short-lived container on a fresh network like a build's
connects to `DOCKERCISE_METADATA_PROBE`; if it gets through, the worker says
so as a warning.  It never blocks start-up, and removes what it made.
"""

from __future__ import annotations

import logging
import threading

from bot.settings import Settings
from runner.backend import ContainerBackend
from runner.errors import DockerciseError
from runner.networks import network_name
from runner.outcome import new_run_id
from runner.ownership import this_process
from runner.plan import ContainerSpec
from runner.supervisor import Supervisor

__all__ = ["check_metadata", "metadata_reachable", "start_metadata_check", "warning"]

log = logging.getLogger("dockercise.bot")

CONNECT_SECONDS = 2
"""How long the container tries to connect (busybox `nc -w`)."""
BOUND_SECONDS = 10.0
"""The whole check's bound once the image is there: the container is killed after it."""
STAGE = "metadata-probe"


def probe_command(host: str, port: int) -> list[str]:
    """Exit 0 only when a TCP connection to host:port is made, within 2 s (busybox).

    `nc -w` bounds the connect; `timeout` bounds the rest (busybox's `wget -T`
    crashes on some builds, and `nc -z` is not in every busybox).
    """
    return ["timeout", str(CONNECT_SECONDS + 1), "nc", "-w", str(CONNECT_SECONDS), host, str(port)]


def metadata_reachable(backend: ContainerBackend, host: str, port: int, image: str) -> bool:
    """Whether a container on a fresh build-like network connects to host:port.

    Raises the backend's errors (ContainerFailed, ImageUnavailable) when the
    check cannot be made; the network and container are removed either way.
    """
    run_id = new_run_id()
    # The owner's labels, as a run's: what a worker killed meanwhile leaves is swept.
    labels = {"dockercise.run": run_id, **this_process().labels()}
    try:
        backend.ensure_image(image, lambda _: None)
        network = network_name(run_id)
        backend.create_network(network, labels)
        spec = ContainerSpec(
            image=image,
            command=probe_command(host, port),
            env={},
            binds=[],
            workdir=None,
            network=network,
            labels={**labels, "dockercise.stage": STAGE},
        )
        exit = Supervisor(backend).run(spec, lambda stream, chunk: None, BOUND_SECONDS)
        return exit.code == 0 and not exit.timed_out
    finally:
        backend.remove_run(run_id)


def warning(host: str, port: int) -> str:
    return (
        f"a build's container can reach the metadata address {host}:{port}: builds can read"
        " what it serves (often this machine's cloud credentials); install the egress policy"
        " (docs/reference.md, 'Egress policy for workers'), or set DOCKERCISE_METADATA_PROBE"
        " to check another address"
    )


def check_metadata(settings: Settings) -> bool | None:
    """Log a warning when builds can reach the metadata address; None when not checked."""
    if settings.metadata_probe is None:
        return None
    host, port = settings.metadata_probe
    from runner.containers import Containers

    try:
        backend = Containers(settings.environ)
    except DockerciseError as e:
        log.warning("cannot check whether builds reach %s:%d: %s", host, port, e)
        return None
    try:
        reachable = metadata_reachable(backend, host, port, settings.probe_image)
    except Exception as e:  # a check that cannot be made must not stop the worker
        log.warning("cannot check whether builds reach %s:%d: %s", host, port, e)
        return None
    finally:
        backend.close()
    if reachable:
        log.warning("%s", warning(host, port))
    else:
        log.info("builds cannot reach the metadata address %s:%d", host, port)
    return reachable


def start_metadata_check(settings: Settings) -> threading.Thread:
    """Run `check_metadata` in the background: start-up never waits for it."""
    thread = threading.Thread(
        target=check_metadata, args=(settings,), name="metadata-check", daemon=True
    )
    thread.start()
    return thread
