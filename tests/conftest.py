import os

import pytest
import sklearn

# Tests use small Paillier keys for speed; production code refuses them
# unless this explicit opt-in is set.
os.environ.setdefault("SKFED_ALLOW_INSECURE_KEYS", "1")


@pytest.fixture
def routing():
    """scikit-learn's metadata routing on for one test (``parties=`` through a
    Pipeline or a search), and off again whatever the test does."""
    with sklearn.config_context(enable_metadata_routing=True):
        yield
