"""Unowned views of arrays inside compiled code: no reference counting in the hot loop.

Every numba array carries a pointer to its memory's owner record (the "meminfo"), and
compiled code counts references through it: each view cut, each array handed to a function
that is not inlined, each array read out of a tuple is an atomic increment and decrement. In
the Radau integrator that is thousands of atomic operations a subject: measured with ``perf``
on the 2-core machine, NRT_incref / NRT_decref took half the time of a cart_bcell_sle solve
with sensitivities. An array whose meminfo is NULL is not counted (NRT_incref returns at
once), so the integrator works on :func:`unowned` views of arrays that a caller owns for the
whole solve.

The caller must keep the owning arrays alive for as long as the views are used: pass them
to :func:`keep_alive` after the last use (numba releases a variable after its last use in
the function, so without it the memory could be freed under the views).
"""
from __future__ import annotations

from numba import njit, types
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


def _lower(context, builder, ty, val):
    if isinstance(ty, types.Array):
        src = make_array(ty)(context, builder, value=val)
        out = make_array(ty)(context, builder)
        populate_array(out, data=src.data, shape=src.shape, strides=src.strides,
                       itemsize=src.itemsize, meminfo=None)
        return out._getvalue()
    if isinstance(ty, types.BaseTuple):
        items = [_lower(context, builder, t, builder.extract_value(val, i))
                 for i, t in enumerate(ty.types)]
        return context.make_tuple(builder, ty, items)
    # anything else is returned as a new reference, as numba expects of a call's result
    context.nrt.incref(builder, ty, val)
    return val


def _supported(ty):
    if isinstance(ty, types.Array):
        return True
    if isinstance(ty, types.BaseTuple):
        return all(_supported(t) for t in ty.types)
    return not isinstance(ty, (types.List, types.ListType, types.DictType))


@intrinsic
def unowned(typingctx, x):
    """``x`` (an array, or a tuple of arrays and scalars, nested) with every array's meminfo
    NULL: the same memory, not reference counted. The caller keeps ``x`` alive."""
    if not _supported(x):
        return None
    sig = x(x)

    def codegen(context, builder, signature, args):
        return _lower(context, builder, signature.args[0], args[0])

    return sig, codegen


@njit(cache=True)
def keep_alive(*owners):
    """A use of ``owners`` after the last use of their :func:`unowned` views (does nothing)."""
    return None


__all__ = ["unowned", "keep_alive"]
