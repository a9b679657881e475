"""FLOPs of one callable (a training step or a forward).

On torch >= 2.1 (the GPU machine) torch.utils.flop_counter.FlopCounterMode counts them: matrix
products, convolutions and scaled_dot_product_attention, forward and backward (the usual MFU
convention; elementwise work is not counted). On older torch, torch's profiler (with_flops=True):

torch 1.13's profiler counts matrix products and convolutions (aten::mm, addmm, bmm, matmul's
pieces, conv2d) and the elementwise add/mul, forward and backward alike (the backward's products
are aten::mm / bmm calls too). Only the top-level events are summed, so that a matmul and the bmm
it dispatches to are not counted twice."""
import torch


def count_flops(fn):
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        FlopCounterMode = None
    if FlopCounterMode is not None:
        with FlopCounterMode(display=False) as fc:
            fn()
        by_op = {str(k): v for k, v in fc.get_flop_counts().get("Global", {}).items()}
        return fc.get_total_flops(), by_op
    with torch.autograd.profiler.profile(with_flops=True) as prof:
        fn()
    total, by_op = 0, {}
    for evt in prof.function_events:
        f = getattr(evt, "flops", 0) or 0
        if f <= 0:
            continue
        # skip events nested inside another flop-counted event (e.g. bmm under matmul)
        parent, nested = evt.cpu_parent, False
        while parent is not None:
            if (getattr(parent, "flops", 0) or 0) > 0:
                nested = True
                break
            parent = parent.cpu_parent
        if nested:
            continue
        total += f
        by_op[evt.name] = by_op.get(evt.name, 0) + f
    return total, by_op
