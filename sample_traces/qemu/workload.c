/* Page-allocator workload for the qemu guests (static C twin of ../workload.py).
 *
 * The guests boot a bare initramfs (busybox + this program, no python), so the
 * phases of sample_traces/workload.py are redone here with plain syscalls.  Each
 * pass runs the selected phases in this order:
 *
 *   thp      mmap --thp-mib MiB (+2 MiB slack) private anonymous, MADV_HUGEPAGE,
 *            touch every 4 KiB page, MADV_DONTNEED one 4 KiB page of every other
 *            2 MiB extent (splits that huge page), munmap: order-9 GFP_TRANSHUGE
 *            allocations/frees where THP is built in (skipped with a log line when
 *            /sys/kernel/mm/transparent_hugepage does not exist).
 *   hugetlb  /proc/sys/vm/nr_hugepages += --hugetlb, then back; each write is timed
 *            (CLOCK_MONOTONIC) and the /proc/vmstat counters that compaction and
 *            migration move (compact_*, pgmigrate_*) are logged as deltas: the cost of
 *            growing the pool through the buddy allocator, or through
 *            alloc_contig_pages when 2 MiB pages are "gigantic" (order > MAX_PAGE_ORDER).
 *   fork     --forks fork()+_exit children and --children fork()+exec(/bin/true).
 *   file     write --io-mib MiB to a file in --dir (tmpfs in the guest), fsync,
 *            POSIX_FADV_DONTNEED, read back, unlink.
 *   socket   --sock-mib MiB over loopback TCP to a forked reader, 64 KiB writes
 *            (skb page frags, order 3 when available).
 *   dentries create empty files in a new directory under --dir (dentries in the
 *            reclaimable dentry slab) until /proc/pagetypeinfo counts more Reclaimable
 *            pageblocks than before (a movable pageblock was stolen: the allocator
 *            reports mm_page_alloc_extfrag), at most --dentry-max files (default 40000)
 *            or until the file system runs out of inodes, then remove
 *            them.  workload.py stat()s missing names instead, but on tmpfs (the
 *            guest's only file system) a negative dentry is dropped at once:
 *            simple_lookup (fs/libfs.c) sets simple_dentry_operations, whose d_delete
 *            is always_delete_dentry.
 *
 * --fill-mib M, before the passes, writes an M MiB file in --dir and keeps it until
 * the end, so that movable (shmem) pages are spread over memory when the hugetlb pool
 * grows: alloc_contig_pages then has to migrate them.
 *
 * Every line of output starts with "workload:"; exit status 0 on success.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024L * 1024L)
#define PAGE 4096L
#define HPAGE (2 * MIB)
#define THP_ENABLED "/sys/kernel/mm/transparent_hugepage/enabled"
#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"
#define DENTRY_CHUNK (21 * 64)

struct args {
    long thp_mib, hugetlb, forks, children, io_mib, sock_mib, dentry_max, fill_mib, loops;
    const char *dir, *phases;
};

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("workload: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

static void die(const char *what)
{
    say("error: %s: %s", what, strerror(errno));
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long read_long(const char *path)
{
    char buf[64] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0 || read(fd, buf, sizeof buf - 1) < 0)
        die(path);
    close(fd);
    return strtol(buf, NULL, 10);
}

static void write_str(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, value, strlen(value)) < 0)
        die(path);
    close(fd);
}

/* The /proc/vmstat counters a hugetlb pool change moves, read into vals[]. */
static const char *const VMSTAT_KEYS[] = {
    "pgmigrate_success", "pgmigrate_fail", "compact_migrate_scanned", "compact_free_scanned",
    "compact_isolated", "compact_stall", "compact_fail", "compact_success",
    "htlb_buddy_alloc_success", "htlb_buddy_alloc_fail", "cma_alloc_success", "cma_alloc_fail",
};
#define NKEYS (sizeof VMSTAT_KEYS / sizeof VMSTAT_KEYS[0])

static void read_vmstat(long vals[NKEYS])
{
    char name[64];
    long v;
    FILE *f = fopen("/proc/vmstat", "r");
    if (!f)
        die("/proc/vmstat");
    memset(vals, 0, NKEYS * sizeof vals[0]);
    while (fscanf(f, "%63s %ld", name, &v) == 2)
        for (size_t i = 0; i < NKEYS; i++)
            if (!strcmp(name, VMSTAT_KEYS[i]))
                vals[i] = v;
    fclose(f);
}

