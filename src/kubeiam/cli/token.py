"""``kubeiam token``: the kubectl exec credential plugin.

kubectl starts this on every run, often twice, so start-up time is the product. The module
therefore has two front doors built from ONE option table (:data:`OPTIONS`):

- :func:`fast_main`, called by :mod:`kubeiam.cli.main` before click is imported, parses the
  arguments by hand. It returns ``None`` for ``--help`` and for anything it cannot parse, and
  the caller falls back to click, so help and usage errors come from click.
- :data:`token_command`, the click command built lazily from the same table (PEP 562
  ``__getattr__``), for ``kubeiam --help`` and ``kubeiam token --help``.

Only the ExecCredential (or, with ``--token-only``, the bare token) goes to stdout; warnings and
errors go to stderr; errors exit with the code of their class in :mod:`kubeiam.errors`. A cache
hit and a fresh token from environment keys import neither click nor botocore.
"""

import sys

from kubeiam.cluster_id import CLUSTER_ID_ENV

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO

    import click

    from kubeiam.token.credentials import TokenRequest

#: Option kinds.
VALUE, FLAG, SWITCH = "value", "flag", "switch"


class Option:
    """One row of the option table: names, destination, kind, help."""

    __slots__ = ("default", "dest", "envvar", "help", "kind", "metavar", "names", "negative")

    def __init__(
        self,
        names: tuple[str, ...],
        dest: str,
        kind: str,
        help: str,
        *,
        metavar: str | None = None,
        envvar: str | None = None,
        negative: str | None = None,
        default: object = None,
    ) -> None:
        self.names = names
        self.dest = dest
        self.kind = kind
        self.help = help
        self.metavar = metavar
        self.envvar = envvar
        self.negative = negative
        self.default = default


#: The flags of aws-iam-authenticator's ``token`` command, plus kubeiam's own.
OPTIONS: "tuple[Option, ...]" = (
    Option(
        ("-i", "--cluster-id"),
        "cluster_id",
        VALUE,
        "Cluster name or id the token is for (bound into the signature). Required.",
        metavar="ID",
        envvar=CLUSTER_ID_ENV,
    ),
    Option(
        ("--role-arn", "-r", "--role"),
        "role",
        VALUE,
        "ARN of an IAM role to assume and sign as (-r/--role: aws-iam-authenticator's spelling).",
        metavar="ARN",
    ),
    Option(
        ("-e", "--external-id"), "external_id", VALUE, "External id for AssumeRole.", metavar="ID"
    ),
    Option(
        ("-s", "--session-name"),
        "session_name",
        VALUE,
        "Role session name (default: kubeiam-<unix time>).",
        metavar="NAME",
    ),
    Option(
        ("--forward-session-name",),
        "forward_session_name",
        FLAG,
        "Use the caller's own role session name for the assumed role.",
        default=False,
    ),
    Option(
        ("--region",),
        "region",
        VALUE,
        "Region whose STS endpoint to sign for (default: AWS_REGION, AWS_DEFAULT_REGION, the "
        "profile's region; none: the global endpoint).",
        metavar="REGION",
    ),
    Option(
        ("--profile",),
        "profile",
        VALUE,
        "AWS profile to use; wins over access keys in the environment (also AWS_PROFILE).",
        metavar="NAME",
    ),
    Option(
        ("--duration",),
        "duration",
        VALUE,
        "Lifetime of assumed-role credentials: seconds or 15m/1h (900..43200).",
        metavar="DURATION",
    ),
    Option(
        ("--token-only",),
        "token_only",
        FLAG,
        "Print only the token, not an ExecCredential.",
        default=False,
    ),
    Option(
        ("--cache",),
        "cache",
        SWITCH,
        "Cache tokens and temporary credentials under ~/.kube/cache/kubeiam (default: on).",
        negative="--no-cache",
        default=True,
    ),
)

_BY_NAME: "dict[str, tuple[Option, bool]]" = {}
for _opt in OPTIONS:
    for _name in _opt.names:
        _BY_NAME[_name] = (_opt, True)
    if _opt.negative:
        _BY_NAME[_opt.negative] = (_opt, False)
del _opt, _name


def parse_args(args: list[str]) -> dict[str, object] | None:
    """Option values from ``args``, or ``None`` if click should handle them (help, errors)."""
    values: dict[str, object] = {opt.dest: opt.default for opt in OPTIONS}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            found = _BY_NAME.get(name)
            if found is None:
                return None
            opt, positive = found
            if opt.kind == VALUE:
                if not eq:
                    if i >= len(args):
                        return None
                    inline = args[i]
                    i += 1
                values[opt.dest] = inline
            elif eq:
                return None  # a flag given a value: let click word the error
            else:
                values[opt.dest] = positive
        elif arg.startswith("-") and len(arg) > 1:
            found = _BY_NAME.get(arg[:2])
            if found is None or found[0].kind != VALUE:
                return None
            value = arg[2:]
            if not value:
                if i >= len(args):
                    return None
                value = args[i]
                i += 1
            values[found[0].dest] = value
        else:
            return None  # positional arguments: none are accepted
    return values


