/*
 * powercut: an LD_PRELOAD layer that remembers, for every file in one
 * directory, what it held when it was last synced, so that a test can
 * put the directory back to exactly that after a kill -9: what a power
 * cut leaves on a disk that honours fsync and nothing more (the model
 * LazyFS uses: unsynced writes are lost).
 *
 * POWERCUT_WATCH=<dir>   the directory whose files are watched
 * POWERCUT_SHADOW=<dir>  where the synced copies are kept, one per name
 * POWERCUT_EIO=<path>    while this file exists, every write and sync of a
 *                        watched file fails with EIO (a dying disk)
 *
 * After a successful fsync/fdatasync of a regular file directly in
 * WATCH, its whole content is copied to SHADOW (written aside, then
 * renamed, so a kill mid-copy leaves the previous copy). The copy is
 * made before the call returns, so nothing the program does after a sync
 * can happen before its copy exists. unlink drops the copy; rename moves
 * it. The test restores WATCH from SHADOW (tests/binary/powercut.rs).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The name of `path` inside WATCH, or NULL if it is not directly there. */
static const char *watched(const char *path) {
    const char *watch = getenv("POWERCUT_WATCH");
    if (!watch || !getenv("POWERCUT_SHADOW")) return NULL;
    size_t n = strlen(watch);
    if (strncmp(path, watch, n) != 0 || path[n] != '/') return NULL;
    const char *name = path + n + 1;
    if (*name == '\0' || strchr(name, '/')) return NULL;
    return name;
}

/* The fd is a watched file and the disk is "failing". */
static int failing(int fd) {
    const char *flag = getenv("POWERCUT_EIO");
    if (!flag || access(flag, F_OK) != 0) return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = '\0';
    return watched(path) != NULL;
}

static void shadow_path(char *out, size_t len, const char *name, const char *prefix) {
    snprintf(out, len, "%s/%s%s", getenv("POWERCUT_SHADOW"), prefix, name);
}

static void snapshot(int fd) {
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = '\0';
    const char *name = watched(path);
    struct stat st;
    if (!name || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    char tmp[PATH_MAX], dst[PATH_MAX];
    shadow_path(tmp, sizeof tmp, name, ".copy.");
    shadow_path(dst, sizeof dst, name, "");
    int in = open(path, O_RDONLY | O_CLOEXEC);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (in >= 0 && out >= 0) {
        static char buf[1 << 16];
        ssize_t r;
        int ok = 1;
        while ((r = read(in, buf, sizeof buf)) > 0) {
            if (write(out, buf, (size_t)r) != r) { ok = 0; break; }
        }
        if (ok && r == 0) rename(tmp, dst);
    }
    if (in >= 0) close(in);
    if (out >= 0) close(out);
}

#define SYNC_WRAPPER(fn)                                          \
    int fn(int fd) {                                              \
        static int (*real)(int);                                  \
        if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, #fn);    \
        if (failing(fd)) { errno = EIO; return -1; }              \
        int rc = real(fd);                                        \
        if (rc == 0) {                                            \
            pthread_mutex_lock(&lock);                            \
            snapshot(fd);                                         \
            pthread_mutex_unlock(&lock);                          \
        }                                                         \
        return rc;                                                \
    }

SYNC_WRAPPER(fsync)
SYNC_WRAPPER(fdatasync)

ssize_t write(int fd, const void *buf, size_t len) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (failing(fd)) { errno = EIO; return -1; }
    return real(fd, buf, len);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    if (failing(fd)) { errno = EIO; return -1; }
    return real(fd, buf, len, off);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off) {
    return pwrite64(fd, buf, len, off);
}

int unlink(const char *path) {
    static int (*real)(const char *);
    if (!real) real = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    int rc = real(path);
    const char *name = rc == 0 ? watched(path) : NULL;
    if (name) {
        char dst[PATH_MAX];
        pthread_mutex_lock(&lock);
        shadow_path(dst, sizeof dst, name, "");
        real(dst);
        pthread_mutex_unlock(&lock);
    }
    return rc;
}

int rename(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    int rc = real(from, to);
    const char *a = rc == 0 ? watched(from) : NULL;
    const char *b = rc == 0 ? watched(to) : NULL;
    if (a && b) {
        char src[PATH_MAX], dst[PATH_MAX];
        pthread_mutex_lock(&lock);
        shadow_path(src, sizeof src, a, "");
        shadow_path(dst, sizeof dst, b, "");
        real(src, dst);
        pthread_mutex_unlock(&lock);
    }
    return rc;
}
