"""The stack and its constructs, one per concern."""
