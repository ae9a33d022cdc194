"""The wire constants of an EKS token, shared by the minting and the checking side (pure).

A token is ``k8s-aws-v1.`` + base64url of a SigV4 query-presigned ``GET https://<sts-host>/
?Action=GetCallerIdentity&Version=2011-06-15`` with the cluster id in the signed ``x-k8s-aws-id``
header (protocol.md sections 1 and 2). The presigner (:mod:`kubeiam.token.presign`), the token
encoding, the token cache and the plugin build tokens from these values; the verifier
(:mod:`kubeiam.token.validation`) and the STS call (:mod:`kubeiam.token.sts`) check and replay
them. One home, so the two sides cannot drift apart.

Imports nothing: ``kubeiam token`` loads this on every kubectl run.
"""

#: What every token starts with (the reference's ``v1Prefix``).
TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format marker, not a secret
#: Servers refuse longer tokens; a long session token can push a real one past 3,400 bytes.
MAX_TOKEN_BYTES = 4096

#: The one operation and API version a token may carry (protocol.md section 2, rule 6).
ACTION = "GetCallerIdentity"
API_VERSION = "2011-06-15"
#: The only signing algorithm: SigV4 with HMAC-SHA256.
ALGORITHM = "AWS4-HMAC-SHA256"
#: The service and terminator of the credential scope ``AKID/yyyymmdd/region/sts/aws4_request``.
SERVICE = "sts"
SCOPE_TERMINATOR = "aws4_request"
#: X-Amz-Date's format: ``yyyymmddTHHMMSSZ`` in UTC.
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

#: The signed header that binds a token to one cluster: the server sends its own cluster id in it,
#: so a token minted for another cluster fails STS's signature check.
CLUSTER_ID_HEADER = "x-k8s-aws-id"
#: The other signed header: the STS host the token was presigned for.
HOST_HEADER = "host"
#: X-Amz-SignedHeaders as every client signs it.
SIGNED_HEADERS = f"{HOST_HEADER};{CLUSTER_ID_HEADER}"

#: STS honours a presigned GetCallerIdentity for this long after X-Amz-Date, whatever
#: X-Amz-Expires says (protocol.md section 1).
TOKEN_LIFETIME_SECONDS = 15 * 60
#: kubectl is told the token expires this long before STS stops honouring it, so that a token
#: handed out at the last moment still reaches the server in time (protocol.md section 1).
EXPIRY_CUSHION_SECONDS = 60
#: The ExecCredential's expirationTimestamp is the signing time plus this (14 minutes).
EXEC_CREDENTIAL_LIFETIME_SECONDS = TOKEN_LIFETIME_SECONDS - EXPIRY_CUSHION_SECONDS
#: X-Amz-Expires as every client sends it: 60 is a legacy value (old servers required 0..60)
#: that STS ignores for this operation.
DEFAULT_EXPIRES_SECONDS = 60
#: X-Amz-Expires bound kept by the reference: 0..15 minutes.
MAX_EXPIRES_SECONDS = 900

# The query keys of a token, as STS spells them.
ACTION_KEY = "Action"
VERSION_KEY = "Version"
ALGORITHM_KEY = "X-Amz-Algorithm"
CREDENTIAL_KEY = "X-Amz-Credential"
DATE_KEY = "X-Amz-Date"
EXPIRES_KEY = "X-Amz-Expires"
SIGNED_HEADERS_KEY = "X-Amz-SignedHeaders"
#: Only with temporary credentials: the one optional key.
SECURITY_TOKEN_KEY = "X-Amz-Security-Token"  # noqa: S105 - a query key name, not a secret
SIGNATURE_KEY = "X-Amz-Signature"

#: Every key a token may carry, in the order botocore writes them into a presigned URL
#: (operation parameters, then the auth parameters, the security token after the signed headers,
#: the signature last). Nothing else is allowed (CVE-2022-2385, protocol.md section 2, rule 5).
QUERY_KEYS = (
    ACTION_KEY,
    VERSION_KEY,
    ALGORITHM_KEY,
    CREDENTIAL_KEY,
    DATE_KEY,
    EXPIRES_KEY,
    SIGNED_HEADERS_KEY,
    SECURITY_TOKEN_KEY,
    SIGNATURE_KEY,
)
