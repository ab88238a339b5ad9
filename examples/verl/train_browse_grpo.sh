#!/usr/bin/env bash
# GRPO on Crucible's browse questions with verl's tool-agent loop, the kit's search/visit tools and its reward.
#   make train-deps   (or: pip install -e '.[train]' for verl's full GPU install)
#   crucible kg build && crucible export --out data/run --format verl     # the RL split (rl, sft+rl)
#   MODEL=Qwen/Qwen2.5-3B-Instruct NGPUS=8 examples/verl/train_browse_grpo.sh data/run/export/verl-browse.parquet
# Train and validation on the same file only for a first try; split it for real runs.
set -euo pipefail
DATA=${1:?usage: $0 VERL_PARQUET [extra verl overrides...]}; shift
KIT=$(python -c 'import crucible.pipelines.integrations.verl as k; print(k.KIT_DIR)')
MODEL=${MODEL:-Qwen/Qwen2.5-3B-Instruct}
# browse.max_turns (Crucible) and max_assistant_turns (verl) must agree: the tools' turn note counts it
TURNS=$(python -c 'from crucible.pipelines.config import load_config; print(load_config("browse")["browse"]["max_turns"])')
python -m verl.trainer.main_ppo \
  algorithm.adv_estimator=grpo \
  data.train_files="$DATA" data.val_files="$DATA" data.return_raw_chat=True \
  data.train_batch_size=64 data.max_prompt_length=2048 data.max_response_length=4096 \
  actor_rollout_ref.model.path="$MODEL" \
  actor_rollout_ref.actor.optim.lr=1e-6 actor_rollout_ref.actor.ppo_mini_batch_size=32 \
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4 \
  actor_rollout_ref.rollout.name=vllm actor_rollout_ref.rollout.n=5 \
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4 \
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4 \
  actor_rollout_ref.rollout.multi_turn.enable=True actor_rollout_ref.rollout.multi_turn.format=hermes \
  actor_rollout_ref.rollout.multi_turn.tool_config_path="$KIT/tool_config.yaml" \
  actor_rollout_ref.rollout.multi_turn.max_assistant_turns="$TURNS" \
  actor_rollout_ref.rollout.multi_turn.max_tool_response_length=6000 \
  reward.custom_reward_function.path="$KIT/reward.py" reward.custom_reward_function.name=compute_score \
  trainer.n_gpus_per_node="${NGPUS:-8}" trainer.nnodes=1 trainer.total_epochs=1 \
  trainer.project_name=crucible trainer.experiment_name=browse-grpo trainer.logger='["console"]' \
  "$@"
