"""Get and replace single objects, carrying their resourceVersion (optimistic concurrency).

``replace`` sends the object with the resourceVersion it was read at; a concurrent write makes
the API answer 409, raised as :class:`ConflictError` so callers re-read and retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeiam.errors import ConflictError, KubeAPIError

NOT_FOUND = 404
CONFLICT = 409


def _code(exc: Any) -> int | None:
    """The HTTP status of a lightkube ApiError, or of a plain httpx2 status error."""
    code = getattr(getattr(exc, "status", None), "code", None)
    if code is None:
        code = getattr(getattr(exc, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


def _api_error(action: str, exc: Any) -> KubeAPIError:
    code = _code(exc)
    message = getattr(getattr(exc, "status", None), "message", None) or str(exc).splitlines()[0]
    if code == CONFLICT:
        return ConflictError(f"{action}: the object changed since it was read ({message})")
    return KubeAPIError(f"{action} failed ({code}): {message}")


async def get_object(
    client: Any, resource: Any, name: str, *, namespace: str | None = None
) -> Mapping[str, Any] | None:
    """The object as JSON, or None when it does not exist."""
    from httpx2 import HTTPError, HTTPStatusError
    from lightkube import ApiError

    scope = {"namespace": namespace} if namespace is not None else {}
    try:
        obj = await client.get(resource, name, **scope)
    except (ApiError, HTTPStatusError) as exc:
        if _code(exc) == NOT_FOUND:
            return None
        raise _api_error(f"get {resource.__name__} {name}", exc) from None
    except HTTPError as exc:
        raise KubeAPIError(f"get {resource.__name__} {name} failed: {exc}") from None
    out: Mapping[str, Any] = obj.to_dict()
    return out


async def replace_object(client: Any, resource: Any, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """Replace ``obj`` (whose metadata carries the resourceVersion it was read at)."""
    from httpx2 import HTTPError, HTTPStatusError
    from lightkube import ApiError

    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if not meta.get("resourceVersion"):
        raise KubeAPIError(f"refusing to replace {name} without a resourceVersion")
    try:
        new = await client.replace(resource.from_dict(dict(obj)))
    except (ApiError, HTTPStatusError) as exc:
        raise _api_error(f"replace {resource.__name__} {name}", exc) from None
    except HTTPError as exc:
        raise KubeAPIError(f"replace {resource.__name__} {name} failed: {exc}") from None
    out: Mapping[str, Any] = new.to_dict()
    return out


async def create_object(client: Any, resource: Any, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """Create ``obj``; an existing object of that name is a :class:`ConflictError`."""
    from httpx2 import HTTPError, HTTPStatusError
    from lightkube import ApiError

    name = (obj.get("metadata") or {}).get("name", "")
    try:
        new = await client.create(resource.from_dict(dict(obj)))
    except (ApiError, HTTPStatusError) as exc:
        raise _api_error(f"create {resource.__name__} {name}", exc) from None
    except HTTPError as exc:
        raise KubeAPIError(f"create {resource.__name__} {name} failed: {exc}") from None
    out: Mapping[str, Any] = new.to_dict()
    return out
