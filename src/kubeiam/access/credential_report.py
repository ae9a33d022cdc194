"""Access-key ages from IAM's credential report (pure).

The credential report is IAM's bulk answer for credentials: one CSV line per user with, for each
of its two access keys, whether it is active and when it was created or last rotated
(https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_getting-report.html). One
report replaces a ListAccessKeys call per user. IAM builds it at most every four hours, so ages
can be that much behind a key created or rotated since.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime

from kubeiam.errors import AWSAdminError

#: The two access-key column pairs of the report.
KEY_COLUMNS = (
    ("access_key_1_active", "access_key_1_last_rotated"),
    ("access_key_2_active", "access_key_2_last_rotated"),
)
#: Columns the parse needs: without them the text is not a credential report.
REQUIRED = frozenset({"arn", *(c for pair in KEY_COLUMNS for c in pair)})


def key_ages(report_csv: str) -> Mapping[str, tuple[datetime, ...]]:
    """User ARN -> creation/rotation times of its *active* access keys (users without: absent)."""
    reader = csv.DictReader(io.StringIO(report_csv))
    missing = REQUIRED - set(reader.fieldnames or ())
    if missing:
        raise AWSAdminError(
            f"the IAM credential report lacks columns {', '.join(sorted(missing))}",
            hint="this IAM endpoint does not produce AWS's credential report format",
        )
    ages: dict[str, tuple[datetime, ...]] = {}
    for line in reader:
        times = tuple(
            stamp
            for active, rotated in KEY_COLUMNS
            if line.get(active, "").lower() == "true"
            and (stamp := _timestamp(line.get(rotated, ""))) is not None
        )
        if times:
            ages[line["arn"]] = times
    return ages


def _timestamp(text: str) -> datetime | None:
    """ISO 8601 with an offset, as the report writes it; ``N/A`` and the like are None."""
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else None
