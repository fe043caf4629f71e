"""Policies: the protocol and its backends.

Backends live in their own modules and import their heavy dependencies lazily:
``agentgym.policy.scripted`` (random, oracle, fixed), ``agentgym.policy.hf`` (transformers),
``agentgym.policy.vllm`` and ``agentgym.policy.openai``.
"""

from agentgym.policy.base import Completion, Conversation, Policy, SamplingParams

__all__ = ["Completion", "Conversation", "Policy", "SamplingParams"]
