"""Talking to AWS through boto3: the admin commands' clients and error translation
(:mod:`.clients`); the webhook's lazily built sessions and clients (:mod:`.sessions`) and how it
runs, rate-limits and names its AWS calls (:mod:`.calls`)."""
