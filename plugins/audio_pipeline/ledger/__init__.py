"""The status table's only owner: its schema, its records and every operation that changes it.

Nothing outside this package names a table attribute or builds a write; see
:mod:`audio_pipeline.ledger.ledger` for who may write what.
"""

from audio_pipeline.ledger._store import CONCURRENCY, WriteResult, table_definition
from audio_pipeline.ledger.ledger import (
    Accepted,
    Invocation,
    Ledger,
    NotSent,
    Refused,
    Result,
    Skipped,
    Summarized,
    SummaryFailed,
    Unclear,
    inference_id_for,
    utcnow,
)
from audio_pipeline.ledger.records import IN_FLIGHT, SETTLED, FileRecord, Status

__all__ = [
    "CONCURRENCY",
    "IN_FLIGHT",
    "SETTLED",
    "Accepted",
    "FileRecord",
    "Invocation",
    "Ledger",
    "NotSent",
    "Refused",
    "Result",
    "Skipped",
    "Status",
    "Summarized",
    "SummaryFailed",
    "Unclear",
    "WriteResult",
    "inference_id_for",
    "table_definition",
    "utcnow",
]
