"""moto in server mode on 127.0.0.1, in this process, with optional IAM auth enforcement.

moto keeps its state (users, keys, roles, assumed-role sessions) in process-wide globals, which
is what lets the STS front, running in the same process, read the secrets it holds
(:mod:`kubeiam.localaws.principals`). The same globals mean one environment per process: a
second :class:`MotoServer` refuses to start while one is running.

Why not ``moto.server.ThreadedMotoServer``: it logs every request through werkzeug's logger to
stderr and its ``stop()`` leaves the listening socket open. This class builds the same WSGI
application with moto's public pieces, a quiet request handler, and closes everything on stop.

IAM auth enforcement (``enforce_iam_auth=True``)
    moto counts requests and, once the count reaches ``settings.INITIAL_NO_AUTH_ACTION_COUNT``
    (infinite by default, i.e. never), checks every request's SigV4 signature against the keys it
    issued and evaluates IAM policies: users need an identity policy for what they call, and
    ``sts:AssumeRole`` additionally needs the role's trust policy to name the caller, with
    ``StringEquals`` conditions such as ``sts:ExternalId`` honoured when an external id is sent
    (moto does not refuse a *missing* external id). A trust policy naming an account
    (``arn:aws:iam::<account>:root``) admits that account's principals, as in AWS (moto alone
    compares the ARN literally; see :func:`_honour_account_principals`). Removing a user from
    the group whose policy allowed AssumeRole makes AssumeRole fail, as in AWS. With enforcement
    off moto accepts any credentials for anything.

    moto (5.x) computes the payload hash of a bodiless REST request (EKS ``GET /clusters``...)
    over its parsed header dict instead of the empty body, so every such call fails with
    SignatureDoesNotMatch once enforcement is on. While enforcing, :class:`MotoServer` wraps
    ``IAMRequestBase._create_aws_request`` to hash the empty body for GET/HEAD/DELETE requests
    without one, and restores the original on stop.

    The count is process-wide state; :meth:`MotoServer.start` saves it, lets one bootstrap phase
    run unauthenticated to create a ``localaws-admin`` user with an allow-everything inline
    policy and an access key in each of ``aws``, ``aws-cn`` and ``aws-us-gov`` (IAM, like in
    AWS, is per partition), then sets the count to 0 (enforcement on) or leaves it infinite
    (off). :meth:`MotoServer.stop` restores the saved values and resets moto's backends.

EKS access entries
    moto's EKS backend has clusters but no access entries, access policies or authentication
    mode. :meth:`MotoServer.start` adds them (:mod:`kubeiam.localaws.eks_api`, rules in
    :mod:`kubeiam.localaws.eks_rules`) before the first request and removes them on stop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubeiam.errors import ConfigError
from kubeiam.partitions import partition_for_region

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

#: moto's account when no account header or variable says otherwise.
DEFAULT_ACCOUNT_ID = "123456789012"
ADMIN_USER = "localaws-admin"
_ADMIN_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
#: Partitions that get an admin identity at start, with a region to create it through.
ADMIN_PARTITION_REGIONS = {
    "aws": "us-east-1",
    "aws-cn": "cn-north-1",
    "aws-us-gov": "us-gov-west-1",
}
#: Only one environment per process: moto's state is process-wide.
_RUNNING = threading.Lock()


@dataclass(frozen=True, slots=True)
class AdminCredentials:
    """Keys of the allow-everything IAM user created for setup. Never print the secret."""

    access_key_id: str
    secret_access_key: str
    arn: str

    def __repr__(self) -> str:
        return f"AdminCredentials(access_key_id={self.access_key_id!r}, arn={self.arn!r})"


class MotoServer:
    """moto's WSGI application served by werkzeug on 127.0.0.1:``port`` in a daemon thread."""

    def __init__(self, *, port: int = 0, enforce_iam_auth: bool = True) -> None:
        self._requested_port = port
        self.enforce_iam_auth = enforce_iam_auth
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._saved_auth: tuple[float, int] | None = None
        self._holds_lock = False
        self._unpatch: Callable[[], None] | None = None
        #: Undoes the EKS access-entry routes (:mod:`kubeiam.localaws.eks_api`).
        self._uninstall_eks: Callable[[], None] | None = None
        self.admin: AdminCredentials | None = None
        #: partition name -> its admin identity
        self.admins: dict[str, AdminCredentials] = {}

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("moto server is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, bootstrap_region: str = "us-east-1") -> AdminCredentials:
        """Bind, serve, create the admin identity, then switch enforcement as configured."""
        if not _RUNNING.acquire(blocking=False):
            raise ConfigError(
                "a local AWS environment is already running in this process",
                hint="moto keeps its state in process-wide globals: stop the first one, or "
                "share it (the pytest fixture `local_aws` is session-scoped)",
            )
        self._holds_lock = True
        try:
            self._serve()
            self.admin = self._bootstrap(bootstrap_region)
        except BaseException:
            self.stop()
            raise
        return self.admin

    def _serve(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        class QuietHandler(MotoRequestHandler):
            """No per-request log line (werkzeug writes them to stderr by default)."""

            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                return None

        from kubeiam.localaws.eks_api import install as install_eks_access_entries

        # moto has EKS clusters but no access entries: add them before the EKS app is built.
        self._uninstall_eks = install_eks_access_entries()
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            "127.0.0.1", self._requested_port, app, threaded=True, request_handler=QuietHandler
        )
        server = self._server
        self._thread = threading.Thread(
            target=server.serve_forever, name="kubeiam-localaws-moto", daemon=True
        )
        self._thread.start()

    def _bootstrap(self, region: str) -> AdminCredentials:
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.moto_api._internal.models import moto_api_backend

        # Start from an empty moto: a mock_aws test earlier in this process may have left state.
        moto_api_backend.reset()
        self._saved_auth = (
            settings.INITIAL_NO_AUTH_ACTION_COUNT,
            ActionAuthenticatorMixin.request_count,
        )
        settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
        # IAM is per partition (keys of aws are unknown in aws-cn), so each gets its own admin,
        # and so does the partition of ``region`` if it is none of the usual three.
        regions = dict(ADMIN_PARTITION_REGIONS)
        regions[partition_for_region(region).name] = region
        for partition, partition_region in regions.items():
            self.admins[partition] = _create_admin(self.url, partition_region)
        if self.enforce_iam_auth:
            undo_signatures = _fix_bodiless_rest_signatures()
            undo_principals = _honour_account_principals()

            def undo() -> None:
                undo_principals()
                undo_signatures()

            self._unpatch = undo
            settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
            ActionAuthenticatorMixin.request_count = 0
        return self.admins[partition_for_region(region).name]

    def stop(self) -> None:
        """Stop serving, close the socket, reset moto's state and auth settings. Idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        if self._unpatch is not None:
            self._unpatch()
            self._unpatch = None
        if self._uninstall_eks is not None:
            self._uninstall_eks()
            self._uninstall_eks = None
        if self._saved_auth is not None:
            from moto import settings
            from moto.core.authorization import ActionAuthenticatorMixin
            from moto.moto_api._internal.models import moto_api_backend

            settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = (
                self._saved_auth
            )
            self._saved_auth = None
            moto_api_backend.reset()
        self.admin = None
        self.admins = {}
        if self._holds_lock:
            self._holds_lock = False
            _RUNNING.release()


def _create_admin(url: str, region: str) -> AdminCredentials:
    import boto3

    iam: Any = boto3.client(
        "iam",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",  # noqa: S106 - unauthenticated phase, moto accepts any
    )
    user = iam.create_user(UserName=ADMIN_USER)["User"]
    iam.put_user_policy(UserName=ADMIN_USER, PolicyName="everything", PolicyDocument=_ADMIN_POLICY)
    key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    return AdminCredentials(key["AccessKeyId"], key["SecretAccessKey"], user["Arn"])


#: Methods whose requests carry no body, so SigV4 hashes the empty string.
_BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE"})


def _fix_bodiless_rest_signatures() -> Callable[[], None]:
    """Make moto hash the empty body of bodiless REST requests; returns the undo function."""
    from moto.iam.access_control import IAMRequestBase

    original = IAMRequestBase._create_aws_request

    def create_aws_request(self: Any) -> Any:
        if self._method not in _BODILESS_METHODS or self._body:
            return original(self)
        parsed = self._data
        self._data = b""  # moto signs ``self._body or self._data``; this object is per request
        try:
            return original(self)
        finally:
            self._data = parsed

    IAMRequestBase._create_aws_request = create_aws_request  # type: ignore[method-assign]

    def undo() -> None:
        IAMRequestBase._create_aws_request = original  # type: ignore[method-assign]

    return undo


def _account_of(principal: str) -> tuple[str, str] | None:
    """(partition, account) of an ARN, or of a bare 12-digit account id (partition "")."""
    if len(principal) == 12 and principal.isdigit():
        return "", principal
    parts = principal.split(":")
    if len(parts) < 6 or parts[0] != "arn" or not parts[4]:
        return None
    return parts[1], parts[4]


def _names_the_account(expected: str, caller: str) -> bool:
    """True when the trust policy principal ``expected`` is an account (``123456789012`` or
    ``arn:<partition>:iam::123456789012:root``) and ``caller`` belongs to it."""
    if not (expected.isdigit() or expected.endswith(":root")):
        return False
    want, have = _account_of(expected), _account_of(caller)
    if want is None or have is None:
        return False
    return want[1] == have[1] and want[0] in ("", have[0])


def _honour_account_principals() -> Callable[[], None]:
    """Make trust policies that name an account admit that account's principals, as in AWS.

    moto compares a trust policy's ``Principal.AWS`` with the caller's ARN literally, so a role
    trusted by its account (``arn:aws:iam::<account>:root``, what create-access-role writes)
    could never be assumed. In AWS such a trust delegates the decision to the caller's own
    identity policies, which moto checks separately. Returns the undo function.
    """
    from moto.iam.access_control import IAMPolicyStatement

    original = IAMPolicyStatement._check_principal

    def check_principal(self: Any, principal: str) -> bool:
        if original(self, principal):
            return True
        expected = self._statement.get("Principal")
        aws = expected.get("AWS") if isinstance(expected, dict) else None
        names = [aws] if isinstance(aws, str) else [n for n in aws or () if isinstance(n, str)]
        return any(_names_the_account(name, principal) for name in names)

    IAMPolicyStatement._check_principal = check_principal  # type: ignore[method-assign]

    def undo() -> None:
        IAMPolicyStatement._check_principal = original  # type: ignore[method-assign]

    return undo
