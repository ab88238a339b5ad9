"""SFT on Crucible's TRL export (conversational rows with tool calls and tools), TRL unchanged.

    crucible export --out data/run --format trl                   # SFT splits (sft, sft+rl), browse + swe
    python examples/trl/sft.py data/run/export/trl-all.parquet Qwen/Qwen2.5-0.5B-Instruct out/sft

The tokenizer's own chat template renders the tools and tool calls (tests: Qwen2.5 and Llama-3.1 templates)."""

import sys

from datasets import load_dataset
from trl import SFTConfig, SFTTrainer

data, model, out = sys.argv[1], sys.argv[2], sys.argv[3]
ds = load_dataset("parquet", data_files=data, split="train")
args = SFTConfig(output_dir=out, num_train_epochs=1, per_device_train_batch_size=1, gradient_accumulation_steps=8,
                 learning_rate=1e-5, max_length=16384, logging_steps=10, report_to=[])
SFTTrainer(model=model, args=args, train_dataset=ds).train()
