"""AgentForge: a Git-native package manager and deployment orchestrator for AI agent components."""

__version__ = "0.1.0"
