"""A SageMaker-contract inference server (``GET /ping``, ``POST /invocations``) for speech recognition.

One server, pluggable backends: ``whisper`` (faster-whisper, offline, the local default),
``parakeet`` (NVIDIA NeMo, the cloud container's) and ``benchmark`` (fixed latency, for
measuring the pipeline rather than the model). Every backend answers the same JSON:
``{"text", "language", "duration_seconds", "model", "segments": [{"start", "end", "text"}]}``.
"""
