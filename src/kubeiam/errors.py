"""The one exception tree of kubeiam.

Every error kubeiam raises on purpose derives from :class:`KubeIAMError`. Library exceptions
(botocore, aiohttp, lightkube, OSError) are translated into this tree once, at the adapter that
called the library. The CLI maps the tree to exit codes in one place (``kubeiam.cli.main``); the
webhook maps it to HTTP statuses through ``http_status``.

::

    KubeIAMError                      exit 1, HTTP 500
    ├── ConfigError                   exit 2: bad flag, config file or environment value
    ├── CredentialsError              exit 3: no usable AWS credentials, or AssumeRole refused
    ├── CacheError                    exit 4: unsafe or unusable cache file or directory
    ├── TokenError                    HTTP 403: the token does not authenticate anyone
    │   ├── TokenFormatError          a rule checked before any network call failed
    │   │   └── TokenExpiredError     X-Amz-Date outside the 15-minute window (or in the future)
    │   └── STSError                  STS refused the request or answered something unusable
    │       ├── STSUnavailableError   STS unreachable: timeout, refused connection, redirect
    │       └── STSThrottledError     HTTP 429: STS throttled us; the caller should retry later
    ├── MappingError                  a mapping entry or file is invalid (load time)
    │   └── MappingDeniedError        HTTP 403: an entry matched but cannot apply to this caller
    ├── ReviewRequestError            HTTP 400: the webhook's request body is not a TokenReview
    ├── KubeAPIError                  the Kubernetes API refused or failed a call
    │   └── ConflictError             resourceVersion conflict that survived the retries
    ├── AWSAdminError                 an IAM/EKS/EC2 call made by an admin command failed
    ├── NotFoundError                 exit 1: what a removal names does not exist (kubectl
    │                                 delete's NotFound; --ignore-not-found accepts it)
    └── GuardError                    exit 5: a protected change was refused (use --force)

Messages say what is wrong and how to fix it. They never contain a token, a presigned URL, a
signature or a secret key: callers pass only safe fragments (host names, key ids, field names).
"""

#: The :attr:`KubeIAMError.code` of a key given twice in one mapping (a reader would keep one).
DUPLICATE_KEY = "duplicate-key"


class KubeIAMError(Exception):
    """Base of every error kubeiam raises on purpose."""

    exit_code: int = 1
    http_status: int = 500
    #: The webhook's ``result`` metric label when this error refuses a review (with
    #: ``http_status`` and the message as the answer); None: an internal failure, answered 503
    #: with a generic reason (kubeiam.server.app).
    review_result: str | None = None
    #: What kind of problem this is, named where it is found (``kubeiam mapping lint`` reports
    #: it as the finding's code); None when no one set it.
    code: str | None = None

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message


class ConfigError(KubeIAMError):
    """A flag, configuration file or environment variable has a value kubeiam cannot use."""

    exit_code = 2


class CredentialsError(KubeIAMError):
    """No usable AWS credentials were found, or obtaining them (AssumeRole, SSO) failed."""

    exit_code = 3


class CacheError(KubeIAMError):
    """A cache file or directory is unsafe (readable by others) or unusable."""

    exit_code = 4


class TokenError(KubeIAMError):
    """The token does not authenticate anyone. Safe to show to the client (no secrets inside)."""

    http_status = 403
    review_result = "invalid_token"


class TokenFormatError(TokenError):
    """The token failed a rule that is checked before any network call."""


class TokenExpiredError(TokenFormatError):
    """The token's X-Amz-Date is outside the accepted window."""


class STSError(TokenError):
    """STS refused the presigned request or answered something kubeiam cannot use."""

    review_result = "sts_error"


class STSUnavailableError(STSError):
    """STS could not be reached: connection refused, timeout, TLS failure, or a redirect."""


class STSThrottledError(STSError):
    """STS throttled the request. The webhook answers 429 so that the API server retries."""

    http_status = 429
    review_result = "sts_throttling"


class MappingError(KubeIAMError):
    """A mapping entry, file or ConfigMap is invalid."""

    exit_code = 2


class MappingDeniedError(MappingError):
    """An entry matched the caller but cannot be applied: a template cannot be rendered for this
    caller ({{EC2PrivateDNSName}} for a non-instance session), or the rendered username uses a
    prefix reserved for that backend. The review is denied; the reason is safe to show."""

    http_status = 403
    review_result = "uknown_user"  # the reference's spelling, which dashboards query


class ReviewRequestError(KubeIAMError):
    """The body POSTed to the webhook is not a TokenReview kubeiam can read."""

    http_status = 400
    review_result = "malformed_request"


class KubeAPIError(KubeIAMError):
    """The Kubernetes API refused or failed a call."""


class ConflictError(KubeAPIError):
    """An update kept conflicting with concurrent writers after every retry."""


class AWSAdminError(KubeIAMError):
    """An IAM, EKS or EC2 call made by an admin command failed."""

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message, hint=hint)
        #: The AWS error code (``AccessDenied``, ``NoSuchEntity`` ...) when AWS gave one.
        self.code = code


class NotFoundError(KubeIAMError):
    """A removal names something that does not exist: a typo is not a success. The message
    names the closest existing names (:func:`kubeiam.suggestions.closest_names`);
    ``--ignore-not-found`` (kubectl delete's convention) turns it into a no-op."""


class GuardError(KubeIAMError):
    """A protected change was refused; ``--force`` overrides it after reading the message."""

    exit_code = 5
