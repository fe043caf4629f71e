"""Environment families, installed as agentgym.envs; importing this registers them."""

from agentgym.registry import register

# fmt: off
register("agentgym/KeyDoor-Small-v0", "agentgym.envs.toy:KeyDoorEnv", n_rooms=3, max_turns=15, description="Fetch a key in a row of 3 rooms, unlock the door, escape (optimal <= 7 steps).")
register("agentgym/KeyDoor-Medium-v0", "agentgym.envs.toy:KeyDoorEnv", n_rooms=5, max_turns=25, description="Fetch a key in a row of 5 rooms, unlock the door, escape (optimal <= 11 steps).")
register("agentgym/KeyDoor-Large-v0", "agentgym.envs.toy:KeyDoorEnv", n_rooms=8, max_turns=40, description="Fetch a key in a row of 8 rooms, unlock the door, escape (optimal <= 17 steps).")
register("agentgym/Maze-4x4-v0", "agentgym.envs.toy_maze:MazeEnv", height=4, width=4, max_turns=30, description="Walk a seeded 4x4 grid maze from the start to the exit.")
register("agentgym/Maze-5x5-v0", "agentgym.envs.toy_maze:MazeEnv", height=5, width=5, max_turns=50, description="Walk a seeded 5x5 grid maze from the start to the exit.")
register("agentgym/Maze-6x6-v0", "agentgym.envs.toy_maze:MazeEnv", height=6, width=6, max_turns=70, description="Walk a seeded 6x6 grid maze from the start to the exit.")
# fmt: on
