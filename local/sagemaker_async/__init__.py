"""A SageMaker asynchronous inference runtime emulator that speaks the real wire protocol.

``POST /endpoints/{EndpointName}/async-invocations`` answers like ``sagemaker-runtime``
(202 with ``InferenceId``, ``X-Amzn-SageMaker-OutputLocation`` and
``X-Amzn-SageMaker-FailureLocation``; ``ValidationError`` otherwise), so unmodified boto3
reaches it through ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``. Behind it, it does what
SageMaker does: reads the endpoint and its ``AsyncInferenceConfig`` from the SageMaker
control plane (moto), queues requests with the endpoint's concurrency
(``MaxConcurrentInvocationsPerInstance`` x instances), fetches the input from S3 (or takes
the inline ``Body``), calls the model server over the container contract (``POST /invocations``),
writes ``<id>.out`` (or ``Filename``, under ``S3OutputPathExtension``) to ``S3OutputPath`` or
``<id>-error.out`` to ``S3FailurePath``, and publishes the documented success or error
notification to the endpoint's SNS topics, with the response inline where
``IncludeInferenceResponseIn`` asks. ``RequestTTLSeconds`` bounds the wait for a model slot,
``InvocationTimeoutSeconds`` the model call; a request the model drops (a crash) fails and is
not sent again. Accepted requests are journaled on disk, so a restart resumes them.
``GET /_emulator/health`` reports counters.

Fault injection (off unless set; chosen from the inference id, so runs repeat):

- ``--fault-duplicate-notifications RATE``: publish that share of notifications twice;
- ``--fault-drop-notifications RATE``: write the result but publish nothing for that share.
"""
