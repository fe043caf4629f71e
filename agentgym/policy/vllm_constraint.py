"""Constrained decoding inside vLLM: a logits processor masking to :mod:`agentgym.constraint`'s sets.

The hf backend samples each token from ``softmax(logits / T)`` renormalised over the allowed set
A_t that the turn's constraint (admissible actions: a trie; a tool env's reply grammar:
llguidance) gives after the tokens so far. vLLM does the same with :class:`ConstraintMasker`, a
per-request function ``(output_ids, logits) -> logits`` that sets every token outside A_t to
-inf. It is wrapped into vLLM's per-request adapter (``vllm.v1.sample.logits_processor.
AdapterLogitsProcessor``) by :func:`processor_class` and switched on per request by
``SamplingParams.extra_args[EXTRA_ARG] = spec``; the engine needs
``LLM(logits_processors=[processor_class()])``.

What vLLM returns as the token's logprob: with ``logprobs_mode="processed_logprobs"`` the
logprobs are taken after the logits processors and the temperature, i.e. ``log_softmax`` of the
masked, scaled logits: the constrained distribution, as the hf backend stores. Versions whose
processed logprobs are taken *before* custom processors, and any ``top_p < 1``, give the
unconstrained (or nucleus) numbers instead; these are not the sampling distribution's. The
trainer does not depend on them being right: it rebuilds A_t from the stored spec, computes the
restricted log-softmax on its own forward, logs ``logprob_mismatch`` and, with
``trainer.recompute_old_logprobs``, uses its own numbers as the old logprobs. That is the
correction to use whenever vLLM rolls out (the mismatch shows how far apart they are).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from agentgym.constraint import ConstraintCompiler, Matcher, unpack

EXTRA_ARG = "agentgym_constraint"
"""Key of the constraint spec in vLLM's ``SamplingParams.extra_args``."""


class ConstraintMasker:
    """One request's mask: ``masker(output_ids, logits)`` keeps only the allowed tokens.

    ``output_ids`` are all tokens the request has generated so far (vLLM passes the growing
    list each step); the matcher advances over the new ones, then ``logits`` [V] get -inf
    outside the allowed set. Once the constraint is complete nothing but -inf remains, and the
    engine stops at the end token the constraint ends with.
    """

    def __init__(self, compiler: ConstraintCompiler, spec: str) -> None:
        self.matcher: Matcher = compiler.matcher(spec)
        self.seen = 0

    def allowed(self, output_ids: Sequence[int], vocab: int, device: Any) -> torch.Tensor:
        """Bool [vocab]: the tokens allowed after ``output_ids``."""
        for token in output_ids[self.seen :]:
            self.matcher.advance(int(token))
        self.seen = len(output_ids)
        packed = torch.from_numpy(self.matcher.allowed())
        return unpack(packed, vocab).to(device)

    def __call__(self, output_ids: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
        allowed = self.allowed(output_ids, logits.shape[-1], logits.device)
        return logits.masked_fill(~allowed, float("-inf"))


def processor_class() -> type:
    """vLLM's per-request adapter around :class:`ConstraintMasker` (imports vLLM)."""
    from transformers import AutoTokenizer
    from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

    class AgentgymConstraint(AdapterLogitsProcessor):
        """Masks requests that carry ``extra_args[EXTRA_ARG]`` to their allowed tokens."""

        def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool) -> None:
            super().__init__(vllm_config, device, is_pin_memory)
            model_config = vllm_config.model_config
            tokenizer = AutoTokenizer.from_pretrained(model_config.tokenizer)
            self.compiler = ConstraintCompiler(tokenizer, model_config.get_vocab_size())

        def is_argmax_invariant(self) -> bool:
            return False  # masking changes the argmax: it must run before greedy sampling too

        def new_req_logits_processor(self, params: Any) -> ConstraintMasker | None:
            spec = (getattr(params, "extra_args", None) or {}).get(EXTRA_ARG)
            return ConstraintMasker(self.compiler, spec) if spec else None

    return AgentgymConstraint
