"""Credit assignment: per-turn advantage estimators registered by name.

Importing this package registers ``grpo``, ``rloo``, ``turn_rloo``, ``gigpo``, ``salt``, ``hgpo``
and ``graphgpo`` (their formulas and worked examples: docs/credit.md).
Every estimator has the signature ``estimate(batch, config) -> np.ndarray[float32]`` of shape
[T] (one advantage per turn); look one up with :func:`get`, build its config with
:func:`make_config`, or do both with :func:`compute`::

    adv = compute("gigpo", batch, {"gamma": 0.9})
"""

from agentgym.credit.gigpo import GiGPOConfig, gigpo_advantages
from agentgym.credit.graphgpo import GraphGPOConfig, graph_distances, graphgpo_advantages
from agentgym.credit.grpo import GRPOConfig, grpo_advantages
from agentgym.credit.hgpo import HGPOConfig, hgpo_advantages
from agentgym.credit.registry import Estimator, compute, get, make_config, names, register_estimator
from agentgym.credit.rloo import RLOOConfig, rloo_advantages
from agentgym.credit.salt import SALTConfig, salt_advantages, salt_graphs
from agentgym.credit.turn_rloo import TurnRLOOConfig, turn_rloo_advantages

__all__ = [
    "Estimator",
    "GRPOConfig",
    "GiGPOConfig",
    "GraphGPOConfig",
    "HGPOConfig",
    "RLOOConfig",
    "SALTConfig",
    "TurnRLOOConfig",
    "compute",
    "get",
    "gigpo_advantages",
    "graph_distances",
    "graphgpo_advantages",
    "grpo_advantages",
    "hgpo_advantages",
    "make_config",
    "names",
    "register_estimator",
    "rloo_advantages",
    "salt_advantages",
    "salt_graphs",
    "turn_rloo_advantages",
]
