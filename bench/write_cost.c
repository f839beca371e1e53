/* What a write costs a frame on this disk, by frames per call: CPU time of
 * appending `total` MiB to 64 files in turn (as a recorder's cameras do),
 * 33,000-byte frames (1080p at 4 Mbit/s and 15 fps) from distinct buffers
 * cycled through 66 MB (cache-cold, like frames a camera sent a moment
 * ago), `k` frames per writev(2), with an fdatasync of every file each
 * 64 MiB. The shapes alternate over the rounds so that a neighbour's noise
 * spreads over all of them.
 *
 *   cc -O2 -o /tmp/write_cost bench/write_cost.c
 *   /tmp/write_cost DIR [total_mib] [rounds]     (DIR on the recorder's disk)
 *
 * Prints the median over the rounds of the CPU microseconds a frame costs
 * at each k. BENCHMARKS.md, "Frames written in batches". */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#define FILES 64
#define FRAME 33000
#define BUFS 2000
#define MAXK 6

static double cpu_now(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [total_mib] [rounds]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    size_t total = (size_t)(argc > 2 ? atol(argv[2]) : 512) << 20;
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    if (rounds < 1 || rounds > 100 || total == 0) return 2;
    static char *bufs[BUFS];
    for (int i = 0; i < BUFS; i++) {
        if (!(bufs[i] = malloc(FRAME))) return 1;
        memset(bufs[i], i, FRAME);
    }
    double us[MAXK][100];
    char path[4096];
    size_t b = 0;
    for (int r = 0; r < rounds; r++) {
        for (int k = 1; k <= MAXK; k++) {
            int fds[FILES];
            for (int i = 0; i < FILES; i++) {
                snprintf(path, sizeof path, "%s/write_cost.%d", dir, i);
                fds[i] = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0600);
                if (fds[i] < 0) { perror(path); return 1; }
            }
            size_t done = 0, since_sync = 0, want = (size_t)FRAME * k;
            long frames = 0;
            double t0 = cpu_now();
            for (int i = 0; done < total; i = (i + 1) % FILES) {
                struct iovec iov[MAXK];
                for (int j = 0; j < k; j++) {
                    iov[j].iov_base = bufs[b];
                    iov[j].iov_len = FRAME;
                    b = (b + 1) % BUFS;
                }
                if (writev(fds[i], iov, k) != (ssize_t)want) { perror("writev"); return 1; }
                done += want;
                since_sync += want;
                frames += k;
                if (since_sync >= (64u << 20)) {
                    for (int j = 0; j < FILES; j++) fdatasync(fds[j]);
                    since_sync = 0;
                }
            }
            us[k - 1][r] = (cpu_now() - t0) * 1e6 / frames;
            for (int i = 0; i < FILES; i++) {
                close(fds[i]);
                snprintf(path, sizeof path, "%s/write_cost.%d", dir, i);
                unlink(path);
            }
        }
    }
    printf("| frames a writev | CPU us a frame (median of %d) | against one a call |\n|---|---|---|\n", rounds);
    double one = 0;
    for (int k = 1; k <= MAXK; k++) {
        qsort(us[k - 1], (size_t)rounds, sizeof(double), cmp);
        double m = us[k - 1][rounds / 2];
        if (k == 1) one = m;
        printf("| %d | %.1f | %.2fx |\n", k, m, m / one);
    }
    return 0;
}
