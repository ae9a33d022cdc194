"""What more than one command's options share.

:func:`option_group` bundles options into one decorator; :func:`split_values` reads a repeatable
option that also takes comma lists. :func:`sts_options`: ``kubeiam verify`` and ``kubeiam server``
both verify tokens, so they take the same ``--partition`` and ``--sts-*`` flags with the same help.
The server's flags override its config file, so there an unset flag is None (the file's value or
the config default stands) and is checked by the same rule as the file's key; ``verify`` has no
file and shows its defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import click

from kubeiam.partitions import DEFAULT_PARTITION, PARTITIONS
from kubeiam.token.sts import DEFAULT_TIMEOUT, RESOLVE_ENV

_F = TypeVar("_F", bound=Callable[..., object])

#: The server config file's rule for ``stsTimeout`` (kubeiam.server.config), applied to its flag.
_CONFIG_MAX_TIMEOUT = 3600


def option_group(*options: Callable[[_F], _F]) -> Callable[[_F], _F]:
    """One decorator applying ``options``; help lists them in the order given."""

    def decorate(command: _F) -> _F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def split_values(values: Sequence[str]) -> list[str]:
    """``--group a,b --group c`` -> [a, b, c] (order kept, blanks and duplicates dropped)."""
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if item and item not in out:
                out.append(item)
    return out


def sts_options(*, overrides_config: bool) -> Callable[[_F], _F]:
    """``--partition``, ``--sts-resolve``, ``--sts-ca-bundle``, ``--sts-allowed-host`` and
    ``--sts-timeout`` (parameters ``partition``, ``sts_resolve``, ``sts_ca_bundle`` (a Path),
    ``sts_allowed_hosts``, ``sts_timeout``).

    ``overrides_config``: the flags override a config file, so they have no default of their own
    (the help says what the config's default is).
    """

    def default_help(value: object) -> str:
        return f" [default: {value}]" if overrides_config else ""

    return option_group(
        click.option(
            "--partition",
            type=click.Choice(sorted(PARTITIONS)),
            default=None if overrides_config else DEFAULT_PARTITION,
            show_default=not overrides_config,
            help="The AWS partition whose STS hosts are accepted."
            + default_help(DEFAULT_PARTITION),
        ),
        click.option(
            "--sts-resolve",
            "sts_resolve",
            multiple=True,
            metavar="HOST=ADDR:PORT",
            help="Send requests for the STS host HOST to ADDR:PORT (TLS, Host and SNI stay HOST). "
            f"Repeatable; also env {RESOLVE_ENV} (comma-separated).",
        ),
        click.option(
            "--sts-ca-bundle",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="PEM file of the CAs trusted for STS (instead of the system's).",
        ),
        click.option(
            "--sts-timeout",
            type=click.FloatRange(
                0, _CONFIG_MAX_TIMEOUT if overrides_config else None, min_open=True
            ),
            default=None if overrides_config else DEFAULT_TIMEOUT,
            show_default=not overrides_config,
            help="Deadline of the whole STS call (lookup, connect, TLS, answer), in seconds."
            + default_help(f"{DEFAULT_TIMEOUT:g}"),
        ),
        click.option(
            "--sts-allowed-host",
            "sts_allowed_hosts",
            multiple=True,
            metavar="HOST=REGION",
            help="Also accept this STS host (e.g. a VPC endpoint) signing for REGION. Repeatable.",
        ),
    )
