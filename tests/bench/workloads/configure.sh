#!/usr/bin/env bash
# The `configure` workload of issue 18 (item 5) for the shared on-access
# benchmark: an autoconf `./configure` with several hundred checks, run in the
# harness's test mount, so every conftest program it compiles, links and runs is
# a fresh file on the watched filesystem (written, then opened or executed once).
#
#   sudo ./bench.sh --agents baseline,fan-allow,vigil --agent-file .../tests/bench/vigil.sh \
#        --workload-cmd "configure=$V/tests/bench/workloads/configure.sh"
#
# The configure script is generated once, with Debian's autoconf, from a
# configure.ac this script writes (cached in $CONFIGURE_CACHE, keyed by the
# checks and the autoconf version), outside the timed part. Each run copies it
# into a fresh directory of $MNT (untimed) and times `./configure` alone; the
# last output line is the JSON row the harness records:
#   {"workload":"configure","n":<checks>,"errors":<0|1>,"total_s":<seconds>}
# MNT is the harness's test mount; run by hand, pass a scratch directory
# instead: MNT=/some/tmpfs tests/bench/workloads/configure.sh
set -euo pipefail

: "${MNT:?MNT (the test mount) is not set: run under bench.sh or set MNT}"
CACHE=${CONFIGURE_CACHE:-/var/tmp/vigil-bench-configure}
command -v autoconf >/dev/null 2>&1 || { echo "configure.sh: autoconf not found (apt-get install autoconf)" >&2; exit 1; }

