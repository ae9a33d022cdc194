"""Producing the credential ``kubeiam token`` prints: from the cache, or minted and stored.

:func:`produce` is the whole job behind the command line (which only parses arguments and
prints): check the request, settle region and endpoint, then :func:`produce_token` (cache lookup,
lock, re-check, mint, store, through :func:`kubeiam.token.cache.load_or_obtain`, the sequence the
credential cache uses too), then the ExecCredential kubectl reads.

Start-up is the product (kubectl runs the plugin on every command, often twice): a cache hit loads
neither the presigner nor botocore, nor the endpoint rules (``partitions``) or the error tree, so
:func:`mint` and :func:`check_region` import them on first use.
"""

import time

from kubeiam.token import cache as token_cache
from kubeiam.token.credentials import (
    check_request,
    endpoint_settings,
    env_credentials,
    profile_from,
    signing_credentials,
    source_descriptor,
)
from kubeiam.token.exec_credential import (
    api_version_from_exec_info,
    build_exec_credential,
    render_exec_credential,
)
from kubeiam.token.protocol import EXEC_CREDENTIAL_LIFETIME_SECONDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from kubeiam.token.credentials import TokenRequest

    #: ``(legacy, fips, dualstack)``: which STS endpoint to sign for besides the region.
    Switches = tuple[bool, bool, bool]


def utc_now() -> float:
    """The wall clock, the one place the token path reads it."""
    return time.time()


def produce(
    request: "TokenRequest",
    *,
    region_flag: str | None,
    token_only: bool,
    use_cache: bool,
    environ: "Mapping[str, str]",
    warn: "Callable[[str], None]",
) -> str:
    """The text for stdout: an ExecCredential (or the bare token) from the cache or minted.

    ``warn`` receives warnings (one line each); errors are raised as :class:`KubeIAMError`.
    """
    check_request(request)
    profile = profile_from(request.profile, environ)
    region, legacy, fips, dualstack = endpoint_settings(region_flag, profile, environ)
    api_version, warning = api_version_from_exec_info(environ.get("KUBERNETES_EXEC_INFO"))
    if warning:
        warn(warning)
    cache = None
    if use_cache:
        cache = token_cache.FileCache(token_cache.default_cache_dir(environ))
    token, expires_at = produce_token(
        request,
        region=region,
        switches=(legacy, fips, dualstack),
        profile=profile,
        environ=environ,
        cache=cache,
        warn=warn,
    )
    return render(token, expires_at, api_version, token_only)


def produce_token(
    request: "TokenRequest",
    *,
    region: str | None,
    switches: "Switches",
    profile: str | None,
    environ: "Mapping[str, str]",
    cache: "token_cache.FileCache | None",
    warn: "Callable[[str], None]",
) -> tuple[str, float]:
    """``(token, expires_at)``: a cached token with a minute left, else a new one, stored.

    Racing processes mint once: the second waits for the entry's lock, then finds the token.
    """
    now = utc_now()
    if cache is None:
        check_region(region)
        return mint(request, region, switches, environ, None, now)
    legacy, fips, dualstack = switches
    env_creds = None if profile else env_credentials(environ)
    key = token_cache.cache_key(
        {
            "kind": "token",
            "clusterId": request.cluster_id,
            # The partition is a function of the region and these three switches.
            "region": region,
            "endpoint": f"legacy={legacy},fips={fips},dualstack={dualstack}",
            "role": request.role,
            "externalId": request.external_id,
            "sessionName": request.session_name,
            "forward": "1" if request.forward_session_name else None,
            "duration": str(request.duration) if request.duration else None,
            "profile": profile,
            "source": source_descriptor(env_creds, profile, environ),
        }
    )
    return token_cache.load_or_obtain(
        cache,
        token_cache.TOKEN,
        key,
        load=lambda: token_cache.load_token(cache, key, utc_now()),
        # The key holds the region: a stored token's region passed this check when it was minted.
        before_miss=lambda: check_region(region),
        obtain=lambda: mint(request, region, switches, environ, cache, now),
        store=lambda minted: token_cache.store_token(cache, key, *minted),
        warn=warn,
    )


def mint(
    request: "TokenRequest",
    region: str | None,
    switches: "Switches",
    environ: "Mapping[str, str]",
    cache: "token_cache.FileCache | None",
    now: float,
) -> tuple[str, float]:
    """A new token and its expirationTimestamp (unix time), signed with fresh credentials."""
    from kubeiam.partitions import sts_endpoint
    from kubeiam.token.encoding import encode_token
    from kubeiam.token.presign import presign_get_caller_identity

    legacy, fips, dualstack = switches
    try:
        host, signing_region = sts_endpoint(region, legacy=legacy, fips=fips, dualstack=dualstack)
    except ValueError as exc:
        from kubeiam.errors import ConfigError  # refusing: a token minted raises nothing

        raise ConfigError(
            str(exc), hint="unset AWS_USE_DUALSTACK_ENDPOINT / use_dualstack_endpoint"
        ) from None
    creds = signing_credentials(request, region=region, environ=environ, cache=cache, now=now)
    # Read the clock again: obtaining credentials may have taken a while (an MFA prompt).
    signed_at = int(utc_now())
    expires_at = signed_at + EXEC_CREDENTIAL_LIFETIME_SECONDS
    if creds.expires_at is not None:
        left = creds.expires_at - signed_at
        if left < token_cache.TOKEN_MIN_REMAINING:
            from kubeiam.errors import CredentialsError

            raise CredentialsError(
                f"the credentials from {creds.source} expire in {max(int(left), 0)} s, too soon "
                "to sign a token",
                hint="refresh them (a new session token, `aws sso login`) and run kubectl again",
            )
        expires_at = min(expires_at, int(creds.expires_at))
    url = presign_get_caller_identity(
        access_key_id=creds.access_key_id,
        secret_access_key=creds.secret_access_key,
        session_token=creds.session_token,
        region=signing_region,
        host=host,
        cluster_id=request.cluster_id,
        now=signed_at,
    )
    return encode_token(url), float(expires_at)


def check_region(region: str | None) -> None:
    """The region, if any, is a region name: checked before a token is minted for it."""
    from kubeiam.partitions import is_client_region

    if region is not None and not is_client_region(region):
        from kubeiam.errors import ConfigError

        raise ConfigError(
            f"region {region!r} is not a region name",
            hint="pass --region like us-west-2 (or fix AWS_REGION / AWS_DEFAULT_REGION)",
        )


def render(token: str, expires_at: float, api_version: str, token_only: bool) -> str:
    """What goes to stdout: the ExecCredential document, or with ``token_only`` the bare token."""
    if token_only:
        return token + "\n"
    return render_exec_credential(build_exec_credential(token, expires_at, api_version)) + "\n"
