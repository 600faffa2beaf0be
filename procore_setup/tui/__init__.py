"""The Textual front-end of `flow.py`: the setup wizard (`procore-setup` with no command)."""
