/*
 * faults.server._splice: a zero-copy TCP forwarder for the fault server's no-toxic path.
 *
 * Why: the Python fast path pays, per chunk, a callback and a bytes object on top of the
 * read and the write, and copies every byte through user space. Here one native thread (no
 * GIL) moves bytes socket -> pipe -> socket with splice(2): two syscalls per chunk, nothing
 * else, and the data never enters user space.
 *
 * A link forwards one direction, fd_in -> fd_out. Each link dups both fds (epoll keys a
 * registration on the fd number, and one socket is the input of one link and the output of
 * the other) and owns a pipe. The Python caller keeps owning its fds: the native side only
 * ever closes its own dups and pipes.
 *
 * Locking: the native thread holds `mu` while it handles a batch of events and releases it
 * around epoll_wait, so every call from Python (which takes `mu` without the GIL) sees a link
 * either untouched or between two complete steps. Events returned by epoll_wait carry the
 * link's slot and generation; an event for a link detached meanwhile is ignored.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PIPE_SIZE (1024 * 1024) /* the default pipe-max-size */
#define MAX_EVENTS 256
#define STEPS_PER_EVENT 8 /* read+write rounds per event before the next link's turn */
#define SHORT_READ 16384 /* a read below this probably emptied the socket */
#define WAKE_KEY UINT64_MAX
#define MAX_BUSY_POLL_US 10000

enum { WANT_IN = 0, WANT_OUT = 1, DONE = 2 };

typedef struct {
    long long id;
    uint32_t gen;
    int in_fd, out_fd;     /* our dups */
    int pipe_r, pipe_w;
    size_t in_pipe;        /* bytes spliced into the pipe, not yet written out */
    unsigned long long forwarded;
    int state;             /* WANT_IN, WANT_OUT or DONE */
    int eof;               /* fd_in reached EOF */
    int shut;              /* ... and fd_out was shut for writing after the last byte */
    int short_read;        /* the last read returned less than SHORT_READ bytes */
    int err;               /* errno that finished the link, 0 for EOF */
} Link;

typedef struct {
    long long id;
    int err;
} Finished;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    pthread_t thread;
    int thread_started;
    int stopping;
    int closed;
    int epfd, wake_fd, notify_fd;
    long long busy_poll_ns; /* set before the thread starts, never changed */
    uint32_t next_gen;
    Link **slots;
    size_t nslots;
    Finished *done;
    size_t ndone, capdone;
} Forwarder;

static uint64_t key(const Link *l, size_t slot, int out) {
    return ((uint64_t)l->gen << 32) | ((uint64_t)slot << 1) | (uint64_t)out;
}

/* ---- native side (called with mu held) ---------------------------------------------- */

static void finish(Forwarder *f, Link *l, size_t slot, int err);

static void watch(Forwarder *f, Link *l, size_t slot, int want) {
    /* Watch exactly one end: fd_in for reading or fd_out for writing. An idle registration
       would still report EPOLLERR/EPOLLHUP level-triggered and spin. */
    if (l->state == want) return;
    if (l->state == WANT_IN) epoll_ctl(f->epfd, EPOLL_CTL_DEL, l->in_fd, NULL);
    if (l->state == WANT_OUT) epoll_ctl(f->epfd, EPOLL_CTL_DEL, l->out_fd, NULL);
    l->state = want;
    if (want == DONE) return;
    struct epoll_event ev = {0};
    ev.events = want == WANT_IN ? EPOLLIN : EPOLLOUT;
    ev.data.u64 = key(l, slot, want == WANT_OUT);
    if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, want == WANT_IN ? l->in_fd : l->out_fd, &ev) < 0) {
        /* Unwatched, the link would stall silently: report it as failed instead. */
        int err = errno;
        l->state = DONE;
        finish(f, l, slot, err);
    }
}

static void finish(Forwarder *f, Link *l, size_t slot, int err) {
    watch(f, l, slot, DONE);
    l->err = err;
    if (f->ndone == f->capdone) {
        size_t cap = f->capdone ? f->capdone * 2 : 64;
        Finished *grown = realloc(f->done, cap * sizeof(Finished));
        if (grown == NULL) return; /* out of memory: the caller still sees state via detach */
        f->done = grown;
        f->capdone = cap;
    }
    f->done[f->ndone++] = (Finished){l->id, err};
    uint64_t one = 1;
    ssize_t unused = write(f->notify_fd, &one, sizeof one);
    (void)unused;
}

