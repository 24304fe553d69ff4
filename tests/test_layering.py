"""The layers of skfed, enforced: an import may only point down.

``crypto/`` and ``topology.py`` -> ``runtime/`` (transport) -> the families
(``horizontal/``, ``vertical/``, ``transfer/``; below them ``trees/``, the
boosting arithmetic two families share) -> the faces (``skfed``'s
``__init__``, ``compare``, ``persistence``, ``__main__``, ``deploy/``). Families never import
each other. Every import counts, also the ones inside functions.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "skfed"
FAMILIES = ("horizontal", "vertical", "transfer")
FACES = ("deploy", "compare", "__main__", "datasets", "persistence", "preprocessing")


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path):
    """Absolute names of every skfed module or package ``path`` imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "skfed")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "skfed":
                continue
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)
    return out


def _part(module):
    """The top-level part of skfed a module belongs to (``vertical``, ``crypto``...)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = sorted(p for p in ROOT.rglob("*.py"))
IMPORTS = {_module_name(p): _imports(p) for p in MODULES}


def _offenders(where, forbidden):
    return sorted(f"{m} imports {t}" for m, targets in IMPORTS.items() if where(_part(m))
                  for t in targets if _part(t) in forbidden and _part(t) != _part(m))


def test_the_import_graph_was_read():
    # Guards the test itself: it must see the imports it checks.
    assert "skfed.runtime.wire" in IMPORTS["skfed.runtime.local"]
    assert any(_part(t) == "vertical" for t in IMPORTS["skfed.deploy.config"])


@pytest.mark.parametrize("layer", ["crypto", "topology", "runtime", "trees"])
def test_lower_layers_import_no_family_and_no_face(layer):
    assert _offenders(lambda p: p == layer, FAMILIES + FACES + ("__init__",)) == []


def test_crypto_knows_nothing_of_the_transport():
    assert _offenders(lambda p: p == "crypto", ("runtime",)) == []


def test_tree_arithmetic_knows_nothing_of_transport_or_crypto():
    # The shared boosting arithmetic sits below both tree families; it must
    # stay plain numpy so either family can build its own protocol on it.
    assert _offenders(lambda p: p == "trees", ("runtime", "crypto")) == []


def test_families_import_no_other_family_and_no_face():
    for family in FAMILIES:
        others = tuple(f for f in FAMILIES if f != family) + FACES + ("__init__",)
        assert _offenders(lambda p, f=family: p == f, others) == [], family
