"""``kubeiam localaws``: run the local AWS environment until interrupted (developer tool, hidden).

Prints where everything listens and how to point kubeiam and the AWS SDKs at it. Secrets are
never printed: the admin keys sit in a 0600 credentials file whose path is printed instead.
"""

from __future__ import annotations

import shlex
import signal
import threading
from types import FrameType

import click

from kubeiam.cli.app import report_errors


def shell_exports(env: dict[str, str]) -> list[str]:
    """``export NAME=value`` lines, quoted for POSIX shells."""
    return [f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())]


@click.command(
    "localaws",
    hidden=True,
    help="Developer tool: run moto (IAM, STS AssumeRole, EKS, EC2) and a TLS STS front that "
    "verifies presigned GetCallerIdentity requests, on 127.0.0.1, until Ctrl-C or SIGTERM.\n\n"
    "With --print-env only `export` lines go to stdout (use with eval); the summary goes to "
    "stderr.\n\n"
    "Inside a network namespace whose hosts file maps the STS host names to 127.0.0.1, "
    "`--sts-port 443 --relay-sts-calls` stands in for STS for clients that cannot be pointed "
    "elsewhere; the exports then include SSL_CERT_FILE naming the test CA.",
)
@click.option("--region", default="us-east-1", show_default=True, help="Region for clients.")
@click.option("--print-env", is_flag=True, help="Print shell export lines on stdout.")
@click.option(
    "--enforce-iam-auth/--no-enforce-iam-auth",
    default=True,
    show_default=True,
    help="Let moto check signatures and IAM policies (AssumeRole needs a policy and trust).",
)
@click.option(
    "--sts-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port of the STS front on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--relay-sts-calls",
    is_flag=True,
    help="Relay STS calls other than presigned GetCallerIdentity (AssumeRole) to moto.",
)
@report_errors
def localaws_command(
    region: str, print_env: bool, enforce_iam_auth: bool, sts_port: int, relay_sts_calls: bool
) -> None:
    from kubeiam.localaws import start_local_aws
    from kubeiam.localaws.environment import ADMIN_PROFILE

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with start_local_aws(
            region,
            enforce_iam_auth=enforce_iam_auth,
            sts_port=sts_port,
            relay_sts_calls=relay_sts_calls,
        ) as aws:
            env = {
                **aws.client_env(),
                "AWS_SHARED_CREDENTIALS_FILE": str(aws.credentials_file),
                "AWS_PROFILE": ADMIN_PROFILE,
                "KUBEIAM_STS_RESOLVE": ",".join(
                    aws.sts_resolve(h) for h in dict.fromkeys((aws.sts_host, "sts.amazonaws.com"))
                ),
            }
            if sts_port:
                # Clients reaching the front by the real STS host names must trust the test CA.
                env["SSL_CERT_FILE"] = str(aws.ca_bundle)
            relay = "relayed to moto" if relay_sts_calls else "refused"
            flags = " ".join(shlex.quote(f) for f in aws.verify_flags())
            summary = [
                "kubeiam localaws is running (Ctrl-C to stop)",
                f"  moto (IAM, STS, EKS, EC2):  {aws.moto_url}",
                f"  STS front (TLS):            https://127.0.0.1:{aws.sts_port}"
                f"  for {aws.sts_host} and {len(aws.sts_hosts) - 1} other STS host names",
                f"  test CA bundle:             {aws.ca_bundle}",
                f"  admin credentials:          {aws.credentials_file} [{ADMIN_PROFILE}]",
                f"  moto IAM auth enforcement:  {'on' if aws.enforce_iam_auth else 'off'}",
                f"  other STS calls:            {relay}",
                f"  verify/server flags:        {flags}",
                "  environment:",
                *(f"    {line}" for line in shell_exports(env)),
            ]
            if print_env:
                click.echo("\n".join(summary), err=True)
                click.echo("\n".join(shell_exports(env)))
            else:
                click.echo("\n".join(summary))
            # Bounded waits keep the main thread responsive to signals.
            while not stop.wait(0.5):
                pass
            click.echo("kubeiam localaws: stopping", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
