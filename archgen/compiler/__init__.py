"""The compiler's passes: ``resolve`` (a ``Spec`` to the IR, every shape and channel count worked
out) and ``fuse`` (the inference form: batch norms folded into the convs before them)."""
