"""A Bedrock runtime emulator: ``Converse`` and ``InvokeModel`` (Anthropic messages body).

Unmodified boto3, and the Amazon provider's ``BedrockRuntimeHook``, reach it through
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``. Its default model is an **extractive** summariser
that runs offline on the CPU: it answers with sentences taken from the text it is given,
as JSON (``summary``, ``key_points``, ``note``) when the prompt asks for JSON. With
``--gguf PATH`` a local GGUF model answers instead, through llama-cpp-python.

Fault injection (off unless set):

- ``--fault-throttle-rate RATE``: that share of requests gets ``ThrottlingException`` (429),
  from a seeded sequence so runs repeat;
- ``--fault-fail-marker TEXT``: a request whose text contains TEXT gets a
  ``ValidationException`` (400), the error Bedrock gives a request it will not serve;
- ``POST /_emulator/faults/throttle?seconds=N``: every request gets ``ThrottlingException``
  for the next N seconds, as a burst of traffic on the account would;
- ``POST /_emulator/faults/hold?seconds=N``: requests are answered no sooner than N seconds
  from now, as a slow model would answer them. ``seconds=0`` ends either at once.
"""