def fast_main(args: list[str]) -> int | None:
    """Run ``kubeiam token ARGS`` without click; ``None`` means "let click handle it"."""
    values = parse_args(args)
    if values is None:
        return None
    return run(values)


def run(
    values: "Mapping[str, object]",
    environ: "Mapping[str, str] | None" = None,
    stdout: "TextIO | None" = None,
    stderr: "TextIO | None" = None,
) -> int:
    """Produce the credential for parsed option ``values`` and print it; the exit status."""
    from kubeiam.token import system
    from kubeiam.token.produce import produce

    env = system.process_environ() if environ is None else environ
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr

    def warn(text: str) -> None:
        err.write(f"kubeiam: warning: {text}\n")

    try:
        text = produce(
            token_request(values, env),
            region_flag=_str(values, "region"),
            token_only=bool(values.get("token_only")),
            use_cache=bool(values.get("cache", True)),
            environ=env,
            warn=warn,
        )
    except Exception as exc:
        # The error tree loads only now: a token served or minted raises nothing.
        from kubeiam.errors import KubeIAMError

        if not isinstance(exc, KubeIAMError):
            raise
        err.write(f"kubeiam: error: {exc}\n")
        return exc.exit_code
    out.write(text)
    out.flush()
    return 0


def _str(values: "Mapping[str, object]", dest: str) -> str | None:
    value = values.get(dest)
    return value if isinstance(value, str) and value else None


def token_request(values: "Mapping[str, object]", environ: "Mapping[str, str]") -> "TokenRequest":
    """The request the option ``values`` make (the cluster id may come from the environment)."""
    from kubeiam.token.credentials import TokenRequest, parse_duration

    cluster_id = _str(values, "cluster_id") or environ.get(CLUSTER_ID_ENV)
    if not cluster_id:
        from kubeiam.errors import ConfigError

        raise ConfigError(
            "no cluster id",
            hint=f"pass -i/--cluster-id <cluster name or id>, or set {CLUSTER_ID_ENV}",
        )
    duration_text = _str(values, "duration")
    return TokenRequest(
        cluster_id,
        role=_str(values, "role"),
        external_id=_str(values, "external_id"),
        session_name=_str(values, "session_name"),
        forward_session_name=bool(values.get("forward_session_name")),
        profile=_str(values, "profile"),
        duration=parse_duration(duration_text) if duration_text else None,
    )


# -- the click command, built from the same table on first use -----------------------------------

_HELP = """Print an ExecCredential for kubectl (exec credential plugin).

\b
Credentials, first match wins:
  --profile / AWS_PROFILE        the profile (botocore: files, SSO, credential_process, MFA)
  AWS_ACCESS_KEY_ID/...          access keys in the environment (fast path, no botocore)
  otherwise                      botocore's default chain (web identity, container, IMDS)
With --role-arn, that identity assumes the role and the token is signed as the role.

Tokens and temporary credentials are cached in ~/.kube/cache/kubeiam (0700/0600) until a
minute before they expire; --no-cache turns that off.
"""


def _build_command() -> "click.Command":
    import click

    params: list[click.Parameter] = []
    for opt in OPTIONS:
        if opt.kind == VALUE:
            params.append(
                click.Option(
                    [*opt.names, opt.dest],
                    help=opt.help,
                    metavar=opt.metavar,
                    envvar=opt.envvar,
                    show_envvar=opt.envvar is not None,
                )
            )
        elif opt.kind == FLAG:
            params.append(click.Option([*opt.names, opt.dest], is_flag=True, help=opt.help))
        else:
            params.append(
                click.Option(
                    [f"{opt.names[0]}/{opt.negative}", opt.dest],
                    default=opt.default,
                    help=opt.help,
                    show_default=True,
                )
            )

    def callback(**values: object) -> None:
        code = run(values)
        if code:
            sys.exit(code)

    return click.Command(
        "token",
        callback=callback,
        params=params,
        help=_HELP,
        short_help="Print an ExecCredential for kubectl (exec credential plugin).",
        context_settings={"help_option_names": ["-h", "--help"]},
    )


_COMMAND: "list[click.Command]" = []


def __getattr__(name: str) -> object:
    if name == "token_command":
        if not _COMMAND:
            _COMMAND.append(_build_command())
        return _COMMAND[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
