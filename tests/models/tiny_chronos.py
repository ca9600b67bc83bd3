"""A tiny, randomly initialized Chronos-Bolt checkpoint built locally (no hub access).

The released models cannot be downloaded here; this builds the same architecture with a few
thousand weights, saves it with ``save_pretrained`` and lets tests load it through the public
``BaseChronosPipeline.from_pretrained``. Its forecasts are meaningless but have the real shapes.
"""

from __future__ import annotations

from pathlib import Path

BOLT_LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def build_tiny_bolt(folder: Path, *, prediction_length: int = 16, seed: int = 0) -> Path:
    """Write a tiny Chronos-Bolt checkpoint (config.json + model.safetensors) to ``folder``."""
    import torch
    import transformers
    from chronos.chronos_bolt import ChronosBoltModelForForecasting

    config = transformers.T5Config(
        d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=8,
        dropout_rate=0.0, feed_forward_proj="relu", decoder_start_token_id=0,
        pad_token_id=0, eos_token_id=1, architectures=["ChronosBoltModelForForecasting"],
        chronos_pipeline_class="ChronosBoltPipeline",  # without it loading fails (ENVIRONMENT.md)
        chronos_config={"context_length": 128, "prediction_length": prediction_length,
                        "input_patch_size": 8, "input_patch_stride": 8,
                        "quantiles": BOLT_LEVELS, "use_reg_token": True},
    )
    torch.manual_seed(seed)
    ChronosBoltModelForForecasting(config).save_pretrained(folder)
    return folder
