"""``k8s-aws-v1.`` + strict unpadded base64url (pure).

Python's ``base64.urlsafe_b64decode`` silently discards characters outside the alphabet and
accepts padding, so :func:`decode_token` checks the alphabet and length itself before decoding
(protocol.md section 2, rules 1 and 2).
"""

import binascii

from kubeiam.token.protocol import MAX_TOKEN_BYTES, TOKEN_PREFIX

#: Compiled by ``re``'s own cache on first use: ``kubeiam token`` only encodes, and importing
#: ``re`` (and ``base64``, which imports it) would cost it ~6 ms of start-up per kubectl run.
_B64URL_UNPADDED = r"^[A-Za-z0-9_-]*$"
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
#: The alphabet in order: a character's index is the six bits it stands for.
_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: The last character's low bits that carry no data, by the body's length modulo 4: a spelling
#: with any of them set decodes to the same bytes as the canonical one.
_UNUSED_LOW_BITS = {0: 0, 2: 0b1111, 3: 0b11}


def encode_token(presigned_url: str) -> str:
    """The bearer token for a presigned GetCallerIdentity URL."""
    raw = binascii.b2a_base64(presigned_url.encode("utf-8"), newline=False)
    return TOKEN_PREFIX + raw.translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def decode_token(token: str) -> str:
    """The presigned URL inside ``token``; raises :class:`TokenFormatError` for anything else."""
    import re

    from kubeiam.errors import TokenFormatError  # here: the plugin only encodes

    if len(token.encode("utf-8", "surrogatepass")) > MAX_TOKEN_BYTES:
        raise TokenFormatError(f"token is longer than {MAX_TOKEN_BYTES} bytes")
    if not token.startswith(TOKEN_PREFIX):
        raise TokenFormatError(
            f"token does not start with {TOKEN_PREFIX!r}",
            hint="this is not an aws-iam-authenticator/kubeiam token",
        )
    body = token[len(TOKEN_PREFIX) :]
    if not body:
        raise TokenFormatError("token has nothing after its prefix")
    if not re.fullmatch(_B64URL_UNPADDED, body):
        raise TokenFormatError(
            "token is not unpadded base64url (it contains '=', '+', '/' or another character "
            "outside the alphabet)"
        )
    if len(body) % 4 == 1:
        raise TokenFormatError("token has an impossible base64url length")
    # Non-canonical encodings (stray low bits in the last character) would let two different
    # strings decode to one URL; refuse them so a token has exactly one spelling.
    if _B64URL_ALPHABET.index(body[-1]) & _UNUSED_LOW_BITS[len(body) % 4]:
        raise TokenFormatError("token is not canonical base64url")
    padded = body.encode("ascii").translate(_FROM_URLSAFE) + b"=" * (-len(body) % 4)
    try:
        raw = binascii.a2b_base64(padded, strict_mode=True)
    except (binascii.Error, ValueError):
        raise TokenFormatError("token is not valid base64url") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenFormatError("token does not decode to UTF-8 text") from None
