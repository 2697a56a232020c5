// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * vigil's exec guard: an LSM program on bprm_check_security.
 *
 * fanotify only sees execs from filesystems vigil has marked. This program
 * sees every exec on the machine (or in one cgroup v2 subtree) and decides at
 * once, without waiting for user space, what to do with an exec from a
 * superblock no mark covers: allow it, allow and report it, or refuse it with
 * EPERM. Every report goes to user space through a ring buffer; vigil then
 * marks that filesystem and adds it to `covered`, so the next exec from it is
 * scanned by the daemon like any other.
 *
 * The kernel only runs LSM programs with a GPL-compatible license, hence the
 * dual license of this one file (the rest of vigil is Apache-2.0).
 */
#include "guard_types.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_RINGBUF 27

#define EPERM 1
#define SIGKILL 9
/* Superblocks mounted by the kernel for itself (the shmem mount behind
 * memfd_create and anonymous shared memory, hugetlbfs for MFD_HUGETLB):
 * nobody can mount them, so no fanotify mark can ever cover them. */
#define SB_KERNMOUNT (1UL << 22)
#define SB_NOUSER (1UL << 31)
/* fsnotify's FS_OPEN_EXEC_PERM: set in a superblock's s_fsnotify_mask while a
 * filesystem mark asks for exec permission events on it. */
#define FS_OPEN_EXEC_PERM 0x00040000

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static __u64 (*bpf_get_current_uid_gid)(void) = (void *)15;
static long (*bpf_get_current_comm)(void *buf, __u32 size) = (void *)16;
static __u64 (*bpf_get_current_cgroup_id)(void) = (void *)80;
static long (*bpf_probe_read_kernel_str)(void *dst, __u32 size, const void *src) = (void *)115;
static __u64 (*bpf_get_current_ancestor_cgroup_id)(int level) = (void *)123;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;
static struct task_struct *(*bpf_get_current_task_btf)(void) = (void *)158;
static long (*bpf_send_signal)(__u32 sig) = (void *)109;

/* Shared with agent/src/guard/abi.rs: change both together. */
enum mode { MODE_OFF = 0, MODE_AUDIT = 1, MODE_DENY = 2 };
enum fs_class { CLASS_WATCHED = 1, CLASS_NETWORK = 2 };
enum cover { COVER_MARKED = 1, COVER_KNOWN = 2, COVER_RUNTIME = 3 };
enum reason { REASON_UNCOVERED = 1, REASON_INTERNAL = 2, REASON_NETWORK = 3 };
/* Which program reported (both are compiled from decide() below). */
enum hook { HOOK_LSM = 1, HOOK_TRACEPOINT = 2 };
enum counter { C_UNCOVERED = 0, C_DENIED = 1, C_EXE_ALLOWED = 2, C_LOST = 3, C_MAX = 4 };

struct guard_config {
	__u64 cgroup_id; /* 0: every task */
	__u32 cgroup_level;
	__u8 mode;         /* watched types without a mark, and internal superblocks */
	__u8 network_mode; /* network and FUSE filesystems */
	__u8 pad[2];
};

struct exe_key {
	__u32 dev; /* kernel dev_t (MKDEV: major << 20 | minor) */
	__u32 pad;
	__u64 ino;
};

struct guard_event {
	__u64 ino;
	__u64 magic;
	__u64 exe_ino;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 dev;
	__u32 exe_dev;
	__u8 denied;
	__u8 reason;
	__u8 hook; /* HOOK_LSM or HOOK_TRACEPOINT */
	__u8 pad;
	char fstype[16];
	char s_id[32];
	char name[64];
	char comm[16];
	/* Where to find the mount when the process is already gone (a refused
	 * exec's child exits at once): its parent, and its mount namespace. */
	__u32 ppid;
	__u32 mnt_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guard_config);
} guard_config SEC(".maps");

/* Superblocks (kernel dev_t) that are not the guard's business:
 * COVER_MARKED: vigil marked it from its configuration;
 * COVER_KNOWN: mounted when vigil started and left unmarked on purpose;
 * COVER_RUNTIME: marked by vigil after the guard reported it. These come and
 * go with user namespaces and their device numbers are reused, so they only
 * count while the superblock really carries an exec mark: a new superblock
 * under an old number is uncovered again. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} covered SEC(".maps");

/* Filesystem magic numbers (statfs f_type) the guard cares about. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u8);
} fs_class SEC(".maps");

/* Programs (device + inode of the old executable) allowed to exec from an
 * internal superblock, e.g. runc re-executing itself from a memfd. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct exe_key);
	__type(value, __u8);
} allowed_exe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} guard_events SEC(".maps");

static __attribute__((always_inline)) void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		__sync_fetch_and_add(c, 1);
}

/* The decision for an exec of `file`: 0 to let it be (covered, out of scope,
 * allowed program, mode off), 1 to allow and report, 2 to refuse and report.
 * Reports go to the ring buffer from here. Runs while current->mm is still
 * the calling program's (bprm_check_security and sched_prepare_exec both run
 * before the new image replaces it). */
