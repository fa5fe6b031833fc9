"""Fixtures local to the observability tests."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def unused_tcp_port() -> int:
    """A localhost port with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# A librdkafka statistics document with the real shape (librdkafka STATISTICS.md),
# trimmed from a consumer's stats_cb payload: the fields the framework reads sit
# among the ones it must ignore.


def _partition(pid: int, lag: int) -> dict[str, Any]:
    assigned = lag >= 0
    return {
        "partition": pid,
        "broker": 1 if pid >= 0 else -1,
        "leader": 1 if pid >= 0 else -1,
        "desired": assigned,
        "unknown": False,
        "msgq_cnt": 0,
        "msgq_bytes": 0,
        "xmit_msgq_cnt": 0,
        "xmit_msgq_bytes": 0,
        "fetchq_cnt": 3 if assigned else 0,
        "fetchq_size": 300 if assigned else 0,
        "fetch_state": "active" if assigned else "none",
        "query_offset": -2 if assigned else -1001,
        "next_offset": 40 if assigned else 0,
        "app_offset": 35 if assigned else -1001,
        "stored_offset": -1001,
        "stored_leader_epoch": -1,
        "commited_offset": 30 if assigned else -1001,
        "committed_offset": 30 if assigned else -1001,
        "committed_leader_epoch": 0 if assigned else -1,
        "eof_offset": -1001,
        "lo_offset": 0 if assigned else -1,
        "hi_offset": 40 if assigned else -1,
        "ls_offset": 40 if assigned else -1,
        "consumer_lag": lag,
        "consumer_lag_stored": lag,
        "leader_epoch": 0,
        "txmsgs": 0,
        "txbytes": 0,
        "rxmsgs": 40 if assigned else 0,
        "rxbytes": 4000 if assigned else 0,
        "msgs": 40 if assigned else 0,
        "rx_ver_drops": 0,
        "msgs_inflight": 0,
        "next_ack_seq": 0,
        "next_err_seq": 0,
        "acked_msgid": 0,
    }


def _stats_json(lags: dict[str, dict[int, int]]) -> str:
    """Statistics JSON where ``lags[topic][partition]`` is the consumer_lag to report.

    Every topic also gets librdkafka's internal ``-1`` (UA) partition.
    """
    topics: dict[str, Any] = {}
    for topic, parts in lags.items():
        partitions = {str(p): _partition(p, lag) for p, lag in parts.items()}
        partitions["-1"] = _partition(-1, -1)
        topics[topic] = {
            "topic": topic,
            "age": 12000,
            "metadata_age": 3000,
            "batchsize": {"min": 0, "max": 0, "avg": 0, "p50": 0, "p99": 0, "cnt": 0},
            "batchcnt": {"min": 0, "max": 0, "avg": 0, "p50": 0, "p99": 0, "cnt": 0},
            "partitions": partitions,
        }
    doc = {
        "name": "ktf-consumer#consumer-1",
        "client_id": "ktf-consumer",
        "type": "consumer",
        "ts": 123456789012,
        "time": 1760000000,
        "age": 12000345,
        "replyq": 0,
        "msg_cnt": 0,
        "msg_size": 0,
        "msg_max": 100000,
        "msg_size_max": 1073741824,
        "simple_cnt": 0,
        "metadata_cache_cnt": len(lags),
        "brokers": {
            "127.0.0.1:9092/1": {
                "name": "127.0.0.1:9092/1",
                "nodeid": 1,
                "nodename": "127.0.0.1:9092",
                "source": "learned",
                "state": "UP",
                "stateage": 11000000,
                "outbuf_cnt": 0,
                "waitresp_cnt": 1,
                "rtt": {"min": 100, "max": 900, "avg": 300, "p50": 250, "p99": 900, "cnt": 10},
                "toppars": {},
            }
        },
        "topics": topics,
        "cgrp": {
            "state": "up",
            "stateage": 10000,
            "join_state": "steady",
            "rebalance_age": 9000,
            "rebalance_cnt": 1,
            "rebalance_reason": "",
            "assignment_size": sum(1 for p in lags.values() for lag in p.values() if lag >= 0),
        },
        "tx": 10,
        "tx_bytes": 1000,
        "rx": 10,
        "rx_bytes": 5000,
        "txmsgs": 0,
        "txmsg_bytes": 0,
        "rxmsgs": 40,
        "rxmsg_bytes": 4000,
    }
    return json.dumps(doc)


@pytest.fixture
def stats_json() -> Callable[[dict[str, dict[int, int]]], str]:
    """Build librdkafka statistics JSON: ``stats_json({topic: {partition: lag}})``."""
    return _stats_json
