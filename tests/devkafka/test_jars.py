"""Jar resolution helpers: cache hits, the log4j version, exactly one SLF4J binding."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.devkafka import jars
from framework.errors import DevKafkaError


def _touch(lib: Path, *names: str) -> None:
    lib.mkdir(parents=True, exist_ok=True)
    for name in names:
        (lib / name).write_bytes(b"")


def test_cache_lives_under_ktf_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTF_CACHE_DIR", str(tmp_path))
    assert jars.lib_dir("4.2.2") == tmp_path / "kafka" / "4.2.2" / "lib"


def test_complete_cache_is_used_without_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KTF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no mvn: must not be needed
    lib = jars.lib_dir("4.2.2")
    _touch(lib, "kafka_2.13-4.2.2.jar", ".complete")
    assert jars.ensure_jars("4.2.2", progress=lambda _: None) == lib


def test_incomplete_cache_needs_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    _touch(jars.lib_dir("4.2.2"), "kafka_2.13-4.2.2.jar")  # no .complete marker
    with pytest.raises(DevKafkaError, match=r"`mvn` is not on PATH"):
        jars.ensure_jars("4.2.2", progress=lambda _: None)


def test_log4j_core_version_is_read_from_the_jar_name(tmp_path: Path) -> None:
    _touch(tmp_path, "log4j-api-2.25.5.jar", "log4j-core-2.25.5.jar", "kafka-clients-4.2.2.jar")
    assert jars.log4j_core_version(tmp_path) == "2.25.5"


def test_missing_log4j_core_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "log4j-api-2.25.5.jar")
    with pytest.raises(DevKafkaError, match="log4j-core"):
        jars.log4j_core_version(tmp_path)


def test_exactly_one_slf4j_binding(tmp_path: Path) -> None:
    _touch(tmp_path, "slf4j-api-1.7.36.jar", "log4j-slf4j-impl-2.25.5.jar")
    assert jars.check_single_binding(tmp_path) == "log4j-slf4j-impl-2.25.5.jar"
    _touch(tmp_path, "slf4j-reload4j-1.7.36.jar")
    with pytest.raises(DevKafkaError, match="exactly one SLF4J binding"):
        jars.check_single_binding(tmp_path)


def test_no_slf4j_binding_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "slf4j-api-1.7.36.jar")
    with pytest.raises(DevKafkaError, match="none"):
        jars.check_single_binding(tmp_path)
