"""Fixtures of the verifier tests: a test CA and a fake STS on loopback (see fake_sts.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trustme
from fake_sts import FakeSTS, serve_fake_sts


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_bundle(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def fake_sts(ca: trustme.CA) -> AsyncIterator[FakeSTS]:
    async with serve_fake_sts(ca) as state:
        yield state
