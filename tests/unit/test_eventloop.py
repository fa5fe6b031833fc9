"""The worker's event loop: uvloop by default, the standard loop with --loop asyncio."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from framework import ConfigError, Settings
from framework.cli import build_parser
from framework.commands._common import settings_from
from framework.eventloop import loop_factory, run


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_uvloop_is_the_default_and_asyncio_is_the_standard_loop() -> None:
    assert Settings().loop == "uvloop"
    assert run(_loop_type(), Settings().loop) is uvloop.Loop
    assert not issubclass(run(_loop_type(), "asyncio"), uvloop.Loop)


def test_loop_comes_from_the_flag_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTF_LOOP", "asyncio")
    args = build_parser().parse_args(["worker"])
    assert settings_from(args).loop == "asyncio"
    args = build_parser().parse_args(["worker", "--loop", "uvloop"])
    assert settings_from(args).loop == "uvloop"


def test_an_unknown_loop_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="loop must be 'uvloop' or 'asyncio'"):
        Settings(loop="trio")
    with pytest.raises(ConfigError, match="uvloop, asyncio"):
        loop_factory("trio")


def test_without_uvloop_installed_the_standard_loop_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    factory, used = loop_factory("uvloop")
    assert (factory, used) == (None, "asyncio")


def test_processes_accepts_a_number_or_auto() -> None:
    assert Settings(processes="auto").processes == "auto"
    assert Settings.load(env={"KTF_PROCESSES": "4"}).processes == "4"
    with pytest.raises(ConfigError, match="processes must be a whole number >= 1 or 'auto'"):
        Settings(processes="0")
