"""A SageMaker-contract inference server (``GET /ping``, ``POST /invocations``) for speech recognition.

One server, pluggable backends: ``whisper`` (faster-whisper, offline, the local default),
``parakeet`` (NVIDIA NeMo, the cloud container's) and ``benchmark`` (fixed latency, for
measuring the pipeline rather than the model). Every backend answers the same JSON:
``{"text", "language", "duration_seconds", "model", "segments": [{"start", "end", "text"}],
"processing_seconds", "concurrent_requests"}``: ``duration_seconds`` is the audio's (decoded) length,
``processing_seconds`` the wall-clock time the request held a model slot, and ``concurrent_requests``
how many slots the server has (an instance's time is shared by that many requests at once). The
pipeline's cost estimate reads the three (``audio_pipeline.transcripts``).
"""
