"""The cluster id: what binds a token to one cluster (pure, import-light).

A token is presigned with the signed header ``x-k8s-aws-id: <cluster id>`` and the webhook sends
the same header to STS, so both sides must agree on the id byte for byte. One rule,
:func:`check_cluster_id`, is applied wherever an id enters kubeiam: ``kubeiam token`` (before
signing), ``kubeiam verify`` and ``kubeiam server`` (before the first review), ``kubeiam init``
and ``kubeiam kubeconfig update`` (before writing an entry that would only fail later).

This module is on the ``kubeiam token`` start-up path: it imports nothing, the error tree only
to refuse an id.
"""

#: The environment variable every command taking ``-i/--cluster-id`` reads.
CLUSTER_ID_ENV = "KUBEIAM_CLUSTER_ID"
#: aws-iam-authenticator's variable, still read by ``server`` and ``init`` (drop-in
#: compatibility with the reference's deployments).
REFERENCE_CLUSTER_ID_ENV = "KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID"
#: The id travels as an HTTP header value and inside a SigV4 canonical request, which trims and
#: collapses whitespace: an id with a space or a control character would be signed as something
#: else than what was typed. Printable ASCII without spaces is what every EKS cluster name and
#: every id the reference's docs show satisfies.
FIRST_ALLOWED, LAST_ALLOWED = "\x21", "\x7e"
#: Longer ids are not cluster names (EKS allows 100 characters); the bound keeps the header, the
#: token cache key and error messages small.
MAX_CLUSTER_ID_LENGTH = 255
#: How much of a refused id an error message quotes.
_QUOTE = 60


def check_cluster_id(cluster_id: str, *, source: str = "-i/--cluster-id") -> str:
    """``cluster_id`` unchanged, or :class:`ConfigError` naming ``source`` (the flag, key or
    entry the id came from) when it breaks the rule above."""
    problem = None
    if not cluster_id:
        problem = "is empty"
    elif len(cluster_id) > MAX_CLUSTER_ID_LENGTH:
        problem = f"is {len(cluster_id)} characters long (at most {MAX_CLUSTER_ID_LENGTH})"
    elif not all(FIRST_ALLOWED <= ch <= LAST_ALLOWED for ch in cluster_id):
        problem = "has a space, a control character or a non-ASCII character"
    if problem is None:
        return cluster_id
    from kubeiam.errors import ConfigError  # here: the token plugin's fast path raises none

    quoted = repr(cluster_id[:_QUOTE]) + ("..." if len(cluster_id) > _QUOTE else "")
    raise ConfigError(
        f"the cluster id {quoted} ({source}) {problem}: it must be 1-{MAX_CLUSTER_ID_LENGTH} "
        "printable ASCII characters without spaces",
        hint="use the id the server is configured with (often the EKS cluster name)",
    )