/* Move what is ready: empty the pipe into fd_out, then refill it from fd_in. */
static void pump(Forwarder *f, Link *l, size_t slot) {
    const unsigned flags = SPLICE_F_NONBLOCK | SPLICE_F_MOVE;
    for (int step = 0; step < STEPS_PER_EVENT; step++) {
        while (l->in_pipe > 0) {
            ssize_t n = splice(l->pipe_r, NULL, l->out_fd, NULL, l->in_pipe, flags);
            if (n > 0) {
                l->in_pipe -= (size_t)n;
                l->forwarded += (unsigned long long)n;
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && errno == EAGAIN) {
                watch(f, l, slot, WANT_OUT); /* flow control: stop reading, data waits */
                return;
            } else {
                finish(f, l, slot, n < 0 ? errno : EPIPE);
                return;
            }
        }
        if (l->eof) {
            /* Half-close passes through only after every byte before it. */
            shutdown(l->out_fd, SHUT_WR);
            l->shut = 1;
            finish(f, l, slot, 0);
            return;
        }
        if (step > 0 && l->short_read) {
            /* The last read drained the socket, most likely: skip the read that would only
               say EAGAIN (one syscall per message saved); level-triggered epoll re-reports. */
            watch(f, l, slot, WANT_IN);
            return;
        }
        ssize_t n = splice(l->in_fd, NULL, l->pipe_w, NULL, PIPE_SIZE, flags);
        if (n > 0) {
            l->in_pipe = (size_t)n;
            l->short_read = n < SHORT_READ;
        } else if (n == 0) {
            l->eof = 1;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN) {
            watch(f, l, slot, WANT_IN);
            return;
        } else {
            finish(f, l, slot, errno);
            return;
        }
    }
    /* Still busy: level-triggered epoll brings us back after the other links' turn. */
    watch(f, l, slot, l->in_pipe > 0 ? WANT_OUT : WANT_IN);
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *run(void *arg) {
    Forwarder *f = arg;
    struct epoll_event events[MAX_EVENTS];
    long long spin_until = 0; /* busy polling: poll without sleeping until then */
    for (;;) {
        /* Busy polling (opt-in, like HAProxy's busy-polling): right after traffic, poll
           instead of sleeping, so the next event (most often the answer to what was just
           forwarded) is handled without a wake-up, which is slow on virtual machines. */
        int spinning = spin_until != 0;
        int n = epoll_wait(f->epfd, events, MAX_EVENTS, spinning ? 0 : -1);
        if (n == 0 && spinning) {
            if (now_ns() >= spin_until) spin_until = 0;
            continue;
        }
        if (n > 0 && f->busy_poll_ns > 0) spin_until = now_ns() + f->busy_poll_ns;
        pthread_mutex_lock(&f->mu);
        if (f->stopping) {
            pthread_mutex_unlock(&f->mu);
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            uint64_t k = events[i].data.u64;
            if (k == WAKE_KEY) continue;
            size_t slot = (size_t)((k & 0xffffffffu) >> 1);
            if (slot >= f->nslots) continue;
            Link *l = f->slots[slot];
            /* Detached (or replaced) since epoll_wait returned, or already waiting on the
               other end: a stale event. */
            if (l == NULL || l->gen != (uint32_t)(k >> 32) || l->state != (int)(k & 1)) continue;
            pump(f, l, slot);
        }
        pthread_mutex_unlock(&f->mu);
    }
}

/* ---- helpers for the Python side ------------------------------------------------------- */

static void free_link(Forwarder *f, Link *l) {
    if (l->state == WANT_IN) epoll_ctl(f->epfd, EPOLL_CTL_DEL, l->in_fd, NULL);
    if (l->state == WANT_OUT) epoll_ctl(f->epfd, EPOLL_CTL_DEL, l->out_fd, NULL);
    close(l->in_fd);
    close(l->out_fd);
    close(l->pipe_r);
    close(l->pipe_w);
    free(l);
}

static Py_ssize_t find(Forwarder *f, long long id) {
    for (size_t i = 0; i < f->nslots; i++) {
        if (f->slots[i] != NULL && f->slots[i]->id == id) return (Py_ssize_t)i;
    }
    return -1;
}

static int check_open(Forwarder *f) {
    if (f->closed) {
        PyErr_SetString(PyExc_ValueError, "forwarder is closed");
        return -1;
    }
    return 0;
}

/* Take the lock without the GIL: the native thread may hold it for a batch of events. */
#define LOCK(f)                  \
    Py_BEGIN_ALLOW_THREADS       \
    pthread_mutex_lock(&(f)->mu);
#define UNLOCK(f)                  \
    pthread_mutex_unlock(&(f)->mu); \
    Py_END_ALLOW_THREADS

/* ---- Python API ---------------------------------------------------------------------- */

/* Idempotent; a call from another Python thread racing with this one sees `closed` under
   the lock and fails cleanly instead of touching freed links. */
static void close_native(Forwarder *f) {
    pthread_mutex_lock(&f->mu);
    int was_closed = f->closed;
    f->closed = 1;
    f->stopping = 1;
    pthread_mutex_unlock(&f->mu);
    if (was_closed) return;
    if (f->thread_started) {
        uint64_t one = 1;
        ssize_t unused = write(f->wake_fd, &one, sizeof one);
        (void)unused;
        pthread_join(f->thread, NULL);
        f->thread_started = 0;
    }
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nslots; i++) {
        if (f->slots[i] != NULL) free_link(f, f->slots[i]);
    }
    free(f->slots);
    f->slots = NULL;
    f->nslots = 0;
    free(f->done);
    f->done = NULL;
    f->ndone = f->capdone = 0;
    if (f->epfd >= 0) close(f->epfd);
    if (f->wake_fd >= 0) close(f->wake_fd);
    if (f->notify_fd >= 0) close(f->notify_fd);
    f->epfd = f->wake_fd = f->notify_fd = -1;
    pthread_mutex_unlock(&f->mu);
}

