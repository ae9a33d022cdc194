"""Build presigned GetCallerIdentity URLs and tokens for verifier tests.

Two sources: :func:`build_url` writes URLs by hand (any shape, for the rule tables; the signature
is a placeholder because nothing here checks it), and :func:`botocore_presigned_url` asks botocore,
the oracle every client must match, for a real one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeiam.token.encoding import encode_token

#: The fixed clock of the rule tables and of tests/fixtures/tokens/attacks.json.
NOW = datetime(2026, 11, 23, 15, 0, 0, tzinfo=UTC)
DATE = "20261123T150000Z"
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SIGNATURE = "5b0a9d6a1c1b2f4e8d3c7a6b5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f"
SESSION_TOKEN = "FwoGZXIvYXdzEJr//////////wEaDH+abc/def=="
CLUSTER_ID = "demo-cluster"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tokens"


def query_pairs(
    *,
    region: str = "us-east-1",
    date: str = DATE,
    akid: str = AKID,
    session_token: str | None = None,
    **overrides: str | None,
) -> list[tuple[str, str]]:
    """The decoded query of a well-formed token in botocore's order.

    ``overrides`` use the key with ``-`` written as ``_`` (``X_Amz_Expires="0"``); ``None``
    drops the key.
    """
    pairs = [
        ("Action", "GetCallerIdentity"),
        ("Version", "2011-06-15"),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{akid}/{date[:8]}/{region}/sts/aws4_request"),
        ("X-Amz-Date", date),
        ("X-Amz-Expires", "60"),
        ("X-Amz-SignedHeaders", "host;x-k8s-aws-id"),
    ]
    if session_token is not None:
        pairs.append(("X-Amz-Security-Token", session_token))
    pairs.append(("X-Amz-Signature", SIGNATURE))
    result: list[tuple[str, str]] = []
    for key, value in pairs:
        name = key.replace("-", "_")
        if name in overrides:
            replacement = overrides[name]
            if replacement is not None:
                result.append((key, replacement))
        else:
            result.append((key, value))
    return result


def encode_query(pairs: list[tuple[str, str]]) -> str:
    """Percent-encode like SigV4 (everything but A-Za-z0-9-_.~)."""
    from urllib.parse import quote

    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)


def build_url(
    host: str = "sts.us-east-1.amazonaws.com",
    pairs: list[tuple[str, str]] | None = None,
    *,
    query: str | None = None,
    **kwargs: Any,
) -> str:
    """``https://host/?query``; the query from ``query`` verbatim, else from ``pairs``."""
    if query is None:
        query = encode_query(pairs if pairs is not None else query_pairs(**kwargs))
    return f"https://{host}/?{query}"


def build_token(*args: Any, **kwargs: Any) -> str:
    return encode_token(build_url(*args, **kwargs))


def botocore_presigned_url(
    *,
    host: str,
    region: str,
    cluster_id: str = CLUSTER_ID,
    access_key_id: str = AKID,
    secret_access_key: str = SECRET,
    session_token: str | None = None,
) -> str:
    """A real presigned URL from botocore (signed now), the way EKS token clients make one."""
    import botocore.session

    session = botocore.session.Session()
    client = session.create_client(
        "sts",
        region_name=region,
        endpoint_url=f"https://{host}",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
    )

    def add_cluster_id(request: Any, **_: Any) -> None:
        request.headers["x-k8s-aws-id"] = cluster_id

    client.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_id)
    url: str = client.generate_presigned_url(
        "get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET"
    )
    return url
