"""Pure parsing of what a host records by itself: the kernel log, package databases."""
