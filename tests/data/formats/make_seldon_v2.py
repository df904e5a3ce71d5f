"""Writes seldon_v2.dump.jsonl: Seldon Core v2 model-topic messages as the real stack produces them.

The protobuf values are serialised with Triton's own generated classes
(``tritonclient.grpc.service_pb2``, the same ``inference.ModelInferRequest`` /
``ModelInferResponse`` Seldon's gateway sends), not with inferwatch's, so the test checks wire
compatibility. Run once by hand (needs ``pip install tritonclient[grpc]``):

    python tests/data/formats/make_seldon_v2.py
"""

import base64
import json
from pathlib import Path

import numpy as np
from tritonclient.grpc import service_pb2 as pb

OUT = Path(__file__).with_name("seldon_v2.dump.jsonl")


def line(topic, offset, ts, value, headers, key=b"req-7-key"):
    return json.dumps({"topic": topic, "partition": 0, "offset": offset, "timestamp": ts,
                       "key_base64": base64.b64encode(key).decode(), "headers": headers,
                       "value_base64": base64.b64encode(value).decode()})


def bytes_blob(items):
    return b"".join(len(s).to_bytes(4, "little") + s for s in items)


req = pb.ModelInferRequest(id="body-id-1")
t = req.inputs.add(name="predict", datatype="FP32", shape=[3, 4])
t = req.inputs.add(name="segment", datatype="BYTES", shape=[3, 1])
t = req.inputs.add(name="score_fp16", datatype="FP16", shape=[3])
t = req.inputs.add(name="age", datatype="UINT8", shape=[3])
req.raw_input_contents.append(np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]],
                                       dtype="<f4").tobytes())
req.raw_input_contents.append(bytes_blob([b"gold", b"silver", "bronze\u00e9".encode()]))
req.raw_input_contents.append(np.array([0.5, -1.25, 2.0], dtype="<f2").tobytes())
req.raw_input_contents.append(np.array([41, 7, 255], dtype="<u1").tobytes())

res = pb.ModelInferResponse(model_name="iris_1", model_version="1", id="body-id-1")
o = res.outputs.add(name="predict", datatype="INT64", shape=[3])
o.contents.int64_contents.extend([0, 1, 2])
o = res.outputs.add(name="proba", datatype="FP64", shape=[3, 3])
o.contents.fp64_contents.extend([0.9, 0.05, 0.05, 0.1, 0.8, 0.1, 0.0, 0.2, 0.8])
o = res.outputs.add(name="flagged", datatype="BOOL", shape=[3, 1])
o.contents.bool_contents.extend([False, True, False])

# the gateway copies the input message's headers (and key) onto the output message
headers = [["x-request-id", "req-7"], ["seldon-infer-type", "proto/InferModelRequest"],
           ["traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]]
lines = [
    line("seldon.prod.model.iris.inputs", 10, 1714564800100, req.SerializeToString(), headers),
    line("seldon.prod.model.iris.outputs", 11, 1714564800150, res.SerializeToString(), headers),
]
OUT.write_text("\n".join(lines) + "\n")
print(f"wrote {OUT}")
