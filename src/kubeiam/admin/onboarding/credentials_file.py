"""Writing one profile of the AWS shared credentials file (``~/.aws/credentials``) safely.

The file holds other people's (and the admin's own) secrets, is edited by hand and by
``aws configure``, and is read by every AWS SDK. So:

* only the lines of the one ``[profile]`` section change (an edit of the text, not a re-dump by
  configparser, which would drop every comment); the result is parsed with configparser before it
  is written, and every other section must come out identical;
* the write is locked and atomic (:func:`kubeiam.fileio.locked_update`) and the file 0600;
* a secret never appears in an exception message or a log line: callers get key *ids* back.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubeiam.errors import ConfigError
from kubeiam.fileio import locked_update

_HEADER = re.compile(r"^\s*\[\s*(?P<name>[^\]]+?)\s*\]\s*(?:[#;].*)?$")
#: Keys kubeiam owns inside a profile it writes; a stale session token would break new keys.
_OWNED_KEYS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_security_token",
)
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_.@+=,-]+$")


@dataclass(frozen=True, slots=True)
class AccessKey:
    """A new access key. The secret is kept out of ``repr`` so it cannot leak into a log."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


def default_credentials_file(env: Mapping[str, str], home: Path) -> Path:
    """``$AWS_SHARED_CREDENTIALS_FILE``, else ``~/.aws/credentials`` (where the SDKs look)."""
    configured = env.get("AWS_SHARED_CREDENTIALS_FILE")
    if configured:
        return Path(os.path.expanduser(configured))
    return home / ".aws" / "credentials"


def check_profile_name(name: str) -> str:
    if not _PROFILE_NAME.match(name):
        raise ConfigError(
            f"{name!r} is not a usable profile name",
            hint="use letters, digits and _.@+=,- only",
        )
    return name


