"""Fixtures for the dev-broker tests: fake ``java`` executables and helpers."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

# A stand-in for `java`: answers -version and StorageTool quickly, and for
# kafka.Kafka behaves as FAKE_KAFKA_MODE says ("crash" or "hang"). Written in
# Python so its command line keeps the properties path (the liveness marker).
_FAKE_JAVA = """#!{python}
import os, sys, time
args = sys.argv[1:]
if "-version" in args:
    sys.stderr.write('openjdk version "17.0.99" 2099-01-01\\n')
    sys.exit(0)
if "kafka.tools.StorageTool" in args:
    if "random-uuid" in args:
        print("AAAAAAAAAAAAAAAAAAAAAA")
        sys.exit(0)
    conf = args[args.index("-c") + 1]
    for line in open(conf):
        if line.startswith("log.dirs="):
            d = line.split("=", 1)[1].strip()
            os.makedirs(d, exist_ok=True)
            open(os.path.join(d, "meta.properties"), "w").write("fake\\n")
    sys.exit(0)
if "kafka.Kafka" in args:
    if os.environ.get("FAKE_KAFKA_MODE") == "crash":
        print("[2026-01-01 00:00:00,000] INFO starting (kafka.Kafka)")
        print("[2026-01-01 00:00:00,001] ERROR Exiting Kafka due to fatal exception: boom "
              "(kafka.Kafka)")
        print("[2026-01-01 00:00:00,002] INFO shut down (kafka.Kafka)")
        sys.exit(1)
    time.sleep(120)
    sys.exit(0)
sys.exit(3)
"""


@pytest.fixture
def fake_java_dir(tmp_path: Path) -> Path:
    """A directory holding a fake ``java`` (and nothing else)."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    java = bindir / "java"
    java.write_text(_FAKE_JAVA.format(python=sys.executable), encoding="utf-8")
    java.chmod(java.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bindir


@pytest.fixture
def fake_jars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Skip Maven: the cluster module gets an (empty) lib dir."""
    lib = tmp_path / "lib"
    lib.mkdir()
    monkeypatch.setattr("framework.devkafka.cluster.ensure_jars", lambda version, progress: lib)
    return lib


def path_without(*names: str) -> str:
    """PATH with every directory that holds one of ``names`` removed."""
    keep = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not any(os.path.exists(os.path.join(d, n)) for n in names)
    ]
    return os.pathsep.join(keep)
