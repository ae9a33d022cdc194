"""pytest plugin: the session-scoped ``local_aws`` fixture.

List it in a conftest: ``pytest_plugins = ["kubeiam.localaws.pytest_plugin"]``. The environment
starts on first use (about a second, mostly importing moto) and is shared by the whole session.
A fault switched on by a test (``local_aws.set_sts_fault("hang")``) is switched off again after
that test, and the counters (``sts_requests``, ``redirect_hits``) start from 0 in every test, so
one test never leaks into the next.

Do not mix it with moto's in-process ``mock_aws`` in the same pytest process: that resets the
backends this environment shares (its admin users vanish) and intercepts boto3 in-process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubeiam.localaws.environment import LocalAWS, start_local_aws

_RUNNING = pytest.StashKey[LocalAWS]()


@pytest.fixture(scope="session")
def local_aws(request: pytest.FixtureRequest) -> Iterator[LocalAWS]:
    """The shared local AWS environment: us-east-1, moto's IAM auth enforced."""
    with start_local_aws("us-east-1", enforce_iam_auth=True) as aws:
        request.config.stash[_RUNNING] = aws
        try:
            yield aws
        finally:
            del request.config.stash[_RUNNING]


@pytest.fixture(autouse=True)
def _local_aws_clear_fault(request: pytest.FixtureRequest) -> Iterator[None]:
    """Zero the counters before each test, switch faults off after it (if the env is running)."""
    aws = request.config.stash.get(_RUNNING, None)
    if aws is not None:
        aws.reset_counters()
    yield
    aws = request.config.stash.get(_RUNNING, None)
    if aws is not None:
        aws.set_sts_fault(None)
