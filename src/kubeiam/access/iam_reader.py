"""Read one account's IAM in bulk for the access report (I/O at the edge).

One ``GetAccountAuthorizationDetails`` answer carries users with their groups and policies,
groups, roles with their trust policies and boundaries, and the managed policies' documents: a
few pages for the whole account instead of several calls per principal. The pages are joined by
the pure :func:`kubeiam.access.iam_graph.account_from_details`.

Pages are requested by ``Marker`` rather than through a boto3 paginator so that a throttled page
is retried by itself: a paginator that raises mid-way starts again from the first page. Retries
are bounded (:data:`MAX_ATTEMPTS` per page, exponential backoff with a cap); the client's own
retry settings still apply underneath.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from kubeiam.access.credential_report import key_ages
from kubeiam.access.iam_graph import AccountIAM, account_from_details
from kubeiam.errors import AWSAdminError

#: Every kind of entity the report needs; AWS managed policies are included because identities
#: attach them (AdministratorAccess ...) and their documents are needed to evaluate.
FILTER = ("User", "Role", "Group", "LocalManagedPolicy", "AWSManagedPolicy")
#: Error codes IAM answers when it throttles (the Query API says Throttling; SDKs also map
#: these others to throttling).
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)
#: Tries per page before the report gives up: with the delays below, about 6 s of waiting.
MAX_ATTEMPTS = 6
#: First backoff delay in seconds, doubled per retry, never above MAX_DELAY.
BASE_DELAY = 0.2
MAX_DELAY = 3.0


def read_account(
    iam: Any,
    *,
    account_id: str = "",
    max_attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> AccountIAM:
    """Read every page with ``iam`` (a boto3 IAM client) and join them."""
    pages = list(read_pages(iam, max_attempts=max_attempts, sleep=sleep))
    return account_from_details(pages, account_id=account_id)


def read_pages(
    iam: Any, *, max_attempts: int = MAX_ATTEMPTS, sleep: Callable[[float], None] = time.sleep
) -> Iterator[Mapping[str, object]]:
    """Yield each page of ``GetAccountAuthorizationDetails``, retrying throttled pages."""
    marker: str | None = None
    while True:
        page = _page(iam, marker, max_attempts, sleep)
        yield page
        marker = page.get("Marker") if page.get("IsTruncated") else None
        if not isinstance(marker, str) or not marker:
            return


def _page(
    iam: Any, marker: str | None, max_attempts: int, sleep: Callable[[float], None]
) -> Mapping[str, Any]:
    kwargs: dict[str, Any] = {"Filter": list(FILTER)}
    if marker:
        kwargs["Marker"] = marker
    return _call(iam, "get_account_authorization_details", kwargs, max_attempts, sleep)


def _call(
    iam: Any,
    method: str,
    kwargs: Mapping[str, Any],
    max_attempts: int,
    sleep: Callable[[float], None],
) -> Mapping[str, Any]:
    """One IAM call, retried with backoff while IAM throttles, at most ``max_attempts`` times."""
    from botocore.exceptions import BotoCoreError, ClientError

    operation = "".join(part.title() for part in method.split("_"))
    for attempt in range(1, max_attempts + 1):
        try:
            answer: Mapping[str, Any] = getattr(iam, method)(**kwargs)
            return answer
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in THROTTLING_CODES and attempt < max_attempts:
                sleep(min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1)))
                continue
            raise _translate(operation, code, exc, attempt) from None
        except BotoCoreError as exc:
            raise AWSAdminError(
                f"reading IAM ({operation}) failed: {exc}",
                hint="check the network path to IAM and the AWS region/endpoint settings",
            ) from None
    raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


def _translate(operation: str, code: str, exc: Exception, attempts: int) -> AWSAdminError:
    if code in THROTTLING_CODES:
        return AWSAdminError(
            f"IAM throttled {operation} {attempts} times in a row",
            hint="run the report again later, when fewer IAM calls compete for the account's quota",
            code=code,
        )
    message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
    if code in ("AccessDenied", "AccessDeniedException"):
        return AWSAdminError(
            f"reading IAM ({operation}) was refused: {code}",
            hint=f"the report needs iam:{operation} (e.g. the IAMReadOnlyAccess managed policy)",
            code=code,
        )
    return AWSAdminError(f"reading IAM failed: {code}: {message}".rstrip(": "), code=code)


#: How often to ask whether the credential report is ready, and how long to wait between asks.
REPORT_POLLS = 10
REPORT_POLL_DELAY = 1.0


def read_access_key_ages(
    iam: Any,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    polls: int = REPORT_POLLS,
    sleep: Callable[[float], None] = time.sleep,
) -> Mapping[str, tuple[datetime, ...]]:
    """User ARN -> times its active access keys were created or rotated, from one credential
    report (generated if IAM has none recent, polled a bounded number of times)."""
    for _ in range(polls):
        state = _call(iam, "generate_credential_report", {}, max_attempts, sleep).get("State")
        if state == "COMPLETE":
            break
        sleep(REPORT_POLL_DELAY)
    else:
        raise AWSAdminError(
            f"IAM did not finish the credential report after {polls} polls",
            hint="run again in a minute: IAM generates the report in the background",
        )
    report = _call(iam, "get_credential_report", {}, max_attempts, sleep)
    content = report.get("Content", b"")
    text = content.decode("utf-8") if isinstance(content, bytes) else str(content)
    return key_ages(text)