static int Forwarder_init(Forwarder *f, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"busy_poll_us", NULL};
    int busy_poll_us = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$i:Forwarder", kwlist, &busy_poll_us))
        return -1;
    if (busy_poll_us < 0 || busy_poll_us > MAX_BUSY_POLL_US) {
        PyErr_Format(PyExc_ValueError, "busy_poll_us must be between 0 and %d, got %d",
                     MAX_BUSY_POLL_US, busy_poll_us);
        return -1;
    }
    if (f->thread_started || f->epfd >= 0) {
        PyErr_SetString(PyExc_RuntimeError, "Forwarder is already initialised");
        return -1;
    }
    f->epfd = epoll_create1(EPOLL_CLOEXEC);
    f->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (f->epfd < 0 || f->wake_fd < 0 || f->notify_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        close_native(f);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_KEY};
    epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->wake_fd, &ev);
    f->busy_poll_ns = (long long)busy_poll_us * 1000;
    int rc = pthread_create(&f->thread, NULL, run, f);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        close_native(f);
        return -1;
    }
    f->thread_started = 1;
    return 0;
}

static PyObject *Forwarder_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
                               PyObject *Py_UNUSED(kwds)) {
    Forwarder *f = (Forwarder *)type->tp_alloc(type, 0);
    if (f == NULL) return NULL;
    pthread_mutex_init(&f->mu, NULL);
    f->epfd = f->wake_fd = f->notify_fd = -1;
    f->next_gen = 1;
    return (PyObject *)f;
}

