"""agentgym: a gym and trainer for multi-turn LLM agents on text environments."""

from agentgym.core import TextEnv, check_env
from agentgym.data import Batch, Trajectory, Turn
from agentgym.registry import list_envs, make, register

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "TextEnv",
    "Trajectory",
    "Turn",
    "check_env",
    "list_envs",
    "make",
    "register",
]
