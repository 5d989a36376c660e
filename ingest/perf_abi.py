"""perf.data constants: record types, sample_type and read_format bits, callchain markers.

From include/uapi/linux/perf_event.h (kernel records) and tools/perf/util/event.h
(perf's own "user" records, numbered from 64); docs/formats.md §5.
"""

from __future__ import annotations

# Kernel record types (enum perf_event_type)
RECORD_MMAP = 1
RECORD_LOST = 2
RECORD_COMM = 3
RECORD_FORK = 7
RECORD_SAMPLE = 9
RECORD_MMAP2 = 10
RECORD_LOST_SAMPLES = 13
#: a kernel symbol appears or goes (BPF program, ftrace/kprobe trampoline; Linux 5.1)
RECORD_KSYMBOL = 17
#: PERF_RECORD_KSYMBOL flags: the symbol is going away
KSYMBOL_UNREGISTER = 1

# perf's user record types (enum perf_user_event_type)
RECORD_HEADER_ATTR = 64
RECORD_HEADER_TRACING_DATA = 66
RECORD_FINISHED_ROUND = 68
RECORD_AUXTRACE = 71
RECORD_HEADER_FEATURE = 80
RECORD_COMPRESSED = 81
RECORD_COMPRESSED2 = 83

# perf_event_attr.type
TYPE_TRACEPOINT = 2

# sample_type bits, in the order their fields appear in a SAMPLE record (IDENTIFIER first)
SAMPLE_IP = 1 << 0
SAMPLE_TID = 1 << 1
SAMPLE_TIME = 1 << 2
SAMPLE_ADDR = 1 << 3
SAMPLE_READ = 1 << 4
SAMPLE_CALLCHAIN = 1 << 5
SAMPLE_ID = 1 << 6
SAMPLE_CPU = 1 << 7
SAMPLE_PERIOD = 1 << 8
SAMPLE_STREAM_ID = 1 << 9
SAMPLE_RAW = 1 << 10
SAMPLE_IDENTIFIER = 1 << 16

# read_format bits
FORMAT_TOTAL_TIME_ENABLED = 1 << 0
FORMAT_TOTAL_TIME_RUNNING = 1 << 1
FORMAT_ID = 1 << 2
FORMAT_GROUP = 1 << 3
FORMAT_LOST = 1 << 4

#: perf_event_attr flag bits (bitfield after read_format): sample ids on every record,
#: and sample times from attr.clockid (perf record -k)
ATTR_FLAG_SAMPLE_ID_ALL = 18
ATTR_FLAG_USE_CLOCKID = 25

#: addresses are u64: a range (a KSYMBOL's addr + len) ends at most here
ADDRESS_END = 1 << 64
#: callchain entries at or above this value are context markers, not addresses
CONTEXT_MAX = ADDRESS_END - 4095

#: enum perf_callchain_context, as the u64 values found in callchains
CALLCHAIN_CONTEXTS = {
    (1 << 64) - 32: "hv",
    (1 << 64) - 128: "kernel",
    (1 << 64) - 512: "user",
    (1 << 64) - 2048: "guest",
    (1 << 64) - 2176: "guest_kernel",
    (1 << 64) - 2560: "guest_user",
}

#: feature bits of the file header bitmap (tools/perf/util/header.h)
FEAT_TRACING_DATA = 1
FEAT_HOSTNAME = 3
FEAT_OSRELEASE = 4
FEAT_VERSION = 5
FEAT_ARCH = 6
FEAT_NRCPUS = 7
FEAT_CMDLINE = 11
FEAT_DIR_FORMAT = 24