static void Forwarder_dealloc(Forwarder *f) {
    Py_BEGIN_ALLOW_THREADS
    close_native(f);
    Py_END_ALLOW_THREADS
    pthread_mutex_destroy(&f->mu);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

static PyObject *Forwarder_add(Forwarder *f, PyObject *args) {
    long long id;
    int fd_in, fd_out;
    if (!PyArg_ParseTuple(args, "Lii:add", &id, &fd_in, &fd_out)) return NULL;
    if (check_open(f) < 0) return NULL;
    int fl_in = fcntl(fd_in, F_GETFL), fl_out = fcntl(fd_out, F_GETFL);
    if (fl_in < 0 || fl_out < 0) return PyErr_SetFromErrno(PyExc_OSError);
    if (!(fl_in & O_NONBLOCK) || !(fl_out & O_NONBLOCK)) {
        /* A blocking socket would stall the one thread that forwards every link. */
        PyErr_SetString(PyExc_ValueError, "add: both fds must be non-blocking sockets");
        return NULL;
    }
    Link *l = calloc(1, sizeof(Link));
    if (l == NULL) return PyErr_NoMemory();
    int pipefd[2] = {-1, -1};
    l->in_fd = fcntl(fd_in, F_DUPFD_CLOEXEC, 0);
    l->out_fd = fcntl(fd_out, F_DUPFD_CLOEXEC, 0);
    int perr = pipe2(pipefd, O_CLOEXEC | O_NONBLOCK);
    if (l->in_fd < 0 || l->out_fd < 0 || perr < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        if (l->in_fd >= 0) close(l->in_fd);
        if (l->out_fd >= 0) close(l->out_fd);
        if (perr == 0) {
            close(pipefd[0]);
            close(pipefd[1]);
        }
        free(l);
        return NULL;
    }
    l->pipe_r = pipefd[0];
    l->pipe_w = pipefd[1];
    /* Bigger pipes move more per splice (about half the CPU per byte of a 256 KiB pipe);
       an unprivileged user's pipe-user-pages limits may refuse: then take what we get. */
    if (fcntl(l->pipe_w, F_SETPIPE_SZ, PIPE_SIZE) < 0) fcntl(l->pipe_w, F_SETPIPE_SZ, PIPE_SIZE / 4);
    l->id = id;
    l->state = DONE; /* not watched yet */
    int dup_id = 0, closed = 0;
    Py_ssize_t slot = -1;
    LOCK(f);
    if (f->closed) {
        closed = 1;
    } else if (find(f, id) >= 0) {
        dup_id = 1;
    } else {
        for (size_t i = 0; i < f->nslots; i++) {
            if (f->slots[i] == NULL) {
                slot = (Py_ssize_t)i;
                break;
            }
        }
        if (slot < 0) {
            size_t n = f->nslots ? f->nslots * 2 : 64;
            Link **grown = realloc(f->slots, n * sizeof(Link *));
            if (grown != NULL) {
                memset(grown + f->nslots, 0, (n - f->nslots) * sizeof(Link *));
                slot = (Py_ssize_t)f->nslots;
                f->slots = grown;
                f->nslots = n;
            }
        }
        if (slot >= 0) {
            l->gen = f->next_gen++;
            if (f->next_gen == 0) f->next_gen = 1;
            f->slots[slot] = l;
            watch(f, l, (size_t)slot, WANT_IN);
        }
    }
    UNLOCK(f);
    if (closed || dup_id || slot < 0) {
        l->state = DONE;
        free_link(f, l);
        if (closed) {
            check_open(f); /* sets the ValueError */
            return NULL;
        }
        if (dup_id) {
            PyErr_Format(PyExc_ValueError, "link %lld is already forwarded", id);
            return NULL;
        }
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyObject *Forwarder_detach(Forwarder *f, PyObject *args) {
    long long id;
    if (!PyArg_ParseTuple(args, "L:detach", &id)) return NULL;
    if (check_open(f) < 0) return NULL;
    char *buf = NULL;
    size_t got = 0;
    int found = 0, eof = 0, shut = 0, err = 0, nomem = 0;
    unsigned long long forwarded = 0;
    LOCK(f);
    Py_ssize_t slot = find(f, id);
    if (slot >= 0) {
        Link *l = f->slots[slot];
        found = 1;
        f->slots[slot] = NULL;
        /* Stop watching first: from here on nothing moves on this link. */
        watch(f, l, (size_t)slot, DONE);
        if (l->in_pipe > 0) {
            buf = malloc(l->in_pipe);
            if (buf == NULL) nomem = 1;
            /* The pipe holds in_pipe bytes and nobody else reads it: bounded reads. */
            while (buf != NULL && got < l->in_pipe) {
                ssize_t n = read(l->pipe_r, buf + got, l->in_pipe - got);
                if (n > 0) {
                    got += (size_t)n;
                } else if (n < 0 && errno == EINTR) {
                    continue;
                } else {
                    break;
                }
            }
        }
        eof = l->eof;
        shut = l->shut;
        err = l->err;
        forwarded = l->forwarded;
        free_link(f, l);
    }
    UNLOCK(f);
    if (!found) {
        PyErr_Format(PyExc_KeyError, "link %lld is not forwarded", id);
        return NULL;
    }
    if (nomem) return PyErr_NoMemory();
    PyObject *data = PyBytes_FromStringAndSize(buf ? buf : "", (Py_ssize_t)got);
    free(buf);
    if (data == NULL) return NULL;
    return Py_BuildValue("(NOOiK)", data, eof ? Py_True : Py_False, shut ? Py_True : Py_False,
                         err, forwarded);
}

static PyObject *Forwarder_counters(Forwarder *f, PyObject *args) {
    long long id;
    if (!PyArg_ParseTuple(args, "L:counters", &id)) return NULL;
    if (check_open(f) < 0) return NULL;
    unsigned long long forwarded = 0;
    int found = 0;
    LOCK(f);
    Py_ssize_t slot = find(f, id);
    if (slot >= 0) {
        found = 1;
        forwarded = f->slots[slot]->forwarded;
    }
    UNLOCK(f);
    if (!found) {
        PyErr_Format(PyExc_KeyError, "link %lld is not forwarded", id);
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(forwarded);
}

static PyObject *Forwarder_finished(Forwarder *f, PyObject *Py_UNUSED(ignored)) {
    if (check_open(f) < 0) return NULL;
    Finished *items = NULL;
    size_t n = 0;
    LOCK(f);
    uint64_t count;
    ssize_t unused = read(f->notify_fd, &count, sizeof count); /* re-arm the notification */
    (void)unused;
    if (f->ndone > 0) {
        items = f->done;
        n = f->ndone;
        f->done = NULL;
        f->ndone = f->capdone = 0;
    }
    UNLOCK(f);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *item = Py_BuildValue("(Li)", items[i].id, items[i].err);
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    free(items);
    return list;
}

static PyObject *Forwarder_close(Forwarder *f, PyObject *Py_UNUSED(ignored)) {
    Py_BEGIN_ALLOW_THREADS
    close_native(f);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *Forwarder_get_notify_fd(Forwarder *f, void *Py_UNUSED(closure)) {
    if (check_open(f) < 0) return NULL;
    return PyLong_FromLong(f->notify_fd);
}

static PyObject *Forwarder_get_closed(Forwarder *f, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(f->closed);
}

static PyMethodDef Forwarder_methods[] = {
    {"add", (PyCFunction)Forwarder_add, METH_VARARGS,
     "add(link_id, fd_in, fd_out): forward fd_in -> fd_out natively from now on."},
    {"detach", (PyCFunction)Forwarder_detach, METH_VARARGS,
     "detach(link_id) -> (pending: bytes, eof: bool, shut: bool, errno: int, forwarded: int).\n"
     "Stop forwarding now; pending bytes were read from fd_in but not written to fd_out;\n"
     "eof: fd_in reached EOF; shut: fd_out was already shut for writing after the data."},
    {"counters", (PyCFunction)Forwarder_counters, METH_VARARGS,
     "counters(link_id) -> bytes written to fd_out so far."},
    {"finished", (PyCFunction)Forwarder_finished, METH_NOARGS,
     "finished() -> [(link_id, errno)]: links that ended (errno 0: EOF passed on)."},
    {"close", (PyCFunction)Forwarder_close, METH_NOARGS,
     "Stop the thread and drop every link (the caller's fds stay open)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Forwarder_getset[] = {
    {"notify_fd", (getter)Forwarder_get_notify_fd, NULL,
     "Readable when finished() has something; watch it with loop.add_reader.", NULL},
    {"closed", (getter)Forwarder_get_closed, NULL, "True after close().", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ForwarderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "faults.server._splice.Forwarder",
    .tp_doc = "One native thread forwarding links fd_in -> fd_out with splice(2).",
    .tp_basicsize = sizeof(Forwarder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Forwarder_new,
    .tp_init = (initproc)Forwarder_init,
    .tp_dealloc = (destructor)Forwarder_dealloc,
    .tp_methods = Forwarder_methods,
    .tp_getset = Forwarder_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_splice", "Zero-copy splice(2) forwarder (Linux).", -1, NULL,
};

PyMODINIT_FUNC PyInit__splice(void) {
    if (PyType_Ready(&ForwarderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&ForwarderType);
    if (PyModule_AddObject(m, "Forwarder", (PyObject *)&ForwarderType) < 0) {
        Py_DECREF(&ForwarderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
