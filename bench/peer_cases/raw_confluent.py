"""The client's limit: confluent-kafka ``consume(500)`` and a fastavro decode per record."""

from __future__ import annotations

from _common import BOOTSTRAP, GROUP, TOPIC, decode, hit
from confluent_kafka import Consumer


def main() -> None:
    consumer = Consumer(
        {"bootstrap.servers": BOOTSTRAP, "group.id": GROUP, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([TOPIC])
    while True:
        msgs = consumer.consume(500, 0.1)
        n = 0
        for msg in msgs:
            if msg.error() is None:
                decode(msg.value())
                n += 1
        if n:
            hit(n)


if __name__ == "__main__":
    main()
