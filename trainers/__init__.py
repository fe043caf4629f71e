"""Trainers, installed as agentgym.trainers: losses, tensorizing, the training loop."""
