"""Kernel facts: every rule about the Linux page allocator that the engine, the SQL layer
and the report apply, one module per subject, each rule citing the kernel source (file,
function, and the commit or release that introduced it), the way drgn's helpers do.

Where a kernel release changed a rule, both versions live here, picked by the trace's
kernel release (`release.KernelRelease`). Nothing here imports the rest of `replay`
(only `ingest`, for its errors).
"""
