"""The training config: one frozen dataclass per section, a help line per field.

Loaded from YAML with dotted overrides: ``agentgym train configs/quickstart.yaml trainer.lr=1e-5``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agentgym.config import param
from agentgym.trainers.options import FilterGroupsSection, LLDSSection, ToolEfficiencySection
from agentgym.trainers.shaping import ProgressSection


@dataclass(frozen=True)
class EnvSection:
    id: str = param("agentgym/KeyDoor-Small-v0", "Registered environment id to train on.")
    kwargs: dict[str, Any] = param({}, "Constructor arguments passed to agentgym.make.")
    max_turns: int | None = param(None, "Turn limit per episode (None: the registered limit).")
    tasks_per_iter: int = param(4, "Distinct tasks (seeds) collected per iteration.")
    group_size: int = param(4, "Trajectories per task; credit compares within a group.")
    seed: int = param(0, "Base seed; iteration i uses tasks seed + i*tasks_per_iter + k.")
    workers: int = param(
        0, "Env workers stepping in parallel (0: in the trainer's thread, one after another)."
    )
    executor: Literal["thread", "process", "ray"] = param(
        "thread",
        "Where workers keep their envs: threads (I/O-bound envs), processes (CPU-bound or not "
        "thread-safe) or Ray actors (the ray extra; envs on a Ray cluster).",
    )
    step_timeout: float | None = param(
        None, "Seconds a reset or step may take before its episode is abandoned (needs workers)."
    )
    faults: Literal["exclude", "fail"] = param(
        "exclude",
        "Episodes whose env raised or hung: 'exclude' keeps them out of credit and the loss; "
        "'fail' trains on them as failed episodes.",
    )
    max_fault_rate: float = param(
        0.25, "Stop the run when more than this fraction of an iteration's episodes faulted."
    )
    recycle_after: int = param(
        0,
        "Restart an env worker process (or actor) after this many resets, between iterations "
        "(0: never); bounds what leaky envs (ALFWorld's engine) accumulate.",
    )


@dataclass(frozen=True)
class PolicySection:
    backend: Literal["hf", "vllm"] = param("hf", "Generation backend for rollouts.")
    model: str = param("smollm2-135m", "Model: 'smollm2-135m' (embedded) or a HF model directory.")
    dtype: Literal["float32", "bfloat16", "float16"] = param(
        "float32", "Parameter dtype (float32 on CPU: bf16 has no hardware support there)."
    )
    device: str = param("auto", "'auto' (cuda if available, else cpu), 'cpu' or 'cuda'.")
    temperature: float = param(1.0, "Sampling temperature of rollouts (logprobs use the same).")
    top_p: float = param(1.0, "Nucleus sampling mass.")
    max_new_tokens: int = param(16, "Maximum tokens generated per turn.")
    stop: tuple[str, ...] = param(
        [], "Generation stops after any of these strings (empty: the action format's own)."
    )
    action_format: Literal["plain", "tag", "tool"] = param(
        "plain",
        "How actions are parsed: 'plain' (first line), 'tag' (<action>...</action>) or 'tool' "
        "(the whole reply, for tool environments' <tool_call>/<answer> tags).",
    )
    decoding: Literal["generate", "constrained"] = param(
        "generate",
        "'generate': free text, parsed into an action; 'constrained': every token is sampled "
        "from the model renormalised over what the env's constraint allows (its admissible "
        "actions or reply grammar), and trained under the same distribution "
        "(see agentgym.constraint).",
    )
    list_actions: bool = param(
        True,
        "List the valid actions after each observation (with decoding=constrained the "
        "constraint already holds them; false shortens every prompt).",
    )
    list_style: Literal["bullets", "inline"] = param(
        "bullets",
        "How the valid actions are listed: 'bullets' (a bulleted list and a reply hint) or "
        "'inline' (one line 'Actions: a | b | c', about half the tokens).",
    )
    history: Literal["full", "window"] = param(
        "full",
        "'full': the whole conversation (KV reuse, one sequence per trajectory); "
        "'window': only the last `window` turns (one sample per turn).",
    )
    window: int = param(2, "Turns of history kept in 'window' mode.")
    max_batch: int = param(16, "Most conversations decoded together.")
    gpu_memory_utilization: float = param(
        0.3,
        "vllm backend: share of the GPU the engine may take (the trained model needs the rest).",
    )
    vllm_sleep: bool = param(
        True, "vllm backend: release the engine's GPU memory during each update (sleep mode)."
    )
    vllm_kv_cache_mib: int = param(
        0,
        "vllm backend: the engine's KV cache in MiB (0: 512 on CPU, the GPU share above on GPU). "
        "It must hold the batch's histories: 16 CoinCollector ones need about 1 GiB with "
        "SmolLM2 in float32, and with 512 MiB the engine recomputes them, 3x slower.",
    )


@dataclass(frozen=True)
class CreditSection:
    estimator: str = param(
        "gigpo",
        "Credit estimator: grpo, rloo, turn_rloo, gigpo, salt, hgpo or graphgpo (docs/credit.md).",
    )
    options: dict[str, Any] = param({}, "Estimator options, e.g. {gamma: 0.9, omega: 1.0}.")


@dataclass(frozen=True)
class RewardSection:
    invalid_penalty: float = param(0.0, "Added to the reward of a turn whose action was invalid.")
    step_penalty: float = param(0.0, "Added to the reward of every turn (negative favours short).")
    win_bonus: float = param(0.0, "Added to the reward of the winning turn.")
    novelty_bonus: float = param(
        0.0,
        "Added to the reward of a turn that reaches a state (info state_key) not yet visited in "
        "its episode: a count-based exploration bonus for sparse-reward navigation.",
    )
    progress: ProgressSection = param(
        ProgressSection(),
        "Potential-based shaping from the env's sub-goals (info progress_count, ALFWorld): "
        "coef * (gamma * Phi' - Phi), which leaves the optimal policy unchanged; "
        "docs/shaping.md.",
    )
    tool_efficiency: ToolEfficiencySection = param(
        ToolEfficiencySection(),
        "OTC: scale each trajectory's rewards by how close its tool calls came to the fewest that "
        "won (tool envs; applied before the additive terms above).",
    )


@dataclass(frozen=True)
class LoraSection:
    enabled: bool = param(False, "Train LoRA adapters (peft) instead of all weights.")
    r: int = param(16, "LoRA rank.")
    alpha: int = param(32, "LoRA scaling numerator.")
    dropout: float = param(0.0, "LoRA dropout.")
    target_modules: tuple[str, ...] = param(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "Module names that get adapters.",
    )
    top_layers: int = param(
        0,
        "Put adapters only in the last N decoder layers (0 or >= the layer count: all). The backward pass then stops "
        "at the lowest adapted layer: fewer FLOPs per trained token, the gradient of the "
        "trained adapters still exact.",
    )


@dataclass(frozen=True)
class TrainerSection:
    iterations: int = param(10, "Collect-credit-update iterations.")
    lr: float = param(1e-5, "AdamW learning rate.")
    weight_decay: float = param(0.0, "AdamW weight decay.")
    warmup_iters: int = param(0, "Iterations of linear learning-rate warm-up.")
    ppo_epochs: int = param(1, "Passes over each iteration's data.")
    mini_batches: int = param(1, "Optimizer steps per epoch (samples split evenly).")
    micro_batch_tokens: int = param(2048, "Padded tokens per forward pass (gradient accumulation).")
    layout: Literal["auto", "full", "window"] = param(
        "auto",
        "Tensor layout: one sequence per trajectory ('full') or per turn ('window'); "
        "'auto' follows policy.history.",
    )
    clip_low: float = param(0.2, "PPO ratio clip below 1.")
    clip_high: float = param(0.28, "PPO ratio clip above 1 (clip-higher).")
    kl_coef: float = param(0.0, "Weight of the KL to the frozen initial model (0: no reference).")
    kl_estimator: Literal["k1", "k2", "k3"] = param(
        "k2",
        "KL estimator: k1 = r, k2 = r^2/2, k3 = exp(-r) - 1 + r with r = log pi - log ref. In the "
        "loss k2 has the gradient of KL(pi||ref) and k3 that of KL(ref||pi); in the reward k1 "
        "gives KL(pi||ref) (see agentgym.trainers.kl).",
    )
    kl_in: Literal["loss", "reward"] = param(
        "loss", "Where the KL enters: a loss term, or a penalty on each token's advantage."
    )
    entropy_coef: float = param(0.0, "Weight of the entropy bonus.")
    aggregation: Literal["token-mean", "seq-mean"] = param(
        "token-mean", "Loss aggregation over response tokens."
    )
    max_grad_norm: float = param(1.0, "Gradient clipping norm.")
    llds: LLDSSection = param(
        LLDSSection(), "LLDS: hold up the likelihood of responses whose likelihood fell (coef > 0)."
    )
    filter_groups: FilterGroupsSection = param(
        FilterGroupsSection(),
        "Leave groups without return variance (or outside the top fraction) out of the update.",
    )
    recompute_old_logprobs: bool = param(
        False,
        "Recompute the PPO ratio's old logprobs with a no-grad forward before the update, "
        "instead of the rollout's (for backends or dtypes whose logprobs differ; see the "
        "logprob_mismatch metric).",
    )
    tis_cap: float = param(
        0.0,
        "Truncated importance sampling: weight each token by min(pi_old / pi_rollout, cap) "
        "(0: off; > 0 implies recompute_old_logprobs).",
    )
    gradient_checkpointing: bool = param(False, "Trade compute for memory in the backward pass.")
    reuse_rollout_states: bool = param(
        True,
        "With the embedding and the first layers frozen (LoRA on the top layers), train from the "
        "hidden states the rollout computed below them instead of re-running those layers "
        "(hf backend, one process, synchronous, full layout; checked against a full forward).",
    )
    checkpoint_every: int = param(1, "Save a checkpoint every this many iterations.")
    keep_checkpoints: int = param(2, "Most recent checkpoints kept.")
    eval_every: int = param(0, "Evaluate every this many iterations (0: only before and after).")
    eval_at_start: bool = param(
        True,
        "Evaluate before training (false saves it when several runs share one starting model, "
        "e.g. bench/learn.py's comparisons).",
    )
    eval_episodes: int = param(16, "Episodes per evaluation.")
    eval_seed: int = param(10_000, "Base seed of evaluation tasks (disjoint from training).")
    eval_env_id: str = param(
        "", "Environment of the evaluations ('': env.id), e.g. another level of the family."
    )
    eval_env_kwargs: dict[str, Any] = param(
        {},
        "Constructor arguments of the evaluation environment, over env.kwargs (e.g. {split: "
        "valid_unseen} for ALFWorld's held-out floor plans, {level: 10} for CoinCollector).",
    )
    eval_temperature: float = param(0.0, "Sampling temperature of evaluation (0: greedy).")
    max_staleness: int = param(
        0,
        "Asynchronous rollouts: 0 collects each iteration right before its update; k >= 1 "
        "collects up to k iterations ahead in a background thread, training on trajectories "
        "at most k policy versions old (see agentgym.trainers.async_rollout).",
    )
    strategy: Literal["ddp", "fsdp"] = param(
        "ddp",
        "Under torchrun (agentgym train --nproc N): 'ddp' replicates the model on each rank; "
        "'fsdp' shards it with FSDP2 (models that do not fit; needs policy.backend=vllm).",
    )


@dataclass(frozen=True)
class SFTSection:
    data: tuple[str, ...] = param(
        [],
        "Run or rollout folders whose stored replies are the targets of `agentgym sft` (e.g. "
        "`agentgym rollout ENV --policy oracle --out RUN`); empty: play oracle_episodes.",
    )
    oracle_episodes: int = param(
        0, "With no data: episodes of the env's own expert (oracle_action) to train on."
    )
    oracle_seed: int = param(
        100_000, "Base seed of the oracle episodes (disjoint from training and evaluation)."
    )
    won_only: bool = param(True, "Train only on won episodes.")
    max_trajectories: int = param(0, "Use at most this many trajectories (0: all).")
    epochs: int = param(2, "Passes over the expert trajectories.")
    lr: float = param(1e-4, "AdamW learning rate of the supervised phase.")
    batch_trajectories: int = param(8, "Trajectories per optimizer step.")
    eval_every: int = param(1, "Evaluate after every this many epochs (0: only at the end).")


@dataclass(frozen=True)
class TrainConfig:
    name: str = param("quickstart", "Run name; the run directory is out_dir/name.")
    out_dir: str = param("runs", "Folder holding run directories.")
    seed: int = param(0, "Seed of torch, numpy and sampling.")
    env: EnvSection = param(EnvSection(), "Environment to train on.")
    policy: PolicySection = param(PolicySection(), "Model and generation.")
    credit: CreditSection = param(CreditSection(), "Credit assignment.")
    reward: RewardSection = param(RewardSection(), "Reward shaping applied by the trainer.")
    lora: LoraSection = param(LoraSection(), "Optional LoRA adapters.")
    trainer: TrainerSection = param(TrainerSection(), "Optimization.")
    sft: SFTSection = param(
        SFTSection(), "Supervised warm start on expert trajectories (`agentgym sft CONFIG`)."
    )
