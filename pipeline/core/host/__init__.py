"""Pure mappings of what a host did by itself (an OOM kill, a package, a Docker or Kubernetes
event) to change events of the agent's entity; the sources in ``pipeline.agent.sources`` feed them."""
