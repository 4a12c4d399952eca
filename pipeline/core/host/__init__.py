"""What a host or its cluster did by itself, as change events: pure mappings, no I/O."""
