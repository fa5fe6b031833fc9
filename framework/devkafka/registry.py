"""A local Apicurio Registry (Confluent-compatible API) for development and tests.

``ktf dev registry up|down|status``. Apicurio Registry 3.x publishes its
ready-to-run Quarkus distribution on Maven Central as the ``all`` tar.gz of
``io.apicurio:apicurio-registry-app`` (``quarkus-run.jar`` + ``lib/`` +
``app/``); the plain jar of that artifact is a thin, un-augmented jar that
cannot run on its own. The distribution is fetched once with ``mvn`` and
unpacked into ``$KTF_CACHE_DIR/apicurio/<version>/`` (default
``~/.cache/ktf``); the process's pid file, state and log live in
``$KTF_CACHE_DIR/dev-registry/``. Storage is the 3.x default, in-memory H2:
schemas are gone after ``down``.

Its classes are Java 21 bytecode, so a JDK 21+ is needed even though the
broker runs on 17: one is looked up in ``$KTF_REGISTRY_JAVA``, ``$JAVA_HOME``,
``PATH`` and ``/usr/lib/jvm``.

Clients use the Confluent-compatible base url ``http://127.0.0.1:<port>/apis/ccompat/v7``::

    from framework.devkafka.registry import registry_up, registry_down
    url = registry_up(port=8081, progress=print, timeout=180)
    store.codec(name, wire="confluent", registry={"url": url})
    registry_down()
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from framework.devkafka import procs
from framework.devkafka.jars import _locked, _run_mvn, require_tool
from framework.devkafka.spec import LOOPBACK, cache_root
from framework.errors import DevKafkaError

Progress = Callable[[str], None]

DEFAULT_APICURIO_VERSION = "3.3.3"
DEFAULT_REGISTRY_PORT = 8081
DEFAULT_REGISTRY_HEAP = "512m"
DEFAULT_UP_TIMEOUT = 180.0
DEFAULT_DOWN_TIMEOUT = 30.0
MIN_JAVA = 21
CCOMPAT_PATH = "/apis/ccompat/v7"

_COMPLETE_MARKER = ".complete"
_PROGRESS_EVERY = 5.0
_JAVA_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')
_VERSION_RE = re.compile(r"^3\.[0-9]+\.[0-9]+$")
# Identifies our process in /proc/<pid>/cmdline, so a recycled pid is not mistaken for it.
_MARKER_PROP = "-Dktf.dev.registry="


@dataclass(frozen=True)
class RegistryStatus:
    """The dev registry as found on disk and in the process table."""

    running: bool
    pid: int | None
    url: str | None
    state_dir: Path
    log_path: Path


def state_dir() -> Path:
    """``$KTF_CACHE_DIR/dev-registry``: pid, port and log of the dev registry."""
    return cache_root() / "dev-registry"


def dist_dir(version: str) -> Path:
    """Where the unpacked Apicurio ``version`` distribution is cached."""
    return cache_root() / "apicurio" / version


def registry_url(port: int) -> str:
    """The Confluent-compatible base url of a registry on ``port``."""
    return f"http://{LOOPBACK}:{port}{CCOMPAT_PATH}"


def registry_status() -> RegistryStatus:
    """Inspect the pid and port files; never starts or stops anything."""
    root = state_dir()
    pid = procs.read_pid(_pid_path())
    alive = pid is not None and procs.is_running(pid, _marker())
    port = _read_port() if alive else None
    return RegistryStatus(
        running=alive,
        pid=pid if alive else None,
        url=registry_url(port) if port is not None else None,
        state_dir=root,
        log_path=_log_path(),
    )


def registry_up(
    port: int = DEFAULT_REGISTRY_PORT,
    progress: Progress = print,
    timeout: float = DEFAULT_UP_TIMEOUT,
    *,
    version: str = DEFAULT_APICURIO_VERSION,
    heap: str = DEFAULT_REGISTRY_HEAP,
) -> str:
    """Start the dev registry (no-op if it runs) and wait until it serves; return its url.

    The url is the Confluent-compatible base (``.../apis/ccompat/v7``), ready for
    ``{"url": url}`` as a ``SchemaRegistryClient`` configuration.
    """
    if not _VERSION_RE.match(version):
        raise DevKafkaError(f"Apicurio Registry version must be 3.x.y, got {version!r}")
    current = registry_status()
    if current.running:
        running_port = _read_port()
        if running_port != port:
            raise DevKafkaError(
                f"the dev registry already runs on port {running_port} (pid {current.pid}), "
                f"not {port}; `ktf dev registry down` first"
            )
        progress(f"dev registry already running at {registry_url(port)}")
        _wait_ready(port, None, 0, progress, timeout)
        return registry_url(port)

    java = find_java()
    if procs.port_in_use(port):
        raise DevKafkaError(
            f"port {port} (dev registry HTTP port) is already in use; stop whatever listens "
            "there or pick another --port"
        )
    home = ensure_distribution(version, progress)
    root = state_dir()
    root.mkdir(parents=True, exist_ok=True)
    log = _log_path()
    offset = procs.file_size(log)
    progress(f"starting Apicurio Registry {version} on {LOOPBACK}:{port} ({java})")
    proc = _launch(java, home, port, heap, log)
    try:
        _wait_ready(port, proc, offset, progress, timeout)
    except BaseException:
        # A half-started registry would make the next `up` report "already running".
        _stop(timeout=10.0)
        raise
    url = registry_url(port)
    progress(f"dev registry ready at {url} (log: {log})")
    return url


def registry_down(timeout: float = DEFAULT_DOWN_TIMEOUT) -> RegistryStatus:
    """Stop the dev registry: SIGTERM, wait up to ``timeout``, then SIGKILL. Idempotent."""
    _stop(timeout)
    return registry_status()


# -- Java ----------------------------------------------------------------------


def java_major(java: str) -> int | None:
    """The major version of the JVM at ``java``, or None if it cannot be told."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _JAVA_VERSION_RE.search(out.stderr + out.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_392" style
        major = int(match.group(2))
    return major


