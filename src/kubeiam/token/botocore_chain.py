"""The credential chain past the token plugin's fast path: botocore's, and AssumeRole.

:func:`kubeiam.token.credentials.signing_credentials` answers environment keys and cached
temporary credentials itself; anything else comes here: shared config and credentials files,
``role_arn``/``source_profile``/``mfa_serial``, SSO and ``sso_session``, ``credential_process``,
web identity, container and instance metadata (:func:`chain_credentials`), and AssumeRole for
``-r`` through botocore's STS client, so botocore's ``AWS_ENDPOINT_URL_STS`` applies. botocore is
imported by the functions that need it (~0.3 s); this module itself is kept off the fast path,
whose every imported line is start-up time of every kubectl command.
"""

from __future__ import annotations

from kubeiam.errors import ConfigError, CredentialsError
from kubeiam.token.credentials import Credentials

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kubeiam.token.credentials import TokenRequest

#: Timeouts for the few calls the plugin makes itself (AssumeRole, GetCallerIdentity).
CALL_TIMEOUT = 10


# -- the chain -------------------------------------------------------------------------------------


def _botocore_session(profile: str | None) -> Any:
    import botocore.exceptions
    import botocore.session

    try:
        # An explicit profile removes botocore's environment provider from the chain: this is
        # what makes a profile win over access keys in the environment.
        return botocore.session.Session(profile=profile)
    except botocore.exceptions.BotoCoreError as exc:
        raise translate(exc, profile) from None


def translate(exc: Exception, profile: str | None, role: str | None = None) -> Exception:
    """One botocore exception as the kubeiam error that says what to do about it."""
    import botocore.exceptions as bexc

    shown = profile or "default"
    if isinstance(exc, bexc.ProfileNotFound):
        return ConfigError(
            f"AWS profile {shown!r} is not in the AWS config or credentials file",
            hint="check --profile / AWS_PROFILE against `aws configure list-profiles`",
        )
    if isinstance(exc, bexc.NoCredentialsError):
        return CredentialsError(
            "no AWS credentials found (environment, profile, SSO, web identity, container or "
            "instance metadata)",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, pass --profile, or run "
            "`aws configure` / `aws sso login`",
        )
    if isinstance(exc, bexc.SSOError | bexc.UnauthorizedSSOTokenError | bexc.SSOTokenLoadError):
        return CredentialsError(
            f"the SSO session of profile {shown!r} is missing or expired",
            hint=f"run `aws sso login --profile {shown}`",
        )
    if isinstance(exc, bexc.ClientError):
        error = exc.response.get("Error", {})
        what = f"AssumeRole of {role}" if role else "the STS call"
        return CredentialsError(
            f"{what} was refused: {error.get('Code', 'error')}: {error.get('Message', '')}",
            hint="check the role's trust policy and the caller's sts:AssumeRole permission"
            if role
            else "check the source credentials",
        )
    if isinstance(
        exc, bexc.EndpointConnectionError | bexc.ConnectTimeoutError | bexc.ReadTimeoutError
    ):
        return CredentialsError(
            f"could not reach AWS to obtain credentials: {exc}",
            hint="check network access to STS, or AWS_ENDPOINT_URL_STS",
        )
    if isinstance(exc, bexc.BotoCoreError):
        return CredentialsError(
            f"could not obtain AWS credentials for profile {shown!r}: {exc}",
            hint="check the profile's settings in the AWS config file",
        )
    return exc


def chain_credentials(profile: str | None) -> Credentials:
    """Credentials from botocore's full chain for ``profile`` (``None``: the default chain)."""
    import botocore.exceptions

    session = _botocore_session(profile)
    try:
        found = session.get_credentials()
        if found is None:
            raise botocore.exceptions.NoCredentialsError()
        frozen = found.get_frozen_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise translate(exc, profile) from None
    # Refreshable credentials (assumed roles, SSO, credential_process with an Expiration...) know
    # when they stop working; botocore keeps that on a private attribute only.
    expiry = getattr(found, "_expiry_time", None)
    expires_at = expiry.timestamp() if expiry is not None else None
    source = f"profile {profile}" if profile else f"botocore ({getattr(found, 'method', 'chain')})"
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token, expires_at, source)


def _sts_client(source: Credentials, region: str | None) -> Any:
    import botocore.config
    import botocore.session

    config = botocore.config.Config(
        connect_timeout=CALL_TIMEOUT,
        read_timeout=CALL_TIMEOUT,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return botocore.session.Session().create_client(
        "sts",
        region_name=region or "us-east-1",
        aws_access_key_id=source.access_key_id,
        aws_secret_access_key=source.secret_access_key,
        aws_session_token=source.session_token,
        config=config,
    )


def caller_session_name(source: Credentials, region: str | None) -> str:
    """The session name of the caller (``--forward-session-name``); it must be an assumed role."""
    import botocore.exceptions

    from kubeiam.arn import PrincipalKind, parse_caller_arn
    from kubeiam.errors import STSError

    try:
        arn = _sts_client(source, region).get_caller_identity()["Arn"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise translate(exc, None) from None
    try:
        principal = parse_caller_arn(arn)
    except STSError:
        principal = None
    if principal is None or principal.kind is not PrincipalKind.ASSUMED_ROLE:
        raise ConfigError(
            f"--forward-session-name needs assumed-role credentials, but the caller is {arn}",
            hint="drop --forward-session-name, or pass -s/--session-name",
        )
    return principal.session_name


def assume_role(
    source: Credentials,
    *,
    role_arn: str,
    session_name: str,
    external_id: str | None,
    duration: int | None,
    region: str | None,
) -> Credentials:
    """AssumeRole with ``source`` through botocore's STS client.

    botocore's ``AWS_ENDPOINT_URL_STS`` applies, which is how tests point it at moto.
    """
    import botocore.exceptions

    params: dict[str, object] = {"RoleArn": role_arn, "RoleSessionName": session_name}
    if external_id is not None:
        params["ExternalId"] = external_id
    if duration is not None:
        params["DurationSeconds"] = duration
    try:
        answer = _sts_client(source, region).assume_role(**params)["Credentials"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise translate(exc, None, role_arn) from None
    return Credentials(
        answer["AccessKeyId"],
        answer["SecretAccessKey"],
        answer["SessionToken"],
        answer["Expiration"].timestamp(),
        f"role {role_arn}",
    )


def obtain(
    request: TokenRequest,
    env_creds: Credentials | None,
    profile: str | None,
    region: str | None,
    now: float,
) -> Credentials:
    """The source credentials (from the environment, else botocore's chain for ``profile``),
    then the role ``request`` asks for, if any."""
    source = env_creds if env_creds is not None else chain_credentials(profile)
    if request.role is None:
        return source
    if request.session_name:
        session_name = request.session_name
    elif request.forward_session_name:
        session_name = caller_session_name(source, region)
    else:
        session_name = f"kubeiam-{int(now)}"
    return assume_role(
        source,
        role_arn=request.role,
        session_name=session_name,
        external_id=request.external_id,
        duration=request.duration,
        region=region,
    )
