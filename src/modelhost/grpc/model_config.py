"""A model version's ``model.yaml`` as Triton's ``ModelConfig``, where the two map.

Triton leaves the batch dimension out of ``dims`` when ``max_batch_size`` is above 0; so does
this. The instances are a CPU instance group; ``batching`` is ``dynamic_batching`` (its delay in
microseconds, the queue bound as its queue policy); ``parameters`` are strings (JSON unless the
value is one). Keys with no Triton counterpart (memory hint, pinning, entry point) stay out.
"""

from __future__ import annotations

import json

from modelhost.catalog.model_catalog import ModelRef
from modelhost.grpc.generated import grpc_predict_v2_pb2 as pb
from modelhost.inference.metadata import PLATFORMS
from modelhost.manifest import TensorSpec

# V2 datatype -> Triton's DataType enum (V2 BYTES is Triton's TYPE_STRING).
_DATA_TYPES = {
    "BOOL": pb.TYPE_BOOL,
    "UINT8": pb.TYPE_UINT8,
    "UINT16": pb.TYPE_UINT16,
    "UINT32": pb.TYPE_UINT32,
    "UINT64": pb.TYPE_UINT64,
    "INT8": pb.TYPE_INT8,
    "INT16": pb.TYPE_INT16,
    "INT32": pb.TYPE_INT32,
    "INT64": pb.TYPE_INT64,
    "FP16": pb.TYPE_FP16,
    "FP32": pb.TYPE_FP32,
    "FP64": pb.TYPE_FP64,
    "BYTES": pb.TYPE_STRING,
}


def model_config(ref: ModelRef) -> pb.ModelConfig:
    manifest = ref.manifest
    batched = manifest.max_batch_size > 0
    config = pb.ModelConfig(
        name=ref.name,
        platform=PLATFORMS[manifest.runtime],
        backend=manifest.runtime,
        max_batch_size=manifest.max_batch_size,
    )
    for spec in manifest.inputs:
        config.input.add(name=spec.name, data_type=_DATA_TYPES[spec.datatype])
        config.input[-1].dims.extend(_dims(spec, batched))
    for spec in manifest.outputs:
        config.output.add(name=spec.name, data_type=_DATA_TYPES[spec.datatype])
        config.output[-1].dims.extend(_dims(spec, batched))
    config.instance_group.add(count=manifest.instances, kind=pb.ModelInstanceGroup.KIND_CPU)
    if manifest.batching is not None:
        batching = config.dynamic_batching
        batching.preferred_batch_size.extend(manifest.batching.preferred_batch_sizes)
        batching.max_queue_delay_microseconds = round(manifest.batching.max_delay_ms * 1000)
        batching.default_queue_policy.max_queue_size = manifest.max_queue_size
    for key, value in manifest.parameters.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        config.parameters[key].string_value = text
    return config


def _dims(spec: TensorSpec, batched: bool) -> tuple[int, ...]:
    return spec.shape[1:] if batched else spec.shape
