"""What a refused Kubernetes API request was, in RBAC's words (pure).

A 403 names the verb and resource RBAC refused, as ``kubectl auth can-i`` would ask it:
``the Kubernetes API refused user "alice": get configmaps aws-auth in kube-system (403 Forbidden)``
with a fix line pointing at docs/permissions.md. A 401 says the credentials were not accepted
and where they came from. Both are :class:`KubeAccessError`, a :class:`KubeAPIError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from kubeiam.errors import KubeAPIError

UNAUTHORIZED = 401
FORBIDDEN = 403
#: Where each admin command's RBAC and IAM needs are written down.
PERMISSIONS_DOC = "docs/permissions.md"
#: The API server names the user in its Forbidden message: ``User "x" cannot get ...``.
_USER_IN_MESSAGE = re.compile(r'User "([^"\n]{1,256})"')


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One API request as RBAC sees it."""

    verb: str
    resource: str
    group: str = ""
    name: str | None = None
    namespace: str | None = None
    subresource: str | None = None

    def __str__(self) -> str:
        resource = self.resource + (f"/{self.subresource}" if self.subresource else "")
        if self.group:
            resource += f".{self.group}"
        text = f"{self.verb} {resource}"
        if self.name:
            text += f" {self.name}"
        if self.namespace:
            text += f" in {self.namespace}"
        return text


def describe_request(method: str, path: str, query: Mapping[str, str]) -> ApiRequest | None:
    """The RBAC verb and resource of a request path (None for non-resource paths)."""
    parts = [unquote(p) for p in path.split("/") if p]
    # A server URL with a path prefix (a proxy) puts parts before api/apis.
    for i, part in enumerate(parts):
        if part in ("api", "apis"):
            parts = parts[i:]
            break
    else:
        return None
    if parts[0] == "api" and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    method = method.upper()
    watching = query.get("watch") in ("true", "1")
    if method == "GET":
        verb = "watch" if watching else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    return ApiRequest(verb, resource, group, name, namespace, subresource)


def server_message(body: bytes) -> str:
    """The ``message`` of a Status body (empty when there is none)."""
    import json

    try:
        doc = json.loads(body[:65536])
    except (ValueError, RecursionError):
        return ""
    message = doc.get("message") if isinstance(doc, dict) else None
    return message.splitlines()[0][:500] if isinstance(message, str) and message else ""


class KubeAccessError(KubeAPIError):
    """The API answered 401 (credentials not accepted) or 403 (RBAC refused the request)."""

    def __init__(
        self, message: str, *, hint: str | None, status: int, request: ApiRequest | None
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.request = request


def refusal(
    status: int,
    request: ApiRequest | None,
    *,
    path: str,
    message: str,
    server: str,
    credentials: str,
    origin: str,
) -> KubeAccessError:
    """The error for a 401 or 403 answer."""
    what = str(request) if request is not None else path
    if status == UNAUTHORIZED:
        return KubeAccessError(
            f"the Kubernetes API at {server} did not accept the credentials ({credentials}, "
            f"{origin}): {what} (401 Unauthorized)",
            hint="check that this identity may log in to the cluster: for kubeiam, is the IAM "
            "identity mapped (`kubeiam whoami`)? for another plugin, run it by hand",
            status=status,
            request=request,
        )
    found = _USER_IN_MESSAGE.search(message)
    who = f" user {found.group(1)!r}" if found else ""
    if request is not None:
        scope = f" in namespace {request.namespace}" if request.namespace else " (cluster-wide)"
        group = request.group or '""'
        hint = (
            f"grant{who or ' this identity'} RBAC verb {request.verb!r} on {request.resource} "
            f"(apiGroup {group}){scope} ({PERMISSIONS_DOC} lists what each command needs), "
            "or use a --context that has it"
        )
    else:
        hint = f"use a --context with more access ({PERMISSIONS_DOC})"
    return KubeAccessError(
        f"the Kubernetes API refused{who}: {what} (403 Forbidden)",
        hint=hint,
        status=status,
        request=request,
    )
