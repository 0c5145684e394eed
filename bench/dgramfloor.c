/*
 * dgramfloor: what the kernel takes to send one segment-sized datagram, the
 * floor under the cost of "every request sampled" in `make bench`.
 *
 *     dgramfloor port size batch count [rate]
 *
 * Sends count datagrams of size bytes (the daemon's header line, then
 * filler) to 127.0.0.1:port as the module's emitter does: from a connected,
 * non-blocking UDP socket, with sendmmsg(), batch datagrams a call.  Calls
 * are spaced so that about rate datagrams a second leave (default 100000,
 * what a busy worker with every request sampled sends), so that the
 * receiver keeps up and the caches are as cold between batches as a
 * worker's are.  A few batches first warm up and are not counted.
 *
 * Each call is timed twice: with the thread's CPU clock, which on a busy
 * machine does not count the time the scheduler gave to other processes
 * (on loopback the receiving side, the softirq that queues the datagram on
 * the sink's socket, runs inside the call and is charged to the caller as
 * it is to a worker: the kernel has no separate IRQ time accounting here),
 * and with CLOCK_MONOTONIC.  Prints one line:
 *
 *     datagrams=N failed=F cpu_us=C cpu_us_median=M wall_us_median=W
 *
 * C: CPU time of all the timed calls over the datagrams they sent; M, W:
 * the medians, over the calls, of a call's CPU and wall time divided by the
 * datagrams it sent.
 */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>


#define FLOOR_HEADER     "{\"format\":\"json\",\"version\":1}\n"
#define FLOOR_BATCH_MAX  1024
#define FLOOR_SIZE_MAX   65507
#define FLOOR_WARMUP     8


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


static double
now_us(clockid_t clock)
{
    struct timespec  ts;

    clock_gettime(clock, &ts);

    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}


static double
median(double *v, long n)
{
    qsort(v, n, sizeof(double), cmp_double);

    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}




int
main(int argc, char **argv)
{
    int                  fd, rc;
    long                 size, batch, count, rate, calls, ncalls, i, sent;
    long                 failed, warm;
    double               t0, t1, c0, c1, gap, next, *wall, *cpu, total;
    unsigned char       *buf;
    struct iovec         iov[FLOOR_BATCH_MAX];
    struct mmsghdr       msgs[FLOOR_BATCH_MAX];
    struct sockaddr_in   sin;
    struct timespec      pause;

    if (argc < 5) {
        fprintf(stderr, "usage: dgramfloor port size batch count [rate]\n");
        return 2;
    }

    size = atol(argv[2]);
    batch = atol(argv[3]);
    count = atol(argv[4]);
    rate = argc > 5 ? atol(argv[5]) : 100000;

    if (size < (long) sizeof(FLOOR_HEADER) || size > FLOOR_SIZE_MAX
        || batch < 1 || batch > FLOOR_BATCH_MAX || count < batch
        || rate < 1)
    {
        fprintf(stderr, "dgramfloor: invalid arguments\n");
        return 2;
    }

    buf = malloc(size);
    ncalls = count / batch;
    wall = malloc(ncalls * sizeof(double));
    cpu = malloc(ncalls * sizeof(double));

    if (buf == NULL || wall == NULL || cpu == NULL) {
        fprintf(stderr, "dgramfloor: out of memory\n");
        return 1;
    }

    /* a document's bytes: the header line, then printable filler */
    memset(buf, 'x', size);
    memcpy(buf, FLOOR_HEADER, sizeof(FLOOR_HEADER) - 1);

    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        perror("socket");
        return 1;
    }

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1) {
        perror("connect");
        return 1;
    }

    for (i = 0; i < batch; i++) {
        iov[i].iov_base = buf;
        iov[i].iov_len = size;
        memset(&msgs[i], 0, sizeof(struct mmsghdr));
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    gap = 1e6 * batch / rate;
    next = now_us(CLOCK_MONOTONIC);
    calls = 0;
    sent = 0;
    failed = 0;
    total = 0;

    for (warm = 0; warm < FLOOR_WARMUP + ncalls; warm++) {

        /* the emitter's pace, not a flood the receiver cannot drain */
        t0 = now_us(CLOCK_MONOTONIC);
        if (next > t0) {
            pause.tv_sec = (time_t) ((next - t0) / 1e6);
            pause.tv_nsec = (long) ((next - t0) * 1e3) % 1000000000L;
            nanosleep(&pause, NULL);
        }
        next += gap;

        c0 = now_us(CLOCK_THREAD_CPUTIME_ID);
        t0 = now_us(CLOCK_MONOTONIC);
        rc = sendmmsg(fd, msgs, batch, MSG_DONTWAIT | MSG_NOSIGNAL);
        t1 = now_us(CLOCK_MONOTONIC);
        c1 = now_us(CLOCK_THREAD_CPUTIME_ID);

        if (rc <= 0) {
            failed += batch;
            continue;
        }

        failed += batch - rc;

        if (warm < FLOOR_WARMUP) {
            continue;
        }

        sent += rc;
        total += c1 - c0;
        wall[calls] = (t1 - t0) / rc;
        cpu[calls] = (c1 - c0) / rc;
        calls++;
    }

    if (calls == 0) {
        printf("datagrams=0 failed=%ld cpu_us=0 cpu_us_median=0 "
               "wall_us_median=0\n", failed);
        return 1;
    }

    printf("datagrams=%ld failed=%ld cpu_us=%.3f cpu_us_median=%.3f "
           "wall_us_median=%.3f\n",
           sent, failed, total / sent, median(cpu, calls),
           median(wall, calls));

    close(fd);

    return 0;
}
