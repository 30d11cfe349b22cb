"""Adaptive retries for the pipeline's AWS clients, unless the user's configuration names its own."""

from __future__ import annotations

from botocore.config import Config

DEFAULT_RETRIES = {"mode": "adaptive", "max_attempts": 10}
"""Throttling, 5xx answers and modelled-retryable errors are retried by botocore with
client-side rate limiting (``max_attempts`` counts the retries after the first call)."""


class AdaptiveRetries:
    """
    A mixin for ``AwsBaseHook`` subclasses: the client retries adaptively unless its botocore
    configuration (the hook's ``config``, an operator's ``botocore_config`` or the
    connection's ``config_kwargs``) sets ``retries`` itself.

    ``AwsBaseOperator`` always passes ``config`` (``None`` without ``botocore_config``), so
    the default is applied here, after the explicit and the connection's settings.
    """

    @property
    def config(self) -> Config:
        config = super().config or Config()
        return config if config.retries else config.merge(Config(retries=DEFAULT_RETRIES))
