"""Load a trivial BPF socket filter named replay_test (bpf() syscall via ctypes), hold it
ARGV[1] seconds (default 0.5), close it: the kernel emits KSYMBOL register/unregister
records, which `perf record` stores (sample perf-bpf)."""
import ctypes, os, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
SYS_bpf = 321  # x86_64
insns = struct.pack("<BBhi", 0xb7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)
ibuf = ctypes.create_string_buffer(insns)
lic = ctypes.create_string_buffer(b"GPL")
attr = bytearray(128)
struct.pack_into("<IIQQ", attr, 0, 1, 2, ctypes.addressof(ibuf), ctypes.addressof(lic))
attr[48:48 + 11] = b"replay_test"
abuf = ctypes.create_string_buffer(bytes(attr), 128)
fd = libc.syscall(SYS_bpf, 5, abuf, 128)
if fd < 0:
    sys.exit(f"BPF_PROG_LOAD failed: {os.strerror(ctypes.get_errno())}")
print("loaded fd", fd, flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0.5)
os.close(fd)
print("closed", flush=True)
