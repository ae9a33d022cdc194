"""TokenReview wire shapes (``authentication.k8s.io/v1`` and ``v1beta1``) and their parsing (pure).

kube-apiserver POSTs a TokenReview whose ``spec`` carries the bearer token and, when the request
is audience-limited, ``spec.audiences``. The answer echoes ``apiVersion`` and ``kind`` and fills
``status``. On audiences (kube-apiserver's contract): when ``status.audiences`` is absent the API
server intersects the requested audiences with its own implicit ones, which is right for an IAM
token (it is bound to the cluster id, not to an audience); when the operator configures
``audiences``, the answer carries the intersection and an empty intersection is a deny.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, NotRequired, TypedDict

from kubeiam.errors import ReviewRequestError
from kubeiam.identity import Identity

API_VERSIONS: Final = frozenset({"authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"})
KIND: Final = "TokenReview"
#: Extra key the reference sets besides ``principalId``; kept so RBAC and audit rules still match.
PRINCIPAL_ID_EXTRA: Final = "sigs.k8s.io/aws-iam-authenticator/principalId"


class TokenReviewSpec(TypedDict, total=False):
    token: str
    audiences: list[str]


class UserInfo(TypedDict):
    username: str
    uid: str
    groups: list[str]
    extra: NotRequired[dict[str, list[str]]]


class TokenReviewStatus(TypedDict, total=False):
    authenticated: bool
    user: UserInfo
    audiences: list[str]
    error: str


class TokenReview(TypedDict):
    apiVersion: str
    kind: str
    spec: NotRequired[TokenReviewSpec]
    status: NotRequired[TokenReviewStatus]


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    """What kubeiam needs from a TokenReview request. ``repr`` hides the token."""

    api_version: str
    token: str
    audiences: tuple[str, ...]

    def __repr__(self) -> str:
        return f"ReviewRequest(api_version={self.api_version!r}, audiences={self.audiences!r})"


def parse_review(body: bytes) -> ReviewRequest:
    """Parse a TokenReview request body or raise :class:`ReviewRequestError` (HTTP 400).

    Error messages never quote the body: it carries the token.
    """
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: tens of thousands of nested brackets fit in the body-size limit
        raise ReviewRequestError("the request body is not JSON") from None
    if not isinstance(doc, dict):
        raise ReviewRequestError("the request body is not a JSON object")
    api_version = doc.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise ReviewRequestError(
            "apiVersion must be authentication.k8s.io/v1 or authentication.k8s.io/v1beta1",
            hint="start kube-apiserver with --authentication-token-webhook-version=v1",
        )
    if doc.get("kind") != KIND:
        raise ReviewRequestError("kind must be TokenReview")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise ReviewRequestError("spec must be an object")
    token = spec.get("token")
    if not isinstance(token, str):
        raise ReviewRequestError("spec.token must be a string")
    audiences = spec.get("audiences")
    if audiences is None:
        audiences = []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise ReviewRequestError("spec.audiences must be a list of strings")
    return ReviewRequest(str(api_version), token, tuple(audiences))


def user_info(
    identity: Identity, username: str, groups: tuple[str, ...], *, scrubbed: bool = False
) -> UserInfo:
    """The ``status.user`` of an accepted review (protocol.md section 3).

    ``scrubbed`` (the account is listed in ``scrubbedAccounts``) reproduces the reference: the uid
    names only the Kubernetes user and the extras that would reveal the AWS principal are left out.
    """
    if scrubbed:
        return {
            "username": username,
            "uid": f"aws-iam-authenticator:administrative:{username}",
            "groups": list(groups),
        }
    return {
        "username": username,
        "uid": identity.uid,
        "groups": list(groups),
        "extra": {
            "arn": [identity.arn],
            "canonicalArn": [identity.canonical_arn],
            "sessionName": [identity.session_name],
            "accessKeyId": [identity.access_key_id],
            "principalId": [identity.user_id],
            PRINCIPAL_ID_EXTRA: [identity.user_id],
        },
    }


def allow(api_version: str, user: UserInfo, audiences: tuple[str, ...] | None) -> TokenReview:
    """An accepted review. ``audiences`` None leaves ``status.audiences`` out (see module doc)."""
    status: TokenReviewStatus = {"authenticated": True, "user": user}
    if audiences is not None:
        status["audiences"] = list(audiences)
    return {"apiVersion": api_version, "kind": KIND, "status": status}


def deny(api_version: str, error: str) -> TokenReview:
    """A refused review with an error string safe to show (it never contains the token)."""
    return {
        "apiVersion": api_version,
        "kind": KIND,
        "status": {"authenticated": False, "error": error},
    }


def granted_audiences(
    requested: tuple[str, ...], configured: tuple[str, ...]
) -> tuple[str, ...] | None:
    """The ``status.audiences`` to answer, or None to leave the decision to kube-apiserver.

    With no configured audiences, None. With configured audiences and a request that names none,
    the configured ones. Otherwise the intersection, in request order (empty means deny).
    """
    if not configured:
        return None
    if not requested:
        return configured
    allowed = set(configured)
    return tuple(a for a in requested if a in allowed)
