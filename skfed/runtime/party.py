"""What the estimators share when a runtime runs only one party.

A runtime with a ``party`` attribute that is not None (such as
:class:`~skfed.runtime.grpc.GrpcRuntime`) runs one party's role in this
process. The estimators then take only that party's data, build only its
role and keep only its part of the model. Before the protocol proper, the
parties exchange a small *set-up* message with the coordinating party
(server or arbiter) so that disagreements on public values — the
hyper-parameters both sides typed in, the number of features or rows — fail
at once with a :class:`ProtocolMismatch` that names them, rather than as a
garbled protocol later.
"""

__all__ = ["ProtocolMismatch", "party_of", "public_params", "check_agreement"]


class ProtocolMismatch(ValueError):
    """Parties disagree on public set-up values (hyper-parameters, sizes).

    Its message names only public values, so unlike other errors a network
    runtime passes it to the peers in full when it aborts the run.
    """


def party_of(runtime):
    """The party a runtime runs alone, or None when it runs every role."""
    return None if runtime is None else getattr(runtime, "party", None)


def public_params(params):
    """A wire-safe, comparable digest of public hyper-parameters.

    Values become their ``repr`` (class weights keyed by labels, tuples and
    None all compare exactly and travel as strings).
    """
    return {str(k): repr(v) for k, v in sorted(params.items())}


def check_agreement(mine, theirs, *, me, them):
    """Raise :class:`ProtocolMismatch` listing the values two parties disagree on."""
    if not isinstance(theirs, dict):
        raise ProtocolMismatch(f"party {them!r} sent a malformed set-up message")
    keys = sorted(set(mine) | set(theirs))
    diff = [f"{k}: {them!r} has {theirs.get(k, '<missing>')}, {me!r} has "
            f"{mine.get(k, '<missing>')}" for k in keys if mine.get(k) != theirs.get(k)]
    if diff:
        raise ProtocolMismatch(
            f"parties {them!r} and {me!r} were configured differently; every party must "
            "use the same public settings: " + "; ".join(diff))