def java_candidates() -> list[str]:
    """JVMs to consider, most explicit first (env overrides, PATH, then /usr/lib/jvm)."""
    found: list[str] = []
    explicit = os.environ.get("KTF_REGISTRY_JAVA")
    if explicit:
        found.append(explicit)
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        found.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        found.append(on_path)
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        found += [str(p) for p in sorted(jvm.glob("*/bin/java"), reverse=True)]
    seen: set[str] = set()
    unique: list[str] = []
    for path in found:
        real = os.path.realpath(path)
        if real not in seen and os.access(real, os.X_OK):
            seen.add(real)
            unique.append(path)
    return unique


def find_java() -> str:
    """A ``java`` of version 21 or newer, or a one-line :class:`DevKafkaError`."""
    explicit = os.environ.get("KTF_REGISTRY_JAVA")
    seen: list[str] = []
    for java in java_candidates():
        major = java_major(java)
        if major is not None and major >= MIN_JAVA:
            return java
        if explicit and java == explicit:
            raise DevKafkaError(
                f"KTF_REGISTRY_JAVA={explicit} is Java {major}; Apicurio Registry 3.x needs "
                f"Java {MIN_JAVA}+"
            )
        seen.append(f"{java} (Java {major if major is not None else '?'})")
    raise DevKafkaError(
        f"Apicurio Registry 3.x needs Java {MIN_JAVA}+; found only "
        f"{', '.join(seen) or 'no java'}: install a JDK 21+ or set KTF_REGISTRY_JAVA"
    )


# -- distribution --------------------------------------------------------------


def ensure_distribution(version: str, progress: Progress = print) -> Path:
    """Fetch (once) and unpack the Quarkus distribution; return the dir with quarkus-run.jar."""
    target = dist_dir(version)
    if (target / _COMPLETE_MARKER).is_file():
        return target
    mvn = require_tool("mvn")
    base = target.parent
    base.mkdir(parents=True, exist_ok=True)
    with _locked(base / ".lock"):
        if (target / _COMPLETE_MARKER).is_file():  # another process finished meanwhile
            return target
        artifact = f"io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
        progress(f"fetching {artifact} (~160 MB) from Maven Central into {target}")
        scratch = base / f"resolve-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        started = time.monotonic()
        # No project needed: dependency:copy resolves one artifact into a directory.
        _run_mvn(
            [
                mvn,
                "-B",
                "dependency:copy",
                f"-Dartifact={artifact}",
                f"-DoutputDirectory={scratch}",
            ],
            cwd=scratch,
            log=base / "mvn.log",
            what=artifact,
            progress=progress,
        )
        tarballs = list(scratch.glob("*.tar.gz"))
        if len(tarballs) != 1:
            raise DevKafkaError(f"mvn copied {len(tarballs)} tar.gz files into {scratch}, not 1")
        staged = scratch / "dist"
        try:
            with tarfile.open(tarballs[0]) as tar:
                tar.extractall(staged, filter="data")
        except (OSError, tarfile.TarError) as exc:
            raise DevKafkaError(f"cannot unpack {tarballs[0]}: {exc}") from exc
        if not (staged / "quarkus-run.jar").is_file():
            raise DevKafkaError(f"{tarballs[0].name} has no quarkus-run.jar at its top level")
        (staged / _COMPLETE_MARKER).write_text(f"apicurio {version}\n", encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staged, target)
        shutil.rmtree(scratch, ignore_errors=True)
        progress(f"fetched Apicurio Registry {version} in {time.monotonic() - started:.0f}s")
    return target


