import os

# Doctests in the package use small keys through the explicit insecure opt-in.
os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "1")