static void phase_thp(const struct args *a)
{
    if (access(THP_ENABLED, F_OK)) {
        say("thp: skipped, %s does not exist (THP not built in)", THP_ENABLED);
        return;
    }
    size_t len = (a->thp_mib + 2) * MIB;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap thp");
    if (madvise(p, len, MADV_HUGEPAGE))
        die("madvise MADV_HUGEPAGE");
    for (size_t off = 0; off < len; off += PAGE)
        p[off] = 1;
    char *first = (char *)(((unsigned long)p + HPAGE - 1) & ~(HPAGE - 1));
    long split = 0;
    for (char *h = first; h + HPAGE <= p + len; h += 2 * HPAGE, split++)
        if (madvise(h, PAGE, MADV_DONTNEED))
            die("madvise MADV_DONTNEED");
    munmap(p, len);
    say("thp: %ld MiB touched, %ld huge pages split", a->thp_mib, split);
}

static void set_pool(long n, long before[NKEYS], long after[NKEYS], double *secs)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", n);
    read_vmstat(before);
    double t0 = now();
    write_str(NR_HUGEPAGES, buf);
    *secs = now() - t0;
    read_vmstat(after);
}

static void log_pool_change(const char *what, long from, long to, double secs,
                            const long before[NKEYS], const long after[NKEYS])
{
    long pages = labs(to - from);
    char deltas[1024] = "";
    for (size_t i = 0; i < NKEYS; i++) {
        size_t used = strlen(deltas);
        snprintf(deltas + used, sizeof deltas - used, " %s=%ld", VMSTAT_KEYS[i],
                 after[i] - before[i]);
    }
    say("hugetlb: %s nr_hugepages %ld -> %ld in %.6f s (%.6f s per page);%s", what, from, to,
        secs, pages ? secs / pages : 0.0, deltas);
}

static void phase_hugetlb(const struct args *a)
{
    long before[NKEYS], after[NKEYS];
    double secs;
    long orig = read_long(NR_HUGEPAGES);
    set_pool(orig + a->hugetlb, before, after, &secs);
    long got = read_long(NR_HUGEPAGES);
    log_pool_change("grow", orig, got, secs, before, after);
    set_pool(orig, before, after, &secs);
    log_pool_change("shrink", got, read_long(NR_HUGEPAGES), secs, before, after);
}

static void phase_fork(const struct args *a)
{
    for (long i = 0; i < a->forks + a->children; i++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            if (i >= a->forks)
                execl("/bin/true", "true", (char *)NULL);
            _exit(0);
        }
        waitpid(pid, NULL, 0);
    }
    say("fork: %ld forks, %ld exec children", a->forks, a->children);
}

static void fill_chunk(char *buf)
{
    for (long i = 0; i < MIB; i++)
        buf[i] = (char)i;
}

static void phase_file(const struct args *a)
{
    char path[256];
    static char buf[MIB];
    fill_chunk(buf);
    snprintf(path, sizeof path, "%s/replay-workload-%d", a->dir, getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        die(path);
    for (long i = 0; i < a->io_mib; i++)
        if (write(fd, buf, MIB) != MIB)
            die("write");
    fsync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    lseek(fd, 0, SEEK_SET);
    long total = 0, n;
    while ((n = read(fd, buf, MIB)) > 0)
        total += n;
    close(fd);
    unlink(path);
    say("file: wrote+read %ld bytes in %s", total, a->dir);
}

static void phase_socket(const struct args *a)
{
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof addr) || listen(srv, 1) ||
        getsockname(srv, (struct sockaddr *)&addr, &alen))
        die("socket server");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        static char buf[64 * 1024];
        int c = accept(srv, NULL, NULL);
        long n, total = 0;
        while ((n = read(c, buf, sizeof buf)) > 0)
            total += n;
        _exit(total == a->sock_mib * MIB ? 0 : 1);
    }
    close(srv);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof addr))
        die("connect");
    static char payload[64 * 1024];
    memset(payload, 0x5a, sizeof payload);
    for (long i = 0; i < a->sock_mib * 16; i++)
        for (size_t off = 0; off < sizeof payload;) {
            ssize_t n = write(c, payload + off, sizeof payload - off);
            if (n < 0)
                die("send");
            off += n;
        }
    close(c);
    int status;
    waitpid(pid, &status, 0);
    say("socket: sent %ld MiB, reader %s", a->sock_mib,
        WIFEXITED(status) && !WEXITSTATUS(status) ? "got all" : "short");
}

