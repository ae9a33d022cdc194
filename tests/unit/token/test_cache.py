"""The token and credential cache: hit, miss, expiry margins, refusal of unsafe files, races."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeiam.errors import CacheError
from kubeiam.token.cache import (
    CACHE_VERSION,
    CREDENTIALS_MIN_REMAINING,
    TOKEN,
    TOKEN_MIN_REMAINING,
    FileCache,
    cache_key,
    default_cache_dir,
    load_credentials,
    load_or_obtain,
    load_token,
    plain_token_entry,
    store_credentials,
    store_token,
)
from kubeiam.token.exec_credential import dumps, is_plain, loads

NOW = 1_800_000_000.0
KEY = cache_key({"clusterId": "demo", "region": "us-west-2"})


@pytest.fixture
def cache(tmp_path: Path) -> FileCache:
    return FileCache(str(tmp_path / "cache" / "kubeiam"))


def test_miss_when_nothing_cached(cache: FileCache) -> None:
    assert load_token(cache, KEY, NOW) is None
    assert not Path(cache.directory).exists()  # reading never creates anything


def test_hit_after_store_with_private_modes(cache: FileCache) -> None:
    store_token(cache, KEY, "k8s-aws-v1.abc", NOW + 600)
    assert load_token(cache, KEY, NOW) == ("k8s-aws-v1.abc", NOW + 600)
    assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cache.path(TOKEN, KEY)).st_mode) == 0o600
    assert [p.name for p in Path(cache.directory).iterdir()] == [f"token-{KEY}.json"]


@pytest.mark.parametrize(
    ("left", "hit"),
    [
        (TOKEN_MIN_REMAINING + 1, True),
        (TOKEN_MIN_REMAINING, True),
        (TOKEN_MIN_REMAINING - 1, False),
        (-5, False),
    ],
    ids=["61s", "60s", "59s", "expired"],
)
def test_token_needs_a_minute_left(cache: FileCache, left: float, hit: bool) -> None:
    store_token(cache, KEY, "k8s-aws-v1.abc", NOW + left)
    assert (load_token(cache, KEY, NOW) is not None) is hit


@pytest.mark.parametrize(
    ("left", "hit"),
    [(CREDENTIALS_MIN_REMAINING, True), (CREDENTIALS_MIN_REMAINING - 1, False)],
    ids=["enough", "too-little"],
)
def test_credentials_need_ten_minutes_left(cache: FileCache, left: float, hit: bool) -> None:
    store_credentials(
        cache,
        KEY,
        access_key_id="ASIAEXAMPLE",
        secret_access_key="secret",
        session_token="session",
        expires_at=NOW + left,
    )
    found = load_credentials(cache, KEY, NOW)
    assert (found == ("ASIAEXAMPLE", "secret", "session", NOW + left)) is hit
    assert (found is not None) is hit


def test_keys_differ_for_anything_that_changes_the_token() -> None:
    base = {"clusterId": "a", "region": "us-west-2", "role": None, "source": "env:AKID"}
    variants = [
        {**base, "clusterId": "b"},
        {**base, "region": "us-east-1"},
        {**base, "role": "arn:aws:iam::1:role/x"},
        {**base, "source": "env:AKID2"},
        {**base, "region": None},
    ]
    keys = {cache_key(base), *(cache_key(v) for v in variants)}
    assert len(keys) == len(variants) + 1
    assert cache_key(dict(reversed(list(base.items())))) == cache_key(base)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b'{"version": 99, "token": "x", "expiresAt": 1e12}',
        b'{"version": 1}',
        b"\xff\xfe",
        b"[" * 100_000,
        b'{"version": 1, "token": "k8s-aws-v1.x", "expiresAt": ' + b"9" * 5000 + b"}",
        b'{"version": 1, "token": "k8s-aws-v1.x", "expiresAt": 1e300}',
        b'{"version": 1, "token": "k8s-aws-v1.x", "expiresAt": -1e300}',
        b'{"version": 1, "token": "k8s-aws-v1.x", "expiresAt": true}',
        b'{"version": 1, "token": "k8s-aws-v1.\\udc80", "expiresAt": 1800000600}',
        b'{"version": 1, "token": "not-a-token", "expiresAt": 1800000600}',
        b'{"version": 1, "token": ["k8s-aws-v1.x"], "expiresAt": 1800000600}',
    ],
    ids=[
        "empty", "truncated", "not-object", "other-version", "missing-fields", "not-utf8",
        "deep-nesting", "huge-int", "expiry-far-future", "expiry-far-past", "expiry-bool",
        "token-surrogate", "token-foreign", "token-not-string",
    ],
)  # fmt: skip
def test_corrupt_file_is_a_miss_and_gets_overwritten(cache: FileCache, content: bytes) -> None:
    cache.ensure_directory()
    path = Path(cache.path(TOKEN, KEY))
    path.write_bytes(content)
    path.chmod(0o600)
    assert load_token(cache, KEY, NOW) is None
    store_token(cache, KEY, "k8s-aws-v1.new", NOW + 600)
    assert load_token(cache, KEY, NOW) == ("k8s-aws-v1.new", NOW + 600)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660], ids=oct)
def test_file_readable_by_others_is_refused_with_the_fix(cache: FileCache, mode: int) -> None:
    store_token(cache, KEY, "k8s-aws-v1.abc", NOW + 600)
    path = cache.path(TOKEN, KEY)
    os.chmod(path, mode)
    with pytest.raises(CacheError, match="group or others") as info:
        load_token(cache, KEY, NOW)
    assert info.value.hint == f"chmod 600 {path}"
    assert "k8s-aws-v1" not in str(info.value)  # the content never appears in messages
    assert info.value.exit_code == 4


def test_directory_open_to_others_is_refused(cache: FileCache) -> None:
    store_token(cache, KEY, "k8s-aws-v1.abc", NOW + 600)
    os.chmod(cache.directory, 0o755)  # noqa: S103 - the unsafe mode is what is tested
    with pytest.raises(CacheError) as info:
        load_token(cache, KEY, NOW)
    assert info.value.hint == f"chmod 700 {cache.directory}"
    with pytest.raises(CacheError):
        store_token(cache, KEY, "k8s-aws-v1.def", NOW + 600)


def test_symlinked_entry_is_refused(cache: FileCache, tmp_path: Path) -> None:
    cache.ensure_directory()
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"version": 1, "token": "x", "expiresAt": NOW + 600}))
    target.chmod(0o600)
    os.symlink(target, cache.path(TOKEN, KEY))
    with pytest.raises(CacheError, match="symbolic link"):
        load_token(cache, KEY, NOW)


def test_default_directory(tmp_path: Path) -> None:
    assert default_cache_dir({"HOME": "/home/u"}) == "/home/u/.kube/cache/kubeiam"
    assert default_cache_dir({"HOME": "/home/u", "KUBEIAM_CACHE_DIR": "/x"}) == "/x"


def test_existing_parent_keeps_its_mode(tmp_path: Path) -> None:
    parent = tmp_path / ".kube" / "cache"
    parent.mkdir(parents=True, mode=0o755)
    cache = FileCache(str(parent / "kubeiam"))
    store_token(cache, KEY, "k8s-aws-v1.abc", NOW + 600)
    assert stat.S_IMODE(parent.stat().st_mode) == 0o755
    assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o700


_RACER = textwrap.dedent(
    """
    import os, sys, time
    from kubeiam.token.cache import FileCache, TOKEN, load_or_obtain, load_token, store_token
    directory, key, mints, start = sys.argv[1:5]
    while time.time() < float(start):
        time.sleep(0.001)
    cache = FileCache(directory)

    def mint():
        with open(mints, "a") as log:
            log.write(f"{os.getpid()}\\n")
        time.sleep(0.05)  # a slow mint widens the window a lock must close
        return (f"k8s-aws-v1.{os.getpid()}", time.time() + 600)

    hit = load_or_obtain(
        cache,
        TOKEN,
        key,
        load=lambda: load_token(cache, key, time.time()),
        obtain=mint,
        store=lambda minted: store_token(cache, key, *minted),
        warn=sys.exit,
    )
    print(hit[0])
    """
)


def test_racing_processes_mint_once_and_agree(cache: FileCache, tmp_path: Path) -> None:
    import time

    mints = tmp_path / "mints.log"
    start = str(time.time() + 0.5)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, cache.directory, KEY, str(mints), start],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [racer.communicate(timeout=60)[0].strip() for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert len(mints.read_text().split()) == 1
    assert len(set(outputs)) == 1
    leftovers = sorted(p.name for p in Path(cache.directory).iterdir())
    assert leftovers == [f"token-{KEY}.json", f"token-{KEY}.json.lock"]


def _fill(
    cache: FileCache, obtained: list[str], warnings: list[str], store_in: FileCache | None = None
) -> tuple[str, float]:
    def obtain() -> tuple[str, float]:
        obtained.append("minted")
        return f"k8s-aws-v1.minted-{len(obtained)}", NOW + 600

    return load_or_obtain(
        cache,
        TOKEN,
        KEY,
        load=lambda: load_token(cache, KEY, NOW),
        obtain=obtain,
        store=lambda minted: store_token(store_in or cache, KEY, *minted),
        warn=warnings.append,
    )


def test_load_or_obtain_stores_once_then_serves_the_entry(cache: FileCache) -> None:
    obtained: list[str] = []
    warnings: list[str] = []
    first = _fill(cache, obtained, warnings)
    assert _fill(cache, obtained, warnings) == first
    assert obtained == ["minted"]
    assert warnings == []
    assert load_token(cache, KEY, NOW) == first


def test_load_or_obtain_keeps_the_value_when_storing_fails(
    cache: FileCache, tmp_path: Path
) -> None:
    # The store goes to a cache whose directory is a regular file: creating it fails for real.
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    obtained: list[str] = []
    warnings: list[str] = []
    token, _ = _fill(cache, obtained, warnings, store_in=FileCache(str(blocked)))
    assert token == "k8s-aws-v1.minted-1"
    assert obtained == ["minted"]
    assert len(warnings) == 1
    assert "cannot create the token cache directory" in warnings[0]
    assert token not in warnings[0]
    assert load_token(cache, KEY, NOW) is None  # the value went nowhere else


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "accessKeyId": "AKIA", "secretAccessKey": "s", "expiresAt": 1e300}',
        b'{"version": 1, "accessKeyId": "AKIA\\u00e9", "secretAccessKey": "s", "expiresAt": 2e9}',
        b'{"version": 1, "accessKeyId": "AKIA", "secretAccessKey": "s", "sessionToken": 5, '
        b'"expiresAt": 2e9}',
    ],
    ids=["expiry-beyond-9999", "non-ascii-key", "token-not-string"],
)
def test_unusable_credentials_are_a_miss(cache: FileCache, content: bytes) -> None:
    from kubeiam.token.cache import CREDENTIALS

    cache.ensure_directory()
    path = Path(cache.path(CREDENTIALS, KEY))
    path.write_bytes(content)
    path.chmod(0o600)
    assert load_credentials(cache, KEY, NOW) is None


def test_long_lived_credentials_from_a_process_are_kept(cache: FileCache) -> None:
    far = 4_070_908_800.0  # 2099: credential_process may hand these out
    store_credentials(
        cache, KEY, access_key_id="AKIA", secret_access_key="s", session_token=None, expires_at=far
    )
    assert load_credentials(cache, KEY, NOW) == ("AKIA", "s", None, far)


@pytest.mark.parametrize("where", ["entry", "lock"])
def test_a_fifo_in_the_cache_is_refused_without_blocking(cache: FileCache, where: str) -> None:
    cache.ensure_directory()
    path = cache.path(TOKEN, KEY) + (".lock" if where == "lock" else "")
    os.mkfifo(path, 0o600)

    def use() -> None:
        if where == "entry":
            load_token(cache, KEY, NOW)
            return
        with cache.lock(TOKEN, KEY, timeout=1):
            pass

    with pytest.raises(CacheError, match="not a regular file"):
        use()


def test_new_cache_directories_are_private_at_every_level(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        cache = FileCache(str(tmp_path / "home" / ".kube" / "cache" / "kubeiam"))
        store_token(cache, KEY, "k8s-aws-v1.abc", NOW + 600)
    finally:
        os.umask(old)
    for level in ("home", "home/.kube", "home/.kube/cache", "home/.kube/cache/kubeiam"):
        assert stat.S_IMODE((tmp_path / level).stat().st_mode) == 0o700, level


# -- a token entry read without the JSON scanner -------------------------------------------------

TOKEN_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=30)
EXPIRY = st.one_of(
    st.integers(min_value=0, max_value=2**40), st.floats(min_value=0, max_value=2**40)
)


@settings(max_examples=400)
@given(TOKEN_TEXT, EXPIRY)
def test_an_entry_as_written_reads_as_loads_reads_it(token: str, expires_at: float) -> None:
    raw = dumps({"token": token, "expiresAt": expires_at, "version": CACHE_VERSION}).encode()
    fast = plain_token_entry(raw)
    if fast is not None:  # a plain token and a decimal expiry: what store_token writes
        assert fast == loads(raw)
        assert type(fast["expiresAt"]) is type(loads(raw)["expiresAt"])  # type: ignore[index]
    else:
        assert not is_plain(token) or "e" in repr(expires_at).lower()


@settings(max_examples=400)
@given(st.binary(max_size=80), st.integers(0, 79), st.binary(max_size=4))
def test_anything_else_is_left_to_loads(prefix: bytes, cut: int, junk: bytes) -> None:
    """A mangled entry is either not read here (None) or read exactly as loads reads it."""
    good = dumps({"token": "k8s-aws-v1.abc", "expiresAt": 1765090000.5, "version": 1}).encode()
    for raw in (
        prefix + good,
        good[:cut] + junk + good[cut:],
        good.replace(b"0", junk[:1] or b"x"),
    ):
        fast = plain_token_entry(raw)
        if fast is not None:
            assert fast == loads(raw)


MANGLED = {
    "leading-zero": b'{"token":"t","expiresAt":0123,"version":1}',
    "exponent": b'{"token":"t","expiresAt":1e9,"version":1}',
    "negative": b'{"token":"t","expiresAt":-1,"version":1}',
    "escaped-token": b'{"token":"t\\u0041","expiresAt":1,"version":1}',
    "other-version": b'{"token":"t","expiresAt":1,"version":2}',
    "spaces": b'{"token": "t","expiresAt":1,"version":1}',
    "trailing-dot": b'{"token":"t","expiresAt":1.,"version":1}',
    "non-ascii-digit": '{"token":"t","expiresAt":\u0661,"version":1}'.encode(),
}


@pytest.mark.parametrize("raw", list(MANGLED.values()), ids=list(MANGLED))
def test_entries_not_exactly_as_written_go_to_loads(raw: bytes) -> None:
    assert plain_token_entry(raw) is None
