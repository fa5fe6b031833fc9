"""What each child is told: its own client id, group instance id and a loopback port."""

from __future__ import annotations

import socket

from framework import Settings
from framework.observability.announce import Announcer
from framework.supervisor.process import child_settings, describe_exit
from framework.supervisor.wire import receive_settings, send_settings


def test_each_child_gets_ids_derived_from_the_pods() -> None:
    pod = Settings(client_id="pod-a", group_instance_id="pod-a", metrics_port=9100, processes="2")
    kids = [child_settings(pod, i) for i in range(2)]
    assert [k.librdkafka("consumer")["client.id"] for k in kids] == [
        "pod-a-0-consumer",
        "pod-a-1-consumer",
    ]
    assert [k.librdkafka("consumer")["group.instance.id"] for k in kids] == ["pod-a-0", "pod-a-1"]
    assert all(k.metrics_port == 0 and k.metrics_host == "127.0.0.1" for k in kids)
    assert all(k.processes == "1" for k in kids)
    assert all(k.group_id == pod.group_id for k in kids)


def test_children_announce_the_pods_port_and_their_own_path_for_ktf_top() -> None:
    pod = Settings(advertised_host="pod-a.workers", metrics_port=9100)
    kid = child_settings(pod, 1)
    assert kid.advertised_metrics_url == "http://pod-a.workers:9100/processes/1/metrics"
    announced = Announcer(kid, ["t"], metrics_port=lambda: 45678, member_id=lambda: None)
    assert announced.current().metrics_url == "http://pod-a.workers:9100/processes/1/metrics"
    # A pod that serves no metrics port: its children announce no URL (not a loopback one).
    quiet = child_settings(pod.replace(metrics_port=0), 0)
    announced = Announcer(quiet, ["t"], metrics_port=lambda: 45678, member_id=lambda: None)
    assert announced.current().metrics_url is None


def test_without_static_membership_children_stay_dynamic_members() -> None:
    kid = child_settings(Settings(), 1)
    assert kid.group_instance_id is None
    assert "group.instance.id" not in kid.librdkafka("consumer")


def test_settings_cross_the_socket_pair_whole_secrets_included() -> None:
    a, b = socket.socketpair()
    with a, b:
        sent = Settings(
            sasl_password="s3cret",
            security_protocol="SASL_SSL",
            sasl_mechanism="PLAIN",
            kafka_overrides={"fetch.wait.max.ms": "50"},
        )
        send_settings(a, sent, 3)
        got, index = receive_settings(b)
    assert (got, index) == (sent, 3)


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(-9) == "killed by SIGKILL"
