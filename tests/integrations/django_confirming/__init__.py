"""A Django project whose chat view authorizes a conversation before confirming it."""
