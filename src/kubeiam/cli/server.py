"""``kubeiam server``: the TokenReview webhook kube-apiserver calls."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from kubeiam.cli.app import report_errors
from kubeiam.cli.options import sts_options
from kubeiam.cluster_id import CLUSTER_ID_ENV as KUBEIAM_CLUSTER_ID_ENV
from kubeiam.errors import ConfigError
from kubeiam.server.config import (
    CLUSTER_ID_ENV,
    DEFAULT_ADDRESS,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_EC2_BURST,
    DEFAULT_EC2_INSTANCE_PROFILE_TTL,
    DEFAULT_EC2_QPS,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDENTITY_CACHE_TTL,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PORT,
    MAX_CONNECTIONS_LIMIT,
    MAX_IDENTITY_CACHE_TTL,
    MAX_RATE,
    MAX_SECONDS,
    ServerConfig,
    build_config,
    parse_backend_modes,
    parse_log_format,
    read_config_file,
)
from kubeiam.server.workers import MAX_WORKERS
from kubeiam.token.sts import RESOLVE_ENV, resolve_specs_from_env

#: The reference's environment variable for --log-verbosity.
LOG_VERBOSITY_ENV = "AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY"
#: The reference's log levels (logrus names) as logging levels: panic and fatal are critical,
#: trace is debug.
LOG_LEVELS = {
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}
#: The gates aws-iam-authenticator v0.7 knows (`server --help`); kubeiam accepts exactly these.
REFERENCE_FEATURE_GATES = frozenset(
    {"AllAlpha", "AllBeta", "ConfiguredInitDirectories", "IAMIdentityMappingCRD", "SSORoleMatch"}
)


def config_from_options(config_file: Path | None, options: dict[str, Any]) -> ServerConfig:
    """Merge the config file with the flags (flags win; unset flags are None or empty)."""
    values = read_config_file(config_file) if config_file is not None else {}
    overrides: dict[str, Any] = {}
    for name, value in options.items():
        if value is None or value == ():
            continue
        if name == "backend_mode":
            value = parse_backend_modes("--backend-mode", value)
        elif name == "log_format":
            value = parse_log_format("--log-format", value)
        elif name == "sts_resolve" or name == "sts_allowed_hosts":
            value = tuple(value)
        overrides[name] = value
    env_specs = resolve_specs_from_env(os.environ.get(RESOLVE_ENV))
    if env_specs and "sts_resolve" not in overrides:
        overrides["sts_resolve"] = tuple(env_specs)
    return build_config(values, overrides)


@click.command(
    "server",
    help="Run the TokenReview webhook (HTTPS) that kube-apiserver calls to authenticate "
    "`k8s-aws-v1.` tokens.\n\nReads the reference's config file format (--config); flags "
    "override it. Serves POST /authenticate, GET /healthz, /readyz and /metrics.",
)
@click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The server config file (clusterID, server.* keys).",
)
@click.option(
    "-i",
    "--cluster-id",
    envvar=[KUBEIAM_CLUSTER_ID_ENV, CLUSTER_ID_ENV],
    help=f"The cluster id (env {KUBEIAM_CLUSTER_ID_ENV}, or the reference's {CLUSTER_ID_ENV}).",
)
@click.option("--address", help=f"IP address to listen on [default: {DEFAULT_ADDRESS}].")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help=f"Port to listen on [default: {DEFAULT_PORT}].",
)
@click.option("--hostname", help="Name kube-apiserver uses for the webhook (certificate SAN).")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding cert.pem and key.pem (generated when absent).",
)
@click.option(
    "--generate-kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the webhook kubeconfig for kube-apiserver here at start-up.",
)
@click.option(
    "--backend-mode",
    help="Ordered, comma-separated mapping backends: MountedFile, EKSConfigMap, CRD, DynamicFile.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Kubeconfig for the EKSConfigMap and CRD backends (default: in-cluster config).",
)
@click.option(
    "--dynamicfilepath",
    "dynamic_file_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The DynamicFile backend's JSON mapping file.",
)
@click.option(
    "--ec2-describeInstances-qps",
    "ec2_qps",
    type=click.IntRange(1, MAX_RATE),
    help=f"ec2:DescribeInstances calls per second [default: {DEFAULT_EC2_QPS}].",
)
@click.option(
    "--ec2-describeInstances-burst",
    "ec2_burst",
    type=click.IntRange(1, MAX_RATE),
    help=f"ec2:DescribeInstances burst [default: {DEFAULT_EC2_BURST}].",
)
@click.option(
    "--ec2-instance-profile-ttl",
    "ec2_instance_profile_ttl",
    type=click.FloatRange(0, MAX_SECONDS, min_open=True),
    help="Seconds ec2InstanceRoleCheck trusts an instance's instance profile and its roles "
    f"[default: {DEFAULT_EC2_INSTANCE_PROFILE_TTL:g}].",
)
@click.option(
    "--identity-cache-ttl",
    "identity_cache_ttl",
    type=click.FloatRange(0, int(MAX_IDENTITY_CACHE_TTL), min_open=True),
    help="Seconds a verified token's identity is reused without asking STS; never past the "
    f"token's expiry [default: {DEFAULT_IDENTITY_CACHE_TTL:g}].",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(0, MAX_SECONDS, min_open=True),
    help=f"Seconds a request header may take from its first byte [default: "
    f"{DEFAULT_HEADER_TIMEOUT:g}].",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(0, MAX_SECONDS, min_open=True),
    help=f"Seconds a request body may take once the header arrived [default: "
    f"{DEFAULT_BODY_TIMEOUT:g}].",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(0, MAX_SECONDS, min_open=True),
    help=f"Seconds an idle keep-alive connection is kept open [default: {DEFAULT_IDLE_TIMEOUT:g}].",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, MAX_CONNECTIONS_LIMIT),
    help="Open connections served; beyond, reviews are answered 429 [default: "
    f"{DEFAULT_MAX_CONNECTIONS}].",
)
@click.option(
    "--deny-list-file",
    "deny_list_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Watched YAML/JSON file of principals to refuse (docs/server.md, incidents).",
)
@click.option("-l", "--log-format", type=click.Choice(["text", "json"]), help="Log format.")
@click.option(
    "--kubeconfig-pregenerated",
    "kubeconfig_pregenerated",
    type=click.BOOL,
    is_flag=False,
    flag_value="true",
    help="The reference's flag: true means `init` wrote the webhook kubeconfig already, so "
    "--generate-kubeconfig is not written.",
)
@click.option(
    "--feature-gates",
    help="The reference's gates (KEY=true|false,...: "
    f"{', '.join(sorted(REFERENCE_FEATURE_GATES))}): checked and accepted; kubeiam has each "
    "feature on (CRD through --backend-mode, SSO role matching always).",
)
@click.option(
    "-v",
    "--log-verbosity",
    envvar=LOG_VERBOSITY_ENV,
    type=click.Choice(sorted(LOG_LEVELS)),
    help=f"Lowest level logged (the reference's levels; env {LOG_VERBOSITY_ENV}) [default: info].",
)
@click.option(
    "--master",
    help="The reference's API server URL override: not supported; put the URL in --kubeconfig.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    default=1,
    show_default=True,
    help="Server processes sharing the port (SO_REUSEPORT), each with its own caches; "
    "/metrics sums counters over them (docs/server.md, Workers).",
)
@sts_options(overrides_config=True)
@report_errors
def server_command(config_file: Path | None, **options: Any) -> None:
    from kubeiam.server.logwriter import configure_logging
    from kubeiam.server.run import run

    pregenerated = options.pop("kubeconfig_pregenerated")
    workers = options.pop("workers")
    check_feature_gates(options.pop("feature_gates"))
    level = LOG_LEVELS[options.pop("log_verbosity") or "info"]
    if options.pop("master") is not None:
        raise ConfigError(
            "kubeiam server does not take --master",
            hint="put the API server URL in the kubeconfig given with --kubeconfig",
        )
    # Logging first, so that warnings about the config file come out in the chosen format.
    flag_format = options.get("log_format")
    configure_logging(parse_log_format("--log-format", flag_format or "text"), level=level)
    config = config_from_options(config_file, options)
    if pregenerated:
        config = config.replace(generate_kubeconfig=None)
    status = run(config, workers=workers)
    if status:
        raise SystemExit(status)


def check_feature_gates(text: str | None) -> dict[str, bool]:
    """``KEY=true|false,...`` with the reference's keys, as its --feature-gates parses it."""
    gates: dict[str, bool] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or value.strip().lower() not in ("true", "false"):
            raise ConfigError(
                f"--feature-gates: {item!r} is not KEY=true or KEY=false",
                hint="e.g. --feature-gates=IAMIdentityMappingCRD=true",
            )
        if key.strip() not in REFERENCE_FEATURE_GATES:
            raise ConfigError(
                f"--feature-gates: unknown gate {key.strip()!r}",
                hint=f"known gates: {', '.join(sorted(REFERENCE_FEATURE_GATES))}",
            )
        gates[key.strip()] = value.strip().lower() == "true"
    return gates
