"""The opt-in check against the real EKS service (``make smoke-aws``; docs/access-entries.md).

Never collected by ``make test`` (its paths are tests/unit and tests/integration) nor by a bare
``pytest`` (the module's name, ``smoke_*.py``, is not a test file pattern): only naming the file
runs it. Then it refuses to start, with one line saying what is missing and exit status 2,
unless real credentials and ``KUBEIAM_SMOKE_CLUSTER`` are there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from smoke_eks_script import CLUSTER_VARIABLE

HERE = Path(__file__).resolve().parent
#: pytest's status for "usage error": nothing ran.
REFUSED = 2


@pytest.fixture(autouse=True)
def scrubbed_env() -> None:
    """Overrides tests/conftest.py's: this test needs the real AWS environment it is given."""


def missing_requirements() -> list[str]:
    """What stops the smoke test from running, in words a person can act on.

    Credentials are only resolved once the cluster is named: resolving them may ask the instance
    metadata service, which nothing should reach unless the smoke test was truly asked for.
    """
    if not os.environ.get(CLUSTER_VARIABLE):
        return [
            f"{CLUSTER_VARIABLE} (a disposable EKS cluster in API or API_AND_CONFIG_MAP mode) "
            "and AWS credentials for it"
        ]
    import boto3

    missing = []
    session = boto3.Session()
    if session.get_credentials() is None:
        missing.append(
            "AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO ...)"
        )
    if not session.region_name:
        missing.append("a region (AWS_REGION or the profile's region)")
    return missing


def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse when a smoke test was collected (a bare ``pytest tests`` collects none)."""
    if not any(HERE in Path(item.path).parents for item in session.items):
        return
    missing = missing_requirements()
    if missing:
        pytest.exit(
            "kubeiam smoke-aws: refusing to run against the real EKS service without "
            + "; ".join(missing)
            + ". See docs/access-entries.md, 'Testing against the real service'.",
            returncode=REFUSED,
        )