# The checks. Headers, functions and libraries a real project probes for; some
# do not exist here, which configure handles like any real project does.
HEADERS="aio.h alloca.h argz.h arpa/inet.h assert.h byteswap.h complex.h cpio.h
ctype.h dirent.h dlfcn.h endian.h err.h errno.h error.h execinfo.h fcntl.h features.h
fenv.h float.h fmtmsg.h fnmatch.h fstab.h ftw.h getopt.h glob.h grp.h iconv.h
ifaddrs.h inttypes.h langinfo.h libgen.h libintl.h limits.h link.h locale.h malloc.h
math.h mcheck.h memory.h mntent.h monetary.h mqueue.h netdb.h net/if.h netinet/in.h
netinet/tcp.h nl_types.h obstack.h paths.h poll.h pthread.h pty.h pwd.h regex.h
resolv.h sched.h search.h semaphore.h setjmp.h sgtty.h shadow.h signal.h spawn.h
stdalign.h stdarg.h stdbool.h stddef.h stdint.h stdio.h stdio_ext.h stdlib.h
stdnoreturn.h string.h strings.h stropts.h syscall.h sysexits.h syslog.h tar.h
termio.h termios.h tgmath.h threads.h time.h uchar.h ucontext.h ulimit.h unistd.h
utime.h utmp.h utmpx.h values.h wchar.h wctype.h wordexp.h xlocale.h
sys/auxv.h sys/epoll.h sys/eventfd.h sys/file.h sys/inotify.h sys/ioctl.h sys/ipc.h
sys/mman.h sys/mount.h sys/msg.h sys/param.h sys/personality.h sys/poll.h
sys/prctl.h sys/random.h sys/resource.h sys/select.h sys/sem.h sys/sendfile.h
sys/shm.h sys/signalfd.h sys/socket.h sys/stat.h sys/statfs.h sys/statvfs.h
sys/sysinfo.h sys/syslog.h sys/time.h sys/timerfd.h sys/times.h sys/types.h
sys/uio.h sys/un.h sys/utsname.h sys/vfs.h sys/wait.h sys/xattr.h
linux/fanotify.h linux/fs.h linux/limits.h linux/random.h linux/version.h
openssl/sha.h zlib.h bzlib.h lzma.h zstd.h curses.h ncurses.h readline/readline.h"
FUNCS="accept4 access alarm aligned_alloc asprintf atexit backtrace basename bcopy
bzero calloc canonicalize_file_name chdir chmod chown chroot clearenv clock_gettime
close closefrom copy_file_range dirfd dladdr dup dup2 dup3 endgrent endpwent
epoll_create1 eventfd euidaccess execve execvpe explicit_bzero faccessat fallocate
fchdir fchmod fchmodat fchown fchownat fcntl fdatasync fdopendir fexecve ffs
flock fmemopen fnmatch fork fpathconf fstatat fstatfs fstatvfs fsync ftello
ftruncate futimens futimes getauxval getcwd getdelim getdents64 getdtablesize
getegid getentropy geteuid getgid getgrgid_r getgrnam_r getgroups gethostname
getline getloadavg getopt_long getpagesize getpass getpgid getpid getppid
getpriority getprogname getpwnam_r getpwuid_r getrandom getresgid getresuid
getrlimit getrusage getsid gettid gettimeofday getuid getxattr glob gmtime_r
iconv inet_ntop inet_pton initgroups inotify_init1 isatty issetugid kill
lchown lgetxattr link linkat listxattr localtime_r lseek lstat madvise mallinfo
mallinfo2 malloc_trim mblen mbrtowc memchr memfd_create memmem memmove mempcpy
memrchr memset mkdirat mkdtemp mkfifo mkfifoat mknod mknodat mkostemp mkstemp
mkstemps mktime mlock mmap mprotect mremap munmap nanosleep newlocale nl_langinfo
open_memstream openat pathconf pipe pipe2 poll posix_fadvise posix_fallocate
posix_memalign posix_spawn posix_spawnp ppoll prctl pread preadv pselect
pthread_setname_np ptsname_r putenv pwrite pwritev qsort_r raise rawmemchr
read readlink readlinkat readv realloc reallocarray realpath recvmmsg regcomp
rename renameat renameat2 rmdir sched_getaffinity sched_yield secure_getenv
select sendfile sendmmsg setenv setgroups sethostname setitimer setlocale
setns setpgid setpriority setregid setresgid setresuid setreuid setrlimit setsid
setuid setxattr sigaction sigaltstack sigprocmask sigsetjmp sleep snprintf
splice stat statfs statvfs statx stpcpy stpncpy strcasecmp strcasestr strchrnul
strcoll strdup strerror strerror_r strftime strlcat strlcpy strndup strnlen
strptime strsep strsignal strtod strtoimax strtol strtold strtoll strtoul
strtoull strtoumax strverscmp symlink symlinkat sync sync_file_range syncfs
sysconf syslog tcgetattr tee timegm timerfd_create tmpfile truncate ttyname_r
tzset uname unlinkat unsetenv unshare uselocale utimensat utimes vasprintf
vfork vsnprintf wait3 wait4 waitid waitpid wcrtomb wcslen wcwidth writev"
LIBS="m:cos rt:clock_gettime dl:dlopen pthread:pthread_create crypt:crypt
util:openpty resolv:res_query z:inflate bz2:BZ2_bzDecompress lzma:lzma_code
zstd:ZSTD_decompress ssl:SSL_new crypto:EVP_DigestInit_ex ncurses:initscr
readline:readline acl:acl_get_file attr:getxattr cap:cap_get_proc uuid:uuid_generate
blkid:blkid_probe_all"
TYPES="char short int long 'long long' float double 'long double' 'void *' size_t
ssize_t off_t pid_t uid_t gid_t mode_t time_t clock_t dev_t ino_t nlink_t
blksize_t blkcnt_t socklen_t intmax_t uintmax_t intptr_t uintptr_t ptrdiff_t
wchar_t wint_t sig_atomic_t"
# Run-time checks (AC_RUN_IFELSE): each compiles, links and runs one program.
N_RUN=${CONFIGURE_RUN_CHECKS:-40}
# Every EVERY-th header and function is checked (default 2: about 340 checks,
# 20-70 s on the shared 2-vCPU VM; 1: all of them, about 560).
EVERY=${CONFIGURE_EVERY:-2}
every() { tr -s ' \n' '\n\n' | grep -v '^$' | awk -v n="$EVERY" '(NR - 1) % n == 0'; }