static __attribute__((always_inline)) int decide(struct file *file, __u8 hook)
{
	__u32 zero = 0;
	struct guard_config *cfg = bpf_map_lookup_elem(&guard_config, &zero);
	if (!cfg || (cfg->mode == MODE_OFF && cfg->network_mode == MODE_OFF))
		return 0;
	if (cfg->cgroup_id != 0 &&
	    bpf_get_current_ancestor_cgroup_id(cfg->cgroup_level) != cfg->cgroup_id)
		return 0;

	struct super_block *sb = file->f_inode->i_sb;
	__u32 dev = sb->s_dev;
	__u8 *cover = bpf_map_lookup_elem(&covered, &dev);
	if (cover && (*cover != COVER_RUNTIME || (sb->s_fsnotify_mask & FS_OPEN_EXEC_PERM)))
		return 0;

	__u64 magic = sb->s_magic;
	__u8 reason, mode;
	if (sb->s_flags & (SB_KERNMOUNT | SB_NOUSER)) {
		reason = REASON_INTERNAL;
		mode = cfg->mode;
	} else {
		__u8 *class = bpf_map_lookup_elem(&fs_class, &magic);
		if (!class)
			return 0;
		if (*class == CLASS_WATCHED) {
			reason = REASON_UNCOVERED;
			mode = cfg->mode;
		} else {
			reason = REASON_NETWORK;
			mode = cfg->network_mode;
		}
	}
	if (mode == MODE_OFF)
		return 0;

	struct exe_key exe = {};
	struct task_struct *task = bpf_get_current_task_btf();
	struct mm_struct *mm = task->mm;
	if (mm) {
		struct file *exe_file = mm->exe_file;
		if (exe_file) {
			exe.dev = exe_file->f_inode->i_sb->s_dev;
			exe.ino = exe_file->f_inode->i_ino;
		}
	}
	if (reason == REASON_INTERNAL && bpf_map_lookup_elem(&allowed_exe, &exe)) {
		count(C_EXE_ALLOWED);
		return 0;
	}

	int deny = mode == MODE_DENY;
	count(C_UNCOVERED);
	if (deny)
		count(C_DENIED);
	struct guard_event *ev = bpf_ringbuf_reserve(&guard_events, sizeof(*ev), 0);
	if (!ev) {
		count(C_LOST);
		return deny ? 2 : 1;
	}
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	ev->uid = (__u32)bpf_get_current_uid_gid();
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->dev = dev;
	ev->ino = file->f_inode->i_ino;
	ev->magic = magic;
	ev->exe_dev = exe.dev;
	ev->exe_ino = exe.ino;
	ev->denied = deny;
	ev->reason = reason;
	ev->hook = hook;
	ev->pad = 0;
	bpf_probe_read_kernel_str(ev->fstype, sizeof(ev->fstype), sb->s_type->name);
	bpf_probe_read_kernel_str(ev->s_id, sizeof(ev->s_id), sb->s_id);
	bpf_probe_read_kernel_str(ev->name, sizeof(ev->name), file->f_path.dentry->d_name.name);
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	ev->ppid = task->real_parent->tgid;
	struct nsproxy *ns = task->nsproxy;
	ev->mnt_ns = ns ? ns->mnt_ns->ns.inum : 0;
	bpf_ringbuf_submit(ev, 0);
	return deny ? 2 : 1;
}

/* The guard proper: refuses with EPERM before anything of the new program
 * is loaded. */
SEC("lsm/bprm_check_security")
int vigil_exec_guard(unsigned long long *ctx)
{
	struct linux_binprm *bprm = (struct linux_binprm *)ctx[0];
	int ret = (int)ctx[1];

	/* Another LSM program already refused: keep its answer. */
	if (ret != 0)
		return ret;
	return decide(bprm->file, HOOK_LSM) == 2 ? -EPERM : 0;
}

/* The fallback where the kernel will not load LSM programs (no BPF LSM, or
 * refused): sched_prepare_exec runs past exec's point of no return but
 * before the new image runs a single instruction, so a refused exec is
 * killed (SIGKILL) instead of failing with EPERM. */
SEC("tp_btf/sched_prepare_exec")
int vigil_exec_guard_tp(unsigned long long *ctx)
{
	struct linux_binprm *bprm = (struct linux_binprm *)ctx[1];

	if (decide(bprm->file, HOOK_TRACEPOINT) == 2)
		bpf_send_signal(SIGKILL);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