/* Number of Reclaimable pageblocks over all zones ("Number of blocks type" table). */
static long reclaimable_blocks(void)
{
    char line[512];
    long total = 0;
    int col = -1;
    FILE *f = fopen("/proc/pagetypeinfo", "r");
    if (!f)
        die("/proc/pagetypeinfo");
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Number of blocks type", 21)) {
            col = 0;
            for (char *t = strtok(line + 21, " \n"); t; t = strtok(NULL, " \n"), col++)
                if (!strcmp(t, "Reclaimable"))
                    break;
            continue;
        }
        char *zone = strstr(line, "zone");
        if (col < 0 || strncmp(line, "Node", 4) || !zone)
            continue;
        char *p = zone + 4;
        while (*p == ' ')
            p++;
        while (*p && *p != ' ')
            p++; /* skip the zone name */
        for (int i = 0; i <= col; i++) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p)
                break;
            if (i == col)
                total += v;
            p = end;
        }
    }
    fclose(f);
    return total;
}

static void phase_dentries(const struct args *a)
{
    char dir[256], path[300];
    long start = reclaimable_blocks(), n = 0;
    snprintf(dir, sizeof dir, "%s/replay-dentries-%d", a->dir, getpid());
    if (mkdir(dir, 0700))
        die(dir);
    while (n < a->dentry_max && reclaimable_blocks() <= start) {
        for (int i = 0; i < DENTRY_CHUNK; i++, n++) {
            snprintf(path, sizeof path, "%s/%ld", dir, n);
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
            if (fd < 0 && errno == ENOSPC)
                goto full; /* the file system's inode limit: stop here */
            if (fd < 0)
                die(path);
            close(fd);
        }
    }
full:
    long end = reclaimable_blocks();
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%ld", dir, i);
        unlink(path);
    }
    rmdir(dir);
    say("dentries: %ld files, reclaimable pageblocks %ld -> %ld", n, start, end);
}

static int fill_fd = -1;

static void fill(const struct args *a)
{
    char path[256];
    static char buf[MIB];
    fill_chunk(buf);
    snprintf(path, sizeof path, "%s/replay-fill", a->dir);
    fill_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fill_fd < 0)
        die(path);
    unlink(path); /* freed when the program exits */
    for (long i = 0; i < a->fill_mib; i++)
        if (write(fill_fd, buf, MIB) != MIB)
            die("write fill");
    say("fill: %ld MiB kept in %s", a->fill_mib, a->dir);
}

static int selected(const struct args *a, const char *phase)
{
    size_t n = strlen(phase);
    for (const char *p = a->phases; (p = strstr(p, phase)); p += n)
        if ((p == a->phases || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
            return 1;
    return 0;
}

static void usage(void)
{
    puts("usage: workload [--phases thp,hugetlb,fork,file,socket,dentries] [--loops N]\n"
         "  [--thp-mib M] [--hugetlb N] [--forks N] [--children N] [--io-mib M]\n"
         "  [--sock-mib M] [--dentry-max N] [--fill-mib M] [--dir D]");
    exit(2);
}

int main(int argc, char **argv)
{
    struct args a = {.thp_mib = 16, .hugetlb = 4, .forks = 4, .children = 1, .io_mib = 2,
                     .sock_mib = 2, .dentry_max = 40000, .fill_mib = 0, .loops = 1,
                     .dir = "/tmp", .phases = "thp,hugetlb,fork,file,socket,dentries"};
    static const char *const names[] = {"--thp-mib", "--hugetlb", "--forks", "--children",
                                        "--io-mib", "--sock-mib", "--dentry-max", "--fill-mib",
                                        "--loops"};
    long *slots[] = {&a.thp_mib, &a.hugetlb, &a.forks, &a.children, &a.io_mib,
                     &a.sock_mib, &a.dentry_max, &a.fill_mib, &a.loops};
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        const char *opt = argv[i], *val = argv[++i];
        if (!strcmp(opt, "--phases"))
            a.phases = val;
        else if (!strcmp(opt, "--dir"))
            a.dir = val;
        else {
            size_t k = 0;
            while (k < sizeof names / sizeof names[0] && strcmp(opt, names[k]))
                k++;
            if (k == sizeof names / sizeof names[0])
                usage();
            *slots[k] = strtol(val, NULL, 10);
        }
    }
    say("phases %s, loops %ld", a.phases, a.loops);
    if (a.fill_mib)
        fill(&a);
    double t0 = now();
    for (long pass = 0; pass < a.loops; pass++) {
        if (selected(&a, "thp")) phase_thp(&a);
        if (selected(&a, "hugetlb")) phase_hugetlb(&a);
        if (selected(&a, "fork")) phase_fork(&a);
        if (selected(&a, "file")) phase_file(&a);
        if (selected(&a, "socket")) phase_socket(&a);
        if (selected(&a, "dentries")) phase_dentries(&a);
    }
    say("done: %ld passes in %.3f s", a.loops, now() - t0);
    return 0;
}
