/*
 * The floor of recording cost (issue 17): what a program spends to read the
 * same RTSP/TCP bytes a recorder reads and write them to a file, with no
 * parsing at all. For each camera: DESCRIBE, SETUP (RTP interleaved on the
 * TCP connection), PLAY, each answer read whole; then one epoll loop for
 * every camera: read into a buffer, write it to that camera's file. No
 * fsync here; --fsync SECONDS adds one fdatasync per file per interval, the
 * discipline the recorder keeps, for the "with fsync" rows.
 *
 *   cc -O2 -o floor bench/floor.c
 *   ./floor HOST PORT CAMERAS OUTDIR [--fsync SECONDS]
 *
 * Cameras are rtsp://HOST:PORT/cam0 .. camN-1 (the camera simulator's
 * paths), and their first track's control is "trackID=0" under the
 * Content-Base, as camsim answers. A benchmark tool, not part of Candor: it
 * trusts its peer (the simulator) and stops on any error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF (64 * 1024)

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Sends a request and reads the whole answer (headers and any body) into
 * `out`; returns its length. */
static size_t ask(int fd, const char *req, char *out, size_t cap) {
    size_t len = strlen(req), n = 0;
    if (write(fd, req, len) != (ssize_t)len) die("write request");
    for (;;) {
        ssize_t r = read(fd, out + n, cap - 1 - n);
        if (r <= 0) die("read answer");
        n += (size_t)r;
        out[n] = 0;
        char *end = strstr(out, "\r\n\r\n");
        if (!end) continue;
        size_t body = 0;
        char *cl = strcasestr(out, "Content-Length:");
        if (cl && cl < end) body = strtoul(cl + 15, NULL, 10);
        if (n >= (size_t)(end + 4 - out) + body) return n;
    }
}

static int start(const char *host, int port, int i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) die("connect");
    char req[1024], ans[16384], session[256] = "";
    snprintf(req, sizeof req,
             "DESCRIBE rtsp://%s:%d/cam%d RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n",
             host, port, i);
    ask(fd, req, ans, sizeof ans);
    snprintf(req, sizeof req,
             "SETUP rtsp://%s:%d/cam%d/trackID=0 RTSP/1.0\r\nCSeq: 2\r\n"
             "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
             host, port, i);
    ask(fd, req, ans, sizeof ans);
    char *s = strcasestr(ans, "Session:");
    if (!s) die("no session in the SETUP answer");
    sscanf(s + 8, " %255[^;\r\n]", session);
    snprintf(req, sizeof req,
             "PLAY rtsp://%s:%d/cam%d RTSP/1.0\r\nCSeq: 3\r\nSession: %s\r\nRange: npt=0.000-\r\n\r\n",
             host, port, i, session);
    /* PLAY's answer may be followed at once by media: whatever came with it
     * past the headers is the first bytes of the file. */
    size_t len = strlen(req);
    if (write(fd, req, len) != (ssize_t)len) die("write PLAY");
    return fd;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: floor HOST PORT CAMERAS OUTDIR [--fsync SECONDS]\n");
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]), n = atoi(argv[3]);
    double every = (argc >= 7 && strcmp(argv[5], "--fsync") == 0) ? atof(argv[6]) : 0;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int ep = epoll_create1(0);
    int *sock = calloc(n, sizeof *sock), *file = calloc(n, sizeof *file);
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/cam%d.bin", argv[4], i);
        file[i] = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (file[i] < 0) die("open");
        sock[i] = start(host, port, i);
        fcntl(sock[i], F_SETFL, fcntl(sock[i], F_GETFL) | O_NONBLOCK);
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, sock[i], &e) != 0) die("epoll_ctl");
    }
    static char buf[BUF];
    struct epoll_event ev[256];
    struct timespec last;
    clock_gettime(CLOCK_MONOTONIC, &last);
    while (!stop) {
        int k = epoll_wait(ep, ev, 256, 200);
        if (k < 0 && errno != EINTR) die("epoll_wait");
        for (int j = 0; j < k; j++) {
            int i = (int)ev[j].data.u32;
            for (;;) {
                ssize_t r = read(sock[i], buf, BUF);
                if (r > 0) {
                    if (write(file[i], buf, (size_t)r) != r) die("write file");
                    if (r < BUF) break;
                    continue;
                }
                if (r == 0) die("a camera closed");
                if (errno == EAGAIN || errno == EINTR) break;
                die("read");
            }
        }
        if (every > 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec - last.tv_sec) + (now.tv_nsec - last.tv_nsec) / 1e9 >= every) {
                for (int i = 0; i < n; i++) fdatasync(file[i]);
                last = now;
            }
        }
    }
    return 0;
}