write_configure_ac() {
    local h f l t i
    echo 'AC_INIT([vigil-bench-configure], [1.0])'
    echo 'AC_CONFIG_HEADERS([config.h])'
    echo 'AC_PROG_CC'
    echo 'AC_PROG_CPP'
    echo 'AC_USE_SYSTEM_EXTENSIONS'
    echo 'AC_SYS_LARGEFILE'
    echo 'AC_C_BIGENDIAN'
    echo 'AC_C_INLINE'
    echo 'AC_C_CONST'
    echo 'AC_C_RESTRICT'
    echo 'AC_TYPE_SIZE_T'
    echo 'AC_TYPE_PID_T'
    echo 'AC_FUNC_MMAP'
    echo 'AC_FUNC_FORK'
    for h in $(echo "$HEADERS" | every); do echo "AC_CHECK_HEADERS([$h])"; done
    for f in $(echo "$FUNCS" | every); do echo "AC_CHECK_FUNCS([$f])"; done
    for l in $LIBS; do echo "AC_CHECK_LIB([${l%%:*}], [${l#*:}])"; done
    # AC_CHECK_SIZEOF runs a program per type on a native build.
    eval "set -- $(echo "$TYPES" | tr '\n' ' ')"
    for t in "$@"; do echo "AC_CHECK_SIZEOF([$t])"; done
    for i in $(seq 1 20); do
        cat <<AC
AC_MSG_CHECKING([whether the compiler accepts construct $i])
AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[#include <stdlib.h>
static int f$i(int x) { return x * $i + (int) sizeof(long); }]], [[return f$i(argc) == $i ? 0 : 1;]])],
  [AC_MSG_RESULT([yes]); AC_DEFINE([HAVE_CONSTRUCT_$i], [1], [construct $i])], [AC_MSG_RESULT([no])])
AC
    done
    for i in $(seq 1 "$N_RUN"); do
        cat <<AC
AC_MSG_CHECKING([whether run-time behaviour $i holds])
AC_RUN_IFELSE([AC_LANG_PROGRAM([[#include <stdio.h>
#include <string.h>
#include <stdlib.h>]], [[char b[64]; snprintf(b, sizeof b, "%d-%s", $i, "x");
    return strlen(b) > 1 && atoi(b) == $i ? 0 : 1;]])],
  [AC_MSG_RESULT([yes]); AC_DEFINE([HAVE_BEHAVIOUR_$i], [1], [behaviour $i])], [AC_MSG_RESULT([no])],
  [AC_MSG_RESULT([cross])])
AC
    done
    echo 'AC_OUTPUT'
}

# Generate once (untimed, cached across runs and agents).
key=$( { autoconf --version | head -1; echo "$N_RUN $EVERY"; write_configure_ac; } | sha256sum | cut -c1-16)
SRC=$CACHE/$key
if [ ! -x "$SRC/configure" ]; then
    rm -rf "$SRC.tmp"
    mkdir -p "$SRC.tmp"
    write_configure_ac > "$SRC.tmp/configure.ac"
    (cd "$SRC.tmp" && autoconf && autoheader && rm -rf autom4te.cache) >&2
    # config.guess and config.sub (the host-type checks), from autoconf itself.
    cp "${AUTOCONF_AUX:-/usr/share/autoconf/build-aux}"/config.guess \
        "${AUTOCONF_AUX:-/usr/share/autoconf/build-aux}"/config.sub "$SRC.tmp/"
    rm -rf "$SRC"
    mv "$SRC.tmp" "$SRC"
fi
checks=$(grep -c '^AC_CHECK\|^AC_COMPILE_IFELSE\|^AC_RUN_IFELSE\|^AC_FUNC\|^AC_C_\|^AC_TYPE\|^AC_SYS' "$SRC/configure.ac")

# A fresh copy in the test mount (untimed). The pause lets a listener that
# scans files as they are written finish with the copied script before the
# timer starts.
DIR=$(mktemp -d "$MNT/configure.XXXXXX")
cp "$SRC/configure" "$SRC/config.h.in" "$SRC/config.guess" "$SRC/config.sub" "$DIR/"
sleep 1

errors=0
t0=$(date +%s%N)
(cd "$DIR" && ./configure --quiet CFLAGS="-O0" > configure.out 2>&1) || errors=1
t1=$(date +%s%N)
# Keep the evidence when configure failed; otherwise free the mount's space.
if [ "$errors" = 0 ]; then rm -rf "$DIR"; else tail -20 "$DIR/configure.out" >&2; fi
printf '{"workload":"configure","n":%s,"errors":%s,"total_s":%s}\n' \
    "$checks" "$errors" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')"