# -- process -------------------------------------------------------------------


def _pid_path() -> Path:
    return state_dir() / "registry.pid"


def _port_path() -> Path:
    return state_dir() / "registry.port"


def _log_path() -> Path:
    return state_dir() / "registry.log"


def _marker() -> str:
    return f"{_MARKER_PROP}{state_dir()}"


def _read_port() -> int | None:
    try:
        text = _port_path().read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _launch(java: str, home: Path, port: int, heap: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        java,
        _marker(),
        "-Xms128m",
        f"-Xmx{heap}",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dquarkus.http.host={LOOPBACK}",
        f"-Dquarkus.http.port={port}",
        # The management interface (health, metrics) is enabled at build time and would
        # take 0.0.0.0:9000; an ephemeral loopback port keeps 9000 free for others.
        f"-Dquarkus.management.host={LOOPBACK}",
        "-Dquarkus.management.port=0",
        # One access-log line per request would dwarf everything else in the log.
        "-Dquarkus.http.access-log.enabled=false",
        "-jar",
        str(home / "quarkus-run.jar"),
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=state_dir(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the starting shell must not kill it
        )
    procs.remember(proc)
    _port_path().write_text(f"{port}\n", encoding="ascii")
    procs.write_pid(_pid_path(), proc.pid)
    return proc


def _stop(timeout: float) -> None:
    pid = procs.read_pid(_pid_path())
    if pid is not None and procs.is_running(pid, _marker()):
        procs.signal_pid(pid, signal.SIGTERM)
        left = procs.wait_gone({pid: _marker()}, timeout)
        if left:
            procs.signal_pid(pid, signal.SIGKILL)
            if procs.wait_gone(left, 10.0):
                raise DevKafkaError(f"could not stop dev registry pid {pid} even with SIGKILL")
    _pid_path().unlink(missing_ok=True)
    _port_path().unlink(missing_ok=True)


def _serves(port: int, timeout: float) -> bool:
    """Whether ``GET .../subjects`` answers 200: storage is initialised and REST is up."""
    try:
        with urllib.request.urlopen(f"{registry_url(port)}/subjects", timeout=timeout) as resp:
            return int(resp.status) == 200
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response socket (e.g. a 503 while Quarkus boots)
        return False
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _wait_ready(
    port: int,
    proc: subprocess.Popen[bytes] | None,
    offset: int,
    progress: Progress,
    timeout: float,
) -> None:
    t0 = time.monotonic()
    deadline = t0 + timeout
    next_report = t0 + _PROGRESS_EVERY
    log = _log_path()
    while True:
        if proc is not None and (code := proc.poll()) is not None:
            why = procs.last_meaningful_line([log], {log: offset})
            raise DevKafkaError(
                f"dev registry (pid {proc.pid}) exited with status {code} before it was ready: "
                f"{why} (log: {log})"
            )
        if proc is None and not registry_status().running:
            raise DevKafkaError(f"dev registry is not running; see {log}")
        if _serves(port, min(2.0, max(0.2, deadline - time.monotonic()))):
            return
        now = time.monotonic()
        if now >= deadline:
            raise DevKafkaError(
                f"timed out after {timeout:.0f}s waiting for the dev registry at "
                f"{registry_url(port)}/subjects; see {log}"
            )
        if now >= next_report:
            progress(f"  waiting for the registry ({now - t0:.0f}s of {timeout:.0f}s) ...")
            next_report = now + _PROGRESS_EVERY
        time.sleep(0.5)
