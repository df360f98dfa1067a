/* New TCP connections per second, for Benchmarks/run.sh.
 *
 *   connrate serve PORT                 accept and close connections on PORT until killed
 *                                       (prints "ready" once listening)
 *   connrate connect HOST PORT SECONDS  open connections to HOST:PORT one after another for
 *                                       SECONDS (connect, then close with SO_LINGER 0, so
 *                                       neither side keeps TIME_WAIT and ports are not used
 *                                       up); prints "CONNECTIONS SECONDS FAILURES"
 *
 * Each connection is a full handshake through whatever lies between the two namespaces.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int serve(int port) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 4096) != 0) {
        perror("connrate serve");
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int connection = accept(listener, NULL, NULL);
        if (connection >= 0) close(connection);
    }
}

static int connect_loop(const char *host, int port, double seconds) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
        fprintf(stderr, "connrate: bad address %s\n", host);
        return 2;
    }
    struct linger abort_on_close = {.l_onoff = 1, .l_linger = 0};
    struct timeval timeout = {.tv_sec = 1, .tv_usec = 0};
    long connections = 0, failures = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) {
            perror("socket");
            return 2;
        }
        setsockopt(s, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        if (connect(s, (struct sockaddr *)&address, sizeof address) == 0)
            connections++;
        else if (++failures > 1000 && connections == 0) {
            close(s);
            fprintf(stderr, "connrate: %s:%d does not answer (%s)\n", host, port, strerror(errno));
            return 1;
        }
        close(s);
        t = now();
    }
    printf("%ld %.3f %ld\n", connections, t - start, failures);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "connect") == 0) return connect_loop(argv[2], atoi(argv[3]), atof(argv[4]));
    fprintf(stderr, "usage: connrate serve PORT | connrate connect HOST PORT SECONDS\n");
    return 2;
}
