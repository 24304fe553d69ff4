import os

# Tests use small Paillier keys for speed; production code refuses them
# unless this explicit opt-in is set.
os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "1")
