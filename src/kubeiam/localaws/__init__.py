"""The local AWS environment for tests and demos: moto + an STS front that verifies presigns.

Start it with :func:`start_local_aws` (a context manager), the session-scoped pytest fixture
``local_aws`` (:mod:`kubeiam.localaws.pytest_plugin`), or ``kubeiam localaws``. Needs the dev
extras (moto, trustme).
"""

from __future__ import annotations

from kubeiam.localaws.environment import LocalAWS, start_local_aws
from kubeiam.localaws.sts_front import StsFault

__all__ = ["LocalAWS", "StsFault", "start_local_aws"]
