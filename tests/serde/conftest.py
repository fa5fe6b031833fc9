"""Fixtures for the serde tests: a schema tree with cross-file types and history."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.serde import SchemaStore

SCHEMAS = Path(__file__).parent / "schemas"
ORDER = "ktf.test.Order"


@pytest.fixture(scope="session")
def store() -> SchemaStore:
    return SchemaStore.load([SCHEMAS])


@pytest.fixture
def order() -> dict[str, object]:
    return {
        "id": "o-1",
        "total": {"amount": 1250, "currency": "EUR"},
        "status": "SHIPPED",
        "note": "leave at door",
        "priority": 2,
        "tags": ["gift"],
        "coupon": {"code": "SPRING"},
    }
