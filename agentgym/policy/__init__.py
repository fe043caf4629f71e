"""Policies: the protocol and its backends (scripted here; hf, vllm, openai in their modules)."""

from agentgym.policy.base import Completion, Conversation, Policy, SamplingParams

__all__ = ["Completion", "Conversation", "Policy", "SamplingParams"]