def _parse(path: Path, text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(default_section="\0none", interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        # The message names the line, never its value.
        kind = type(exc).__name__
        lineno = getattr(exc, "lineno", None)
        where = f" (line {lineno})" if lineno else ""
        raise ConfigError(
            f"{path} is not a valid AWS credentials file{where}: {kind}; nothing was written",
            hint="fix the file by hand, then retry",
        ) from None
    return parser


def read_profile_key_id(path: Path, profile: str) -> str | None:
    """The ``aws_access_key_id`` of ``profile`` in ``path``, or None (file or profile absent)."""
    from kubeiam.fileio import read_document_text

    # A regular file only (a FIFO here would block), bounded, UTF-8 checked.
    text = read_document_text(path, missing_ok=True)
    if text is None:
        return None
    parser = _parse(path, text)
    if not parser.has_section(profile):
        return None
    value = parser.get(profile, "aws_access_key_id", fallback=None)
    return value.strip() if value else None


def _section_span(lines: list[str], profile: str) -> tuple[int, int] | None:
    start = None
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if not m:
            continue
        if start is not None:
            return start, i
        if m.group("name") == profile:
            start = i
    return (start, len(lines)) if start is not None else None


def _append_section(text: str, profile: str, body: list[str]) -> tuple[str, str]:
    """(``text`` + a new ``[profile]`` section, the separator inserted before its header)."""
    if not text:
        separator = ""
    elif not text.endswith("\n"):
        separator = "\n\n"
    elif text.splitlines()[-1].strip() == "":
        separator = ""
    else:
        separator = "\n"
    return text + separator + f"[{profile}]\n" + "".join(body), separator


def _replace_body(text: str, profile: str, body: list[str]) -> str | None:
    """``text`` with ``profile``'s body replaced, or None when there is no such section."""
    lines = text.splitlines(keepends=True)
    span = _section_span(lines, profile)
    if span is None:
        return None
    start, end = span
    return "".join([*lines[: start + 1], *body, *lines[end:]])


def _remove_section(text: str, profile: str, separator: str | None) -> str:
    """``text`` without ``profile``'s section. ``separator``: what was inserted before it when
    kubeiam appended it (exactly that goes); None: unknown, one blank line before it goes."""
    lines = text.splitlines(keepends=True)
    span = _section_span(lines, profile)
    if span is None:
        return text
    start, end = span
    before = "".join(lines[:start])
    if separator is None:
        if start > 0 and lines[start - 1].strip() == "":
            before = "".join(lines[: start - 1])
    elif separator and before.endswith(separator):
        before = before[: -len(separator)]
    return before + "".join(lines[end:])


def _body_with_key(old_body: list[str], key: AccessKey) -> list[str]:
    kept = [
        line
        for line in old_body
        if line.split("=", 1)[0].strip().lower() not in _OWNED_KEYS or "=" not in line
    ]
    trailing: list[str] = []
    while kept and kept[-1].strip() == "":
        trailing.insert(0, kept.pop())
    owned = [
        f"aws_access_key_id = {key.access_key_id}\n",
        f"aws_secret_access_key = {key.secret_access_key}\n",
    ]
    return owned + kept + (trailing or [])


def _check_others_unchanged(path: Path, old: str, new: str, profile: str) -> None:
    before, after = _parse(path, old), _parse(path, new)
    for section in set(before.sections()) | set(after.sections()):
        if section == profile:
            continue
        if not (before.has_section(section) and after.has_section(section)) or dict(
            before.items(section)
        ) != dict(after.items(section)):
            raise ConfigError(
                f"editing profile {profile!r} in {path} would change profile {section!r}; "
                "nothing was written",
                hint="check the file for duplicate or malformed section headers",
            )


def section_body(text: str | None, profile: str) -> list[str] | None:
    """The current lines of ``profile`` (for undo), or None when absent."""
    if not text:
        return None
    lines = text.splitlines(keepends=True)
    span = _section_span(lines, profile)
    if span is None:
        return None
    return lines[span[0] + 1 : span[1]]


@dataclass(frozen=True, slots=True)
class ProfileUndo:
    """How to put a profile back as it was before :func:`write_profile`."""

    #: The section's previous body lines; None when the section was new.
    body: tuple[str, ...] | None
    #: What was inserted before a new section's header.
    separator: str = ""


def write_profile(path: Path, profile: str, key: AccessKey) -> ProfileUndo:
    """Store ``key`` as ``profile``; returns what :func:`restore_profile` needs to undo it."""
    check_profile_name(profile)
    undo: list[ProfileUndo] = []

    def change(old: str | None) -> str:
        old_text = old or ""
        if old_text:
            _parse(path, old_text)
        body = section_body(old_text, profile)
        replaced = _replace_body(old_text, profile, _body_with_key(body or [], key))
        if replaced is None:
            new, separator = _append_section(old_text, profile, _body_with_key([], key))
            undo.append(ProfileUndo(None, separator))
        else:
            new = replaced
            undo.append(ProfileUndo(tuple(body or ())))
        _check_others_unchanged(path, old_text, new, profile)
        return new

    locked_update(path, change)
    return undo[-1]


def restore_profile(path: Path, profile: str, undo: ProfileUndo | None) -> None:
    """Put ``profile`` back as :func:`write_profile` found it (``None``: just remove it)."""

    def change(old: str | None) -> str:
        old_text = old or ""
        if undo is not None and undo.body is not None:
            new = _replace_body(old_text, profile, list(undo.body))
            if new is None:
                new, _ = _append_section(old_text, profile, list(undo.body))
        else:
            new = _remove_section(old_text, profile, undo.separator if undo else None)
        if old_text:
            _check_others_unchanged(path, old_text, new, profile)
        return new

    if not path.exists():
        return
    locked_update(path, change)


def remove_profile_if_key(path: Path, profile: str, key_ids: frozenset[str]) -> bool:
    """Remove ``profile`` when it holds one of ``key_ids`` (keys just deleted); True if removed."""
    current = read_profile_key_id(path, profile)
    if current is None or current not in key_ids:
        return False
    restore_profile(path, profile, None)
    return True
