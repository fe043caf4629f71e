"""Environment families, installed as agentgym.envs; importing this registers them."""
