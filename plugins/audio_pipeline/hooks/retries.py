"""Adaptive retries for the pipeline's AWS clients, unless the user's configuration names its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.config import Config

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook
    from botocore.config import _RetryDict

    _Hook = AwsGenericHook[Any]
else:
    _Hook = object

DEFAULT_RETRIES: _RetryDict = {"mode": "adaptive", "max_attempts": 10}
"""Throttling, 5xx answers and modelled-retryable errors are retried by botocore with
client-side rate limiting (``max_attempts`` counts the retries after the first call)."""


class AdaptiveRetries(_Hook):
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
        # Config sets its options as attributes from its keywords; botocore-stubs declares none
        return config if getattr(config, "retries", None) else config.merge(Config(retries=DEFAULT_RETRIES))
