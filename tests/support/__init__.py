"""Helpers shared by the test suites (and by bench/), one concept per module.

Imported as ``support.<module>`` from tests (pytest puts ``tests/`` on ``sys.path``, as for
``cluster`` in tests/e2e) and as ``tests.support.<module>`` from bench/ (which puts the repository
root there). Nothing here is a fixture: fixtures live in the conftest of the level that uses them.

- :mod:`support.tokens`: credentials of a local-AWS principal, and tokens minted from them with the
  product's own presigner (the STS front verifies them for real).
- :mod:`support.identities`: verified :class:`kubeiam.identity.Identity` values for tests that
  start after STS.
- :mod:`support.cli`: the installed ``kubeiam`` command run as a real process.
- :mod:`support.metrics`: Prometheus text read with prometheus_client's own parser.
- :mod:`support.review`: a TokenReview client for a server running on loopback.
- :mod:`support.waiting`: wait for a condition instead of sleeping for a guess.
- :mod:`support.aws_calls`: a real boto3 client's calls, counted through botocore's events.
"""
