"""Ground truth on its own: inferwatch's label record, one JSON object per message (a labels
topic, or a JSON-lines file replayed)::

    {"request_id": "req-123",                   # string, required: the prediction's request id
     "label": true,                             # scalar, required: the true class or value
     "timestamp": "2016-03-02T08:00:00Z",       # optional: when the label became known
                                                # (RFC 3339 or epoch ms; else the Kafka timestamp)
     "model": "employment"}                     # optional: restricts the join to this model

Labels are joined with their predictions by request id (:class:`collector.join.LabelJoin`).
"""

from __future__ import annotations

from collections.abc import Sequence

from collector.decode import RecordError, RejectReason
from collector.formats.columns import DecodedBuilder, scalar
from collector.formats.common import event_time, load_object, payload, text_id
from collector.formats.config import FormatConfig, Limits
from collector.message import Message
from collector.record import Decoded

FIELDS = {"request_id", "label", "timestamp", "model"}


def decode(messages: Sequence[Message], fmt: FormatConfig, limits: Limits) -> Decoded:
    """Decode label records into ``Decoded.labels`` (request_id, label, event_time_ms, model).

    A message with another field, no request id, or a label that is not a scalar (or null) is
    rejected with the reason.
    """
    out = DecodedBuilder()

    def one(msg: Message) -> None:
        obj = load_object(payload(msg, limits))
        extra = sorted(set(obj) - FIELDS)
        if extra:
            raise RecordError(RejectReason.WRONG_TYPE, f"label record: unknown field(s) {', '.join(extra)}")
        rid = text_id(obj.get("request_id"), "request_id")
        if rid is None:
            raise RecordError(RejectReason.MISSING_FIELD, "request_id: a label needs the prediction's request id")
        label = scalar(obj.get("label"), "label")
        if label is None:
            raise RecordError(RejectReason.MISSING_FIELD, "label: missing or null")
        model = obj.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            raise RecordError(RejectReason.WRONG_TYPE, "model: must be a non-empty string")
        t = event_time(obj.get("timestamp"), "timestamp", msg, limits)
        out.add("labels", 1, model=model or fmt.model, event_time_ms=[t], request_ids=[rid], label=[label])

    out.run(messages, one)
    return out.build()
