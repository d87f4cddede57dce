"""Programs the stack runs inside its own Jobs (shipped to the cluster as ConfigMaps, not imported by components)."""
