"""The canonical prediction record every decoder produces, as columnar frames.

Every wire format (inferwatch's own JSON record, KServe CloudEvents, Open Inference Protocol,
Seldon, SageMaker data capture, BentoML) is turned into rows of one record. Columns:

- ``model`` (str), ``model_version`` (str): which model answered.
- ``event_time_ms`` (int64): when the prediction was made, UTC epoch milliseconds.
- ``request_id`` (str): the join key between a request, its response and its label. Row ``i``
  of a request that carried a batch of ``n > 1`` rows gets ``"<id>#<i>"`` (see
  :func:`row_request_ids`), on the request side and on the response side alike, so batched
  rows join one to one.
- ``label`` (str or None): ground truth, when the record carries it (normalised text, see
  :func:`detectors.profile.category_label`).
- ``latency_ms`` (float64, NaN when unknown): end-to-end serving latency.
- ``features.<name>``: one column per model input; ``predictions.<name>``: one per output. A
  column whose values are all numbers is float64 (missing = NaN); any other holds strings or
  None.
- ``serving.<name>`` (optional): serving metadata such as ``serving.batch_size``,
  ``serving.status_code``, ``serving.replica``, ``serving.endpoint``,
  ``serving.prompt_tokens``, ``serving.completion_tokens``, ``serving.queue_ms``,
  ``serving.time_to_first_token_ms``, ``serving.finish_reason``: numbers float64 (NaN when
  missing), text otherwise. inferwatch's record carries them in its ``serving`` object
  (:mod:`collector.decode`), flat JSON logs through ``mapping.serving`` paths.

Formats that log a request and its response as separate messages yield *halves*; a label that
arrives on its own yields a label row. :class:`Decoded` carries all four kinds; the join stage
(:mod:`collector.join`) turns halves into whole records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

FEATURE_PREFIX = "features."
PREDICTION_PREFIX = "predictions."
SERVING_PREFIX = "serving."
META_COLUMNS = ("model", "model_version", "event_time_ms", "request_id", "label", "latency_ms")
# columns of a label row (ground truth arriving on its own)
LABEL_COLUMNS = ("request_id", "label", "event_time_ms")


def empty_frame(columns: tuple[str, ...] = META_COLUMNS) -> pd.DataFrame:
    """A frame with the given columns and no rows."""
    return pd.DataFrame({c: [] for c in columns})


def row_request_ids(request_id: str, n_rows: int) -> list[str]:
    """Request ids of the rows of one request: ``[id]`` for a single row, else ``id#0 .. id#n-1``."""
    if n_rows == 1:
        return [request_id]
    return [f"{request_id}#{i}" for i in range(n_rows)]


@dataclass
class Decoded:
    """What decoding a batch of messages produced.

    Attributes:
        records: whole records (request and response in one message), canonical columns.
        requests: request halves: ``model``, ``model_version`` (may be empty text when only
            the response names the version), ``event_time_ms``, ``request_id``, ``features.*``
            and optionally ``serving.*``.
        responses: response halves: ``model``, ``model_version``, ``event_time_ms``,
            ``request_id``, ``predictions.*``, ``latency_ms`` and optionally ``serving.*``.
        labels: ground truth arriving on its own: :data:`LABEL_COLUMNS` (plus ``model`` when
            the format names it).
        rejected: messages that could not be decoded (:class:`collector.decode.Rejected`), in
            input order; they go to the dead-letter topic.
    """

    records: pd.DataFrame = field(default_factory=empty_frame)
    requests: pd.DataFrame = field(default_factory=pd.DataFrame)
    responses: pd.DataFrame = field(default_factory=pd.DataFrame)
    labels: pd.DataFrame = field(default_factory=pd.DataFrame)
    rejected: list = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        """Rows of all four kinds together."""
        return len(self.records) + len(self.requests) + len(self.responses) + len(self.labels)
